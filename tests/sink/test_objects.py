import datetime as dt

from spotify_stream.sink.objects import ObjectName, flushes_after, hour_of

HOUR = dt.datetime(2024, 5, 1, 13, tzinfo=dt.UTC)


def test_name_is_a_pure_function_of_dataset_partition_range_and_hour():
    name = ObjectName("tracks_enriched", 3, 120, 2119, HOUR)
    assert name.key == (
        "curated/tracks_enriched/dt=2024-05-01/hr=13/part-3-0000000120-0000002119.parquet"
    )
    assert ObjectName("tracks_enriched", 3, 120, 2119, HOUR).key == name.key
    assert ObjectName.parse(name.key) == name


def test_foreign_keys_are_not_names():
    for key in (
        "curated/plays/dt=2024-05-01/hr=13/part-3-1-2.parquet.tmp",
        "marts/plays/dt=2024-05-01/part-3-1-2.parquet",
        "curated/plays/dt=2024-05-01/hr=13/other.parquet",
    ):
        assert ObjectName.parse(key) is None


def test_hour_of_event_time():
    assert hour_of(int(HOUR.timestamp() * 1000) + 3_599_999) == HOUR
    assert hour_of(int(HOUR.timestamp() * 1000) + 3_600_000) == HOUR + dt.timedelta(hours=1)


def test_flushes_after_the_committed_offset_are_found_by_name():
    keys = [
        ObjectName("plays", 0, 0, 99, HOUR).key,
        ObjectName("plays", 0, 100, 199, HOUR).key,
        ObjectName("plays", 0, 100, 199, HOUR + dt.timedelta(hours=1)).key,  # same flush
        ObjectName("plays", 0, 200, 250, HOUR).key,
        ObjectName("plays", 1, 300, 400, HOUR).key,  # another partition
        ObjectName("artists", 0, 500, 600, HOUR).key,  # another dataset
        "curated/plays/_tmp",
    ]
    assert flushes_after(keys, "plays", 0, committed=100) == [(100, 199), (200, 250)]
    assert flushes_after(keys, "plays", 0, committed=251) == []


def test_rows_split_by_the_hour_of_their_event_time_and_impossible_hours_are_named():
    import pyarrow as pa

    from spotify_stream.sink.objects import HOUR_MS, by_hour

    h12 = 1_714_564_800_000  # 2024-05-01 12:00 UTC
    millis = [h12 + HOUR_MS + 5, h12, -1, h12 + 10, 10**17, h12 + HOUR_MS]
    table = pa.table({"o": range(6), "t": pa.array(millis, pa.timestamp("ms", tz="UTC"))})
    hours, rejected = by_hour(table, "t")
    assert [(hour.isoformat(), t.column("o").to_pylist()) for hour, t in hours] == [
        ("1969-12-31T23:00:00+00:00", [2]),
        ("2024-05-01T12:00:00+00:00", [1, 3]),
        ("2024-05-01T13:00:00+00:00", [0, 5]),
    ]
    assert rejected == [(4, "t = 100000000000000000 ms is outside the years 1-9999")]
