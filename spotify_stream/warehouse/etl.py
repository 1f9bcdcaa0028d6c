"""The ETL jobs, one code path for ``spotify-stream etl`` and the Glue jobs in ``glue/jobs/``.

``compact`` rewrites a day's small windowed files (``compaction``); ``aggregate``
builds the day's marts (``marts``). Both run only on a settled day: the sink
may rewrite its last, uncommitted flushes after a crash, and a mart built
before a day's last plays would hide them.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

from spotify_stream.errors import UsageError
from spotify_stream.settings import Settings

JOBS = ("compact", "aggregate")


def check_settled(day: dt.date, settings: Settings, now: dt.datetime | None = None) -> None:
    """Raise a ``UserError`` unless ``day`` ended ``etl_settle`` seconds ago."""
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
    settled = end + dt.timedelta(seconds=settings.etl_settle)
    if (now or dt.datetime.now(dt.UTC)) < settled:
        raise UsageError(
            f"{day} is not settled before {settled:%Y-%m-%d %H:%M} UTC: the sink may still "
            "rewrite its last flushes (--force once the workers have stopped)"
        )


def yesterday() -> dt.date:
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def glue_dir() -> Path:
    """``glue/``: inside the package of a wheel, beside it in a source checkout."""
    packaged = Path(__file__).parents[1] / "glue"
    return packaged if packaged.is_dir() else Path(__file__).parents[2] / "glue"


def glue_main(job: str, argv: list[str] | None = None) -> None:
    """Entry point of the Glue job scripts: runs ``spotify-stream etl JOB --date D``.

    Glue passes the job's arguments as ``--name value`` pairs beside its own
    (``--JOB_NAME``, ...): ``--date`` is the day (default: yesterday) and each
    ``--SPOTIFY_STREAM_<NAME>`` becomes the setting of that name; the rest is ignored.
    """
    from spotify_stream.cli import main

    args = sys.argv[1:] if argv is None else argv
    pairs = {
        name: value
        for name, value in zip(args, [*args[1:], ""], strict=True)
        if name.startswith("--") and not value.startswith("--")
    }
    for name, value in pairs.items():
        if name.startswith("--SPOTIFY_STREAM_"):
            os.environ[name.removeprefix("--")] = value
    sys.argv = ["spotify-stream", "etl", job, "--date", pairs.get("--date") or f"{yesterday()}"]
    main()
