"""Faust and aiokafka, extended: the one home of what the project changes in them.

Each module replaces or adds one behaviour, says in its docstring which and
why (the upstream behaviour or issue), and is covered by a test that fails
without it:

- ``consumer``: aiokafka fetches only the partitions Faust will deliver
  (``tests/agents/test_failover_e2e.py``: a taken-over partition began at
  offset 13, not 0, without it).
- ``bulk``: agents take each fetch's records as one batch, acknowledged by
  offset, instead of Faust's per-message events (``python -m bench pipeline``:
  6,352 against 65,323 tracks/s, one record per message, 100,000 tracks).
- ``recovery``: the hand-over from table recovery to the agents is gap-free, and
  recovery reads changelogs to their last record (``tests/agents/test_lake_crash.py``,
  ``test_failover_e2e.py``: skipped offsets without it); a rebalance lets go of
  revoked stores first (``tests/faust_ext/test_partitioned.py``: RocksDB's lock
  without it).
- ``partitioned``: bulk, explicit-partition table writes through the batch
  sender instead of ``table[key] = value``, each store holding the changelog
  offset its data covers (``tests/faust_ext/test_partitioned.py``;
  ``tests/agents/test_restart_e2e.py``: a restart read all 20,000 changelog
  records without it, none with it).
- ``broadcast``: every partition of a topic for every worker, where Faust's
  ``GlobalTable`` does not replicate (faust-streaming #283;
  ``tests/agents/test_workers_e2e.py``).
- ``worker``: the worker without its terminal spinner, which set the root logger
  to DEBUG (a measured 4 to 5 s more of recovery at 200,000 tracks).
"""
