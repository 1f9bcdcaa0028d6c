"""The ETL jobs, one code path for ``spotify-stream etl`` and the Glue jobs in ``glue/jobs/``.

``compact`` rewrites a day's small windowed files (``compaction``); ``aggregate``
builds the day's marts (``marts``). Both run only on a settled day: the sink
may rewrite its last, uncommitted flushes after a crash, and a mart built
before a day's last plays would hide them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from spotify_stream.errors import UsageError
from spotify_stream.settings import Settings
from spotify_stream.sink.parquet import encode
from spotify_stream.sink.storage import Storage
from spotify_stream.warehouse.marts import mart_schema, marts
from spotify_stream.warehouse.query import run_duckdb

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


async def aggregate_day(
    settings: Settings, storage: Storage, day: dt.date, names: list[str] | None = None
) -> dict[str, int]:
    """Build the marts ``names`` (default: all) of ``day``: mart -> rows written."""
    written = {}
    for name in names or list(marts()):
        mart = marts()[name]
        sql = mart.for_days(f"SELECT '{day:%Y-%m-%d}' AS dt")
        table = await asyncio.to_thread(run_duckdb, settings, sql)
        table = table.drop_columns(["dt"]).cast(mart_schema(name))
        data = await asyncio.to_thread(encode, table, settings.parquet_row_group_rows)
        await storage.put(f"{mart.folder(day)}part-0.parquet", data)
        written[name] = table.num_rows
    return written
