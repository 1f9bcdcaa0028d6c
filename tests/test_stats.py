from spotify_stream.stats import Stats


def test_offsets_a_worker_never_saw_are_counted():
    stats = Stats()
    for offset in (0, 1, 2, 5, 6):
        stats.consumed("t", 0, offset, records=2)
    stats.consumed("t", 1, 7)  # the first offset seen on a partition is not a gap
    assert stats.events["offsets_skipped"] == 2
    assert stats.records_in["t"] == 11 and stats.messages_in["t"] == 6
    assert stats.positions == {("t", 0): 7, ("t", 1): 8}
