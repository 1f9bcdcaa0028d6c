"""Running async work from the command line, with Ctrl-C as a clean stop."""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def run_async(main: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run ``main(stop)``; Ctrl-C or SIGTERM set ``stop`` so work ends cleanly."""

    async def runner() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await main(stop)

    return asyncio.run(runner())


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
