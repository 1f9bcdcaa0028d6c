"""Running async work from the command line, with Ctrl-C as a clean stop."""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from spotify_stream.errors import UserError

T = TypeVar("T")


class Interrupted(UserError):
    """Ctrl-C or SIGTERM ended the work early; ``result`` is what it returned."""

    exit_code = 130

    def __init__(self, result: Any) -> None:
        super().__init__("interrupted")
        self.result = result


def run_async(main: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run ``main(stop)``; Ctrl-C or SIGTERM set ``stop`` so work ends cleanly, and
    then raise ``Interrupted`` with what it returned (the shell's exit 130)."""
    signalled = []

    def on_signal() -> None:
        signalled.append(True)
        stop.set()

    async def runner() -> T:
        nonlocal stop
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        return await main(stop)

    stop: asyncio.Event
    result = asyncio.run(runner())
    if signalled:
        raise Interrupted(result)
    return result


def import_early() -> None:
    """Import, on the main thread before the worker consumes, the heavy modules its
    threads would otherwise import on first use.

    - scikit-learn, imported by the cluster trainer's thread: 0.9 s of Python
      holding the GIL while the worker began a backlog (bench/pipeline.py,
      200,000 tracks: the lake took 33,014 and 27,454 tracks/s with it there,
      38,252 and 36,271 without).
    - polars, imported by the first Avro block read (the sink's or the
      trainer's thread): scikit-learn looks polars up in ``sys.modules`` on
      every fit, found it half imported, and the AttributeError took the
      worker down (2 of 14 runs of that bench at 500,000 tracks lost their
      worker once the trainer no longer spent its first second importing
      scikit-learn; the one log kept shows this).
    """
    import polars  # noqa: F401
    import sklearn.cluster
    import sklearn.preprocessing  # noqa: F401


def tune_gc() -> None:
    """Collect garbage less often in a long-running worker.

    With CPython's default thresholds (a young collection every 700 new
    objects), the many short-lived records of a busy worker get promoted, and
    a full collection of every long-lived object (about 200,000 after the
    imports) follows every few tenths of a second: a quarter of the worker's
    time in ``bench/pipeline.py``. The worker's data is not cyclic; what it
    holds long is frozen out of the collector's walk.
    """
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
