import datetime as dt
import io
import json

import fastavro
import pyarrow as pa
import pytest

from spotify_stream.ml.clustering import FEATURES
from spotify_stream.models import SCHEMAS, AvroCodec, DecodeError, codec_for
from spotify_stream.models.arrow import arrow_schema
from spotify_stream.models.codec import (
    encode_batch,
    items_in,
    records_in,
    register_writer_schema,
)
from spotify_stream.models.wire import MAGIC
from tests.reference import enriched_record

UTC = dt.UTC
NOW = dt.datetime(2024, 5, 1, 12, 30, tzinfo=UTC)

SAMPLES = {
    "Artist": {
        "artist_id": "a1",
        "name": 'Sigur Rós, "live"',
        "popularity": 71,
        "followers": 1_234_567,
        "genres": ["post-rock", "icelandic"],
        "updated_at": NOW,
    },
    "Album": {
        "album_id": "al1",
        "name": "Ágætis byrjun",
        "album_type": "album",
        "release_date": dt.date(1999, 6, 1),
        "release_date_precision": "month",
        "label": "Smekkleysa",
        "popularity": 60,
        "total_tracks": 10,
        "artist_id": "a1",
        "updated_at": NOW,
    },
    "Track": {
        "track_id": "t1",
        "name": "Svefn-g-englar",
        "album_id": "al1",
        "track_number": 2,
        "duration_ms": 604_000,
        "artist_id": "a1",
        "artist_names": ["Sigur Rós"],
        "popularity": 55,
        "explicit": False,
        "updated_at": NOW,
    },
    "AudioFeatures": {
        "track_id": "t1",
        "danceability": 0.2,
        "energy": 0.31,
        "key": 5,
        "loudness": -14.2,
        "mode": 1,
        "speechiness": 0.03,
        "acousticness": 0.4,
        "instrumentalness": 0.8,
        "liveness": 0.1,
        "valence": 0.05,
        "tempo": 61.5,
        "duration_ms": 604_000,
        "time_signature": 4,
        "updated_at": NOW,
    },
    "Play": {
        "user_id": "u1",
        "track_id": "t1",
        "played_at": NOW,
        "ms_played": 200_000,
        "skipped": False,
        "session_id": "s1",
    },
    "DeadLetter": {
        "reason": "bad_value",
        "detail": "x",
        "source": "f.csv",
        "line": 3,
        "row": 2,
        "partition": None,
        "offset": None,
        "raw": b"\x00\xffraw",
        "raw_size": 5,
        "failed_at": NOW,
    },
}

SAMPLES["EnrichedTrack"] = enriched_record(
    SAMPLES["Track"], SAMPLES["Album"], SAMPLES["Artist"], SAMPLES["AudioFeatures"]
) | {"cluster_id": 2, "model_version": 5, "cluster_distance": 0.75}
SAMPLES["ClusterModel"] = {
    "version": 5,
    "k": 2,
    "rows_seen": 1200,
    "features": list(FEATURES),
    "mean": [0.5] * len(FEATURES),
    "var": [0.04] * len(FEATURES),
    "centroids": [[-1.0] * len(FEATURES), [1.0] * len(FEATURES)],
    "counts": [700.0, 500.0],
    "steps": 3,
    "published_at": NOW,
}
SAMPLES["ClusterProfile"] = {
    "model_version": 5,
    "cluster_id": 1,
    "k": 2,
    "published_at": NOW,
    "size": 500,
    **dict.fromkeys(FEATURES, 0.5),
    "tempo": None,
    "top_genres": ["post-rock", "ambient"],
    "top_track_ids": ["t1"],
    "top_track_names": [None],
}
SAMPLES["Popularity"] = {
    "entity_type": "genre",
    "entity_id": "post-rock",
    "window": "24h",
    "window_start": NOW,
    "window_end": NOW,
    "plays": 3,
    "unique_listeners": 2,
    "skip_rate": 1 / 3,
    "mean_popularity": None,
}
SAMPLES["Batch"] = {"records": [codec_for("Track").encode(SAMPLES["Track"])]}


@pytest.mark.parametrize(
    "lengths", [[], [0], [1, 63, 64, 127], [8191, 8192, 300_000], [450] * 1000 + [2**21]]
)
def test_encode_batch_writes_what_fastavro_writes(lengths):
    bodies = [bytes([n % 251]) * n for n in lengths]
    expected = io.BytesIO()
    expected.write(MAGIC + codec_for("Batch").fingerprint)
    fastavro.schemaless_writer(expected, SCHEMAS["Batch"], {"records": bodies})
    assert encode_batch(bodies) == expected.getvalue()
    assert items_in(encode_batch(bodies)) == bodies


def test_a_batch_holds_records_of_their_own_schema():
    track = codec_for("Track").encode(SAMPLES["Track"])
    play = codec_for("Play").encode(SAMPLES["Play"])
    assert records_in(encode_batch([track, play])) == [
        ("Track", SAMPLES["Track"]),
        ("Play", SAMPLES["Play"]),
    ]
    assert records_in(track) == [("Track", SAMPLES["Track"])]


def test_every_schema_has_a_sample():
    assert set(SAMPLES) == set(SCHEMAS)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_round_trip(name):
    codec = codec_for(name)
    data = codec.encode(SAMPLES[name])
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == codec.fingerprint
    assert codec.decode(data) == SAMPLES[name]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_reader_on_newer_schema_with_added_optional_field(name):
    """Old messages decode into a newer schema; the new field takes its default."""
    newer = json.loads(json.dumps(SCHEMAS[name]))
    newer["fields"].append({"name": "mood", "type": ["null", "string"], "default": None})
    new_codec = AvroCodec(fastavro.parse_schema(newer, _write_hint=False))
    old_message = codec_for(name).encode(SAMPLES[name])
    assert new_codec.decode(old_message) == {**SAMPLES[name], "mood": None}


def test_older_reader_reads_newer_writer_once_registered():
    newer = json.loads(json.dumps(SCHEMAS["Track"]))
    newer["fields"].append({"name": "isrc", "type": ["null", "string"], "default": None})
    writer = AvroCodec(fastavro.parse_schema(newer, _write_hint=False))
    message = writer.encode({**SAMPLES["Track"], "isrc": "ISXX1"})
    register_writer_schema(writer.schema)
    assert codec_for("Track").decode(message) == SAMPLES["Track"]


def test_garbage_and_unknown_schema_raise_decode_error():
    codec = codec_for("Track")
    with pytest.raises(DecodeError, match="C3 01"):
        codec.decode(b"not avro")
    with pytest.raises(DecodeError, match="unknown writer schema"):
        codec.decode(b"\xc3\x01" + b"\x00" * 8 + b"\x02")
    with pytest.raises(DecodeError, match="corrupt"):
        codec.decode(codec.encode(SAMPLES["Track"])[:14])
    with pytest.raises(DecodeError, match="2 bytes after the record"):
        codec.decode(codec.encode(SAMPLES["Track"]) + b"\x02\x02", as_written=True)


def test_message_of_another_record_is_refused():
    message = codec_for("Artist").encode(SAMPLES["Artist"])
    with pytest.raises(DecodeError, match=r"holds a spotify_stream\.Artist"):
        codec_for("Track").decode(message)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_arrow_schema_holds_decoded_records(name):
    schema = arrow_schema(SCHEMAS[name])
    assert schema.names == [f["name"] for f in SCHEMAS[name]["fields"]]
    decoded = codec_for(name).decode(codec_for(name).encode(SAMPLES[name]))
    table = pa.Table.from_pylist([decoded], schema=schema)
    assert table.to_pylist() == [decoded]


def test_arrow_types_follow_avro():
    schema = arrow_schema(SCHEMAS["Album"])
    assert schema.field("album_id").type == pa.string() and not schema.field("album_id").nullable
    assert schema.field("release_date").type == pa.date32()
    assert schema.field("updated_at").type == pa.timestamp("ms", tz="UTC")
    assert arrow_schema(SCHEMAS["Artist"]).field("genres").type == pa.list_(pa.string())
    assert arrow_schema(SCHEMAS["DeadLetter"]).field("raw").type == pa.binary()


def test_as_written_keeps_logical_types_as_their_avro_values():
    album = codec_for("Album")
    data = album.encode(SAMPLES["Album"])
    plain = album.decode(data, as_written=True)
    assert plain["updated_at"] == int(NOW.timestamp() * 1000)
    assert plain["release_date"] == (dt.date(1999, 6, 1) - dt.date(1970, 1, 1)).days
    assert {k: v for k, v in plain.items() if k not in ("updated_at", "release_date")} == {
        k: v for k, v in SAMPLES["Album"].items() if k not in ("updated_at", "release_date")
    }
    # and encodes back to the same bytes
    assert album.encode(plain) == data


@pytest.mark.parametrize("record", ["Track", "AudioFeatures", "Play", "Artist"])
def test_a_long_batch_read_as_one_block_gives_what_fastavro_gives(record):
    import random

    from spotify_stream.models.codec import decode_any, encoded_records_in
    from tests.sink.test_decode import random_value

    rng = random.Random(3)
    items = [codec_for(record).encode(random_value(rng, SCHEMAS[record])) for _ in range(200)]
    one_by_one = [(*decode_any(item, as_written=True), item) for item in items]
    assert encoded_records_in(encode_batch(items), as_written=True) == (one_by_one, [])
    # only some fields: every body still read whole, the records hold just those
    fields = [f["name"] for f in SCHEMAS[record]["fields"]][::2]
    assert encoded_records_in(encode_batch(items), True, fields) == (
        [(name, {k: decoded[k] for k in fields}, item) for name, decoded, item in one_by_one],
        [],
    )
    # a body with bytes left over, one cut short: the block is refused, and one by one
    # names them and keeps every other item
    bad = encode_batch([*items[:50], items[50] + b"\x00", items[51][:-3], *items[52:]])
    for only in (None, fields):
        good, failed = encoded_records_in(bad, True, only)
        assert good == one_by_one[:50] + one_by_one[52:]
        assert [item for item, _ in failed] == [items[50] + b"\x00", items[51][:-3]]
        assert "bytes after the record" in failed[0][1]
        assert failed[1][1].startswith("corrupt Avro body")
