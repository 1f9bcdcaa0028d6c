"""The lake's side of the charts: each query chart's rows, and the cluster map.

The same functions feed the live dashboard's JSON endpoints and the static
report, so both show what the named queries return.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
from typing import Any

from spotify_stream.dashboard.charts import Chart
from spotify_stream.settings import Settings


def jsonable(value: Any) -> Any:
    """``value`` with what JSON lacks as strings (times, bytes) or floats (decimals)."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, decimal.Decimal):  # DuckDB's sums of integers
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def query_rows(settings: Settings, chart: Chart) -> list[dict[str, Any]]:
    """The rows of ``chart``'s named query over the lake (DuckDB engine; blocking)."""
    from spotify_stream.warehouse.query import named, run_duckdb

    assert chart.query is not None
    return jsonable(run_duckdb(settings, named(chart.query).bind(chart.params)).to_pylist())


async def cluster_map_of(settings: Settings, points: int):
    """The lake's cluster map (``ml.projection.ClusterMap``), None before the first model."""
    import asyncio

    from spotify_stream.ml.projection import TRACK_COLUMNS, cluster_map
    from spotify_stream.sink.objects import read_dataset
    from spotify_stream.sink.storage import storage_for

    storage = storage_for(settings)
    try:
        profiles = await read_dataset(storage, "clusters")
        tracks = await read_dataset(storage, "tracks_enriched", TRACK_COLUMNS)
    finally:
        await storage.close()
    if profiles is None or tracks is None:
        return None
    try:
        return await asyncio.to_thread(cluster_map, profiles, tracks, points)
    except ValueError:
        return None
