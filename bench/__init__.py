"""Benchmarks: ``python -m bench NAME``; each prints a table with its baseline."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
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


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) each thread of ``pid`` has used so far, by thread
    id; empty where /proc is not there (not Linux) or the process has ended."""
    seconds = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return {}
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        seconds[int(tid)] = (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
    return seconds


@dataclass
class CpuWindow:
    """What a worker process, its main thread alone, and the broker used of the
    machine's cores between ``start`` and ``stop``: whether a figure is bound by CPU,
    and by which thread. (A thread that ends inside the window is not counted.)"""

    worker: int
    broker: int | None

    def start(self) -> None:
        self._begun = time.monotonic(), thread_cpu(self.worker), self._broker()

    def stop(self) -> dict[str, float]:
        """Cores in use on average over the window: the worker's, its main thread's
        (the event loop, which holds the GIL for most of the Python work), the broker's."""
        began, worker, broker = self._begun
        wall = time.monotonic() - began
        now = thread_cpu(self.worker)
        used = {tid: seconds - worker.get(tid, 0.0) for tid, seconds in now.items()}
        return {
            "worker_cores": sum(used.values()) / wall,
            "main_cores": used.get(self.worker, 0.0) / wall,
            "broker_cores": (sum(self._broker().values()) - sum(broker.values())) / wall,
        }

    def _broker(self) -> dict[int, float]:
        return thread_cpu(self.broker) if self.broker else {}


def peak_rss_mb(pid: int) -> float:
    """The most resident memory ``pid`` has held so far (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
