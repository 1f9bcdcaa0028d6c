"""Benchmarks: ``python -m bench NAME``; each prints a table with its baseline."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from spotify_stream.embedded import EmbeddedBroker
from spotify_stream.embedded.worker import WorkerProcess
from spotify_stream.settings import Settings


def stack_settings(broker: EmbeddedBroker, workdir: Path, **update: Any) -> Settings:
    """Settings of a worker on ``broker`` with its state and file lake in ``workdir``;
    no .env file, so a developer's settings do not change the figures."""
    return Settings(
        broker=f"kafka://{broker.bootstrap}",
        producer_idempotence="off",
        data_dir=workdir / "state",
        lake=f"file://{workdir}/lake",
        _env_file=None,
        **update,
    )


def worker_failed(worker: WorkerProcess, what: str) -> SystemExit:
    """The end of a bench whose worker fell short: its log copied out of the temporary
    directory (which goes with the bench) and named, with its last lines."""
    kept = Path.cwd() / f"bench-{worker.log.name}"
    shutil.copyfile(worker.log, kept)
    return SystemExit(f"{what}; the worker's log is kept in {kept}; it ends:\n{worker.tail(40)}")
