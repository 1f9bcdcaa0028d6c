"""The lake as tables: Glue catalog, Athena DDL and queries, a local engine."""
