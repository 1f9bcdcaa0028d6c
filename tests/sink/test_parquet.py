import datetime as dt
import io

import pyarrow.parquet as pq

from spotify_stream.sink.parquet import encode, schema_of, to_table
from tests.models.test_codec import SAMPLES


def plays(n: int) -> list[dict]:
    start = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    return [
        {
            **SAMPLES["Play"],
            "user_id": f"u{i % 7}",
            "track_id": f"t{i}",
            "played_at": start + dt.timedelta(seconds=i),
            "ms_played": 1000 * i,
            "skipped": i % 3 == 0,
        }
        for i in range(n)
    ]


def test_parquet_round_trip_with_zstd_statistics_and_row_groups():
    records = plays(2500)
    table, rejected = to_table(records, schema_of("Play"))
    assert rejected == []
    data = encode(table, row_group_rows=1000)
    parquet = pq.ParquetFile(io.BytesIO(data))
    assert parquet.read().to_pylist() == records
    meta = parquet.metadata
    assert meta.num_row_groups == 3 and meta.num_rows == 2500
    column = meta.row_group(0).column(meta.schema.names.index("ms_played"))
    assert column.compression == "ZSTD"
    assert (column.statistics.min, column.statistics.max) == (0, 999_000)


def test_records_that_do_not_fit_are_named_and_the_rest_written():
    records = plays(5)
    records[1] = {**records[1], "ms_played": "long"}
    records[3] = {**records[3], "played_at": "yesterday"}
    table, rejected = to_table(records, schema_of("Play"))
    assert [index for index, _ in rejected] == [1, 3]
    assert all("does not fit the Parquet schema" in reason for _, reason in rejected)
    assert table.to_pylist() == [records[0], records[2], records[4]]
