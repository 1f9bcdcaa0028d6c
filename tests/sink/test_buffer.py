from spotify_stream.sink.buffer import Limits, PartitionBuffer

LIMITS = Limits(window=60, max_rows=3, max_bytes=1000)


def item(offset: int) -> bytes:
    return f"{offset:010d}".encode()  # 10 bytes, telling its offset


def feed(buffer: PartitionBuffer, offsets, now=0.0):
    """Add records one by one as a sink does; return the flushes as (first, last, offsets)."""
    flushes = []

    def take(reason):
        flush = buffer.take(reason)
        assert flush.bytes == 10 * len(flush.items) and flush.reason == reason
        flushes.append((flush.first, flush.last, [int(i) for i in flush.items]))
        reasons.append(reason)

    reasons = []
    for offset in offsets:
        if buffer.cut_before(offset):
            take("replay")
        buffer.add(offset, item(offset), now)
        if reason := buffer.due(now):
            take(reason)
    feed.reasons = reasons
    return flushes


def test_rows_bytes_and_window_cut_the_buffer():
    assert feed(PartitionBuffer("plays", 0, LIMITS), range(7)) == [
        (0, 2, [0, 1, 2]),
        (3, 5, [3, 4, 5]),
    ]
    assert feed.reasons == ["rows", "rows"]
    big = PartitionBuffer("plays", 0, Limits(window=60, max_rows=100, max_bytes=25))
    assert feed(big, range(4)) == [(0, 2, [0, 1, 2])]
    assert feed.reasons == ["bytes"]
    idle = PartitionBuffer("plays", 0, LIMITS)
    assert feed(idle, [0], now=100.0) == []
    assert idle.due(159.9) is None and idle.due(160.0) == "window"  # it waited a window
    assert idle.window_ends == 160.0  # the sink polls no longer than that
    idle.take("window")
    assert idle.window_ends is None


def test_after_a_crash_the_begun_flushes_are_cut_again_at_the_same_offsets():
    # Before the crash: flushes [100, 104] (window cut, 5 rows) and [105, 106] had begun.
    buffer = PartitionBuffer.recovering("plays", 0, LIMITS, [(105, 106), (100, 104)])
    assert feed(buffer, range(100, 112)) == [
        (100, 104, [100, 101, 102, 103, 104]),  # past max_rows: the range decides
        (105, 106, [105, 106]),
        (107, 109, [107, 108, 109]),  # then the limits again
    ]


def test_a_replayed_range_with_a_gap_at_its_end_keeps_its_name():
    buffer = PartitionBuffer.recovering("plays", 0, LIMITS, [(100, 105)])
    assert feed(buffer, [100, 101]) == []
    assert buffer.window_ends is None  # it ends at its offsets, whenever they come
    assert feed(buffer, [107]) == [(100, 105, [100, 101])]
    assert not buffer.replay and buffer.rows == 1
