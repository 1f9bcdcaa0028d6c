import faust
from aiokafka import AIOKafkaProducer

from spotify_stream.faust_ext.partitioned import PartitionedTable
from spotify_stream.kafka import PartitionedSender


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
