import faust
import pytest
from aiokafka import AIOKafkaProducer
from faust.exceptions import ConsumerNotStarted
from faust.types import TP

from spotify_stream.app import create_app
from spotify_stream.faust_ext.partitioned import PartitionedTable
from spotify_stream.kafka import PartitionedSender
from tests.conftest import consume_all


async def test_batched_puts_are_read_back_at_once_and_written_together(tmp_path):
    app = faust.App("t", store="rocksdb://", datadir=str(tmp_path), autodiscover=False)
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1")  # never started: batches only
    table = PartitionedTable(
        app.Table("x", partitions=2), PartitionedSender(producer, {"t-x-changelog": 2})
    )
    db = table._db(0)
    await table.put(0, b"old", b"1")
    with table.batch(0):
        await table.put(0, b"new", b"2")
        await table.put(0, b"old", None)
        assert table.get(0, b"new") == b"2" and table.get(0, b"old") is None
        assert table.get_many(0, [b"old", b"new", b"none"]) == [None, b"2", None]
        assert db.get(b"new") is None and db.get(b"old") == b"1"  # not written yet
    assert db.get(b"new") == b"2" and db.get(b"old") is None
    assert dict(table.items([0])) == {b"new": b"2"}
    assert table.sender._batches[("t-x-changelog", 0)][1] == 3  # every put is in the changelog


async def test_a_revoked_partition_can_be_reopened_when_it_comes_back(fresh_settings):
    app = create_app(fresh_settings)
    table = app.pipeline.tables[0]
    held = table._db(0)
    changelog = TP(table.changelog, 0)
    # The tables let go of the revoked partition's store first; Faust's recovery after
    # them needs a running consumer.
    with pytest.raises(ConsumerNotStarted):
        await app.tables.on_rebalance(set(), {changelog}, set(), 0)
    assert changelog.partition not in table.table.data._dbs
    del held
    assert table._db(0) is not None  # reopened: no RocksDB lock held by the adapter


async def test_each_store_records_the_changelog_offset_its_data_covers(fresh_settings):
    settings = fresh_settings
    app = create_app(settings)
    pipeline = app.pipeline
    await pipeline.start()
    try:
        table = pipeline.tables[0]
        store = table.table.data
        for i in range(5):
            await table.put(0, b"k%d" % i, b"v")
        await table.put(1, b"k", b"v")
        assert store.persisted_offset(TP(table.changelog, 0)) is None
        with table.batch(1):
            await table.put(1, b"k", b"w")
            await pipeline.flush()  # acknowledged, but partition 1's batch is not written
            assert store.persisted_offset(TP(table.changelog, 1)) is None
        acknowledged = pipeline.sender.last_offsets
        assert store.persisted_offset(TP(table.changelog, 0)) == acknowledged[(table.changelog, 0)]
        assert store.persisted_offset(TP(table.changelog, 1)) == acknowledged[(table.changelog, 1)]
        assert store._db_for_partition(1).get(b"k") == b"w"
        written = {(m.partition, m.offset) for m in await consume_all(settings, table.changelog)}
        assert max(o for p, o in written if p == 0) == acknowledged[(table.changelog, 0)]
    finally:
        await pipeline.stop()
