"""The lake sink: Parquet encoding and the storage backends it writes through."""
