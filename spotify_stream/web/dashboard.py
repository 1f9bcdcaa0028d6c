"""The live dashboard on the worker's web server: ``/dashboard``.

- ``/dashboard``: the page (``static/dashboard.html``); it loads
  ``/dashboard/charts`` (``dashboard.charts.CHARTS``) and draws each chart from
  ``/dashboard/data/{chart}`` with the vendored Chart.js, offline.
- Lake charts run their named query over the worker's lake (DuckDB engine, in
  a thread) at most every ``dashboard_refresh`` seconds; the page asks again
  on the same period. Live charts (the rolling window's artists, the pipeline
  panel) come from the worker's own tables and refresh every few seconds.

Errors are JSON: 400 for a bad parameter, 404 for an unknown chart or file, 503
when the lake cannot be read (``json_errors`` does it for every route of the
server, and answers a bug in a view with a JSON 500).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web as aioweb
from faust.web import Request, Response, Web

from spotify_stream.dashboard.charts import BY_ID, CHARTS
from spotify_stream.dashboard.data import cluster_map_of, jsonable, query_rows
from spotify_stream.errors import UserError
from spotify_stream.ml.clustering import FEATURES
from spotify_stream.settings import Settings
from spotify_stream.tables.dimensions import DimensionStore
from spotify_stream.tables.leaderboard import Leaderboard

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
ASSETS = {
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "chart.umd.min.js": "text/javascript",
}
SCATTER_POINTS = 2000  # what a browser draws without effort


@aioweb.middleware
async def json_errors(request: aioweb.Request, handler: Callable) -> aioweb.StreamResponse:
    """aiohttp's own 404 and 405 (no route), and a bug in a view, as JSON, like every
    error of our views."""
    try:
        return await handler(request)
    except aioweb.HTTPException as exc:
        if exc.status < 400:
            raise
        return aioweb.json_response(
            {"error": f"{exc.reason.lower()}: {request.method} {request.path}"}, status=exc.status
        )
    except Exception as exc:
        log.exception("%s %s failed", request.method, request.path)
        return aioweb.json_response(
            {"error": f"internal error: {type(exc).__name__}: {exc}".splitlines()[0]}, status=500
        )


def window_note(window: str, closes_at: int | None) -> str:
    """Why a popularity window is empty, and when it will not be."""
    if closes_at is None:
        return f"no {window} window has closed yet: no plays have reached this worker"
    at = dt.datetime.fromtimestamp(closes_at / 1000, dt.UTC)
    return (
        f"no {window} window has closed yet: the first closes once plays of event time "
        f"{at:%Y-%m-%d %H:%M:%S} UTC arrive (its end plus the grace; "
        "simulate-plays --backfill fills past windows)"
    )


class LakeCache:
    """Each lake chart's data, computed in a thread at most every ``ttl`` seconds; one
    computation at a time per chart, so a burst of page loads runs one query."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ttl = settings.dashboard_refresh
        self._data: dict[str, tuple[float, Any]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, key: str, compute: Callable[[], Awaitable[Any]]) -> Any:
        async with self._locks.setdefault(key, asyncio.Lock()):
            at, value = self._data.get(key, (0.0, None))
            if time.monotonic() - at >= self.ttl:
                value = await compute()
                self._data[key] = (time.monotonic(), value)
            return value


def register(
    app: Any,
    *,
    settings: Settings,
    snapshot: Callable[[], dict[str, Any]],
    leaderboard: Leaderboard,
    dimensions: DimensionStore,
    rolling_window: str,
    first_close: Callable[[str], int | None],
) -> None:
    cache = LakeCache(settings)

    def error(web: Web, status: int, message: str) -> Response:
        return web.json({"error": message}, status=status)

    @app.page("/dashboard")
    async def page(web: Web, request: Request) -> Response:
        return web.html((STATIC / "dashboard.html").read_text())

    @app.page("/dashboard/static/{name}")
    async def asset(web: Web, request: Request, name: str) -> Response:
        if name not in ASSETS:
            return error(web, 404, f"no file {name}")
        return web.bytes((STATIC / name).read_bytes(), content_type=ASSETS[name])

    @app.page("/dashboard/charts")
    async def charts(web: Web, request: Request) -> Response:
        return web.json(
            {
                "refresh_seconds": settings.dashboard_refresh,
                "live_refresh_seconds": settings.dashboard_live_refresh,
                "charts": [chart.as_json() for chart in CHARTS],
            }
        )

    async def lake_rows(chart_id: str) -> list[dict[str, Any]]:
        chart = BY_ID[chart_id]
        return await cache.get(chart_id, lambda: asyncio.to_thread(query_rows, settings, chart))

    async def clusters() -> dict[str, Any] | None:
        async def compute() -> dict[str, Any] | None:
            m = await cluster_map_of(settings, SCATTER_POINTS)
            if m is None:
                return None
            return {
                "version": m.version,
                "tracks": m.tracks,
                "explained": [round(float(v), 1) for v in m.explained],
                "points": [
                    {"pc1": round(float(x), 3), "pc2": round(float(y), 3), "cluster_id": int(c)}
                    for (x, y), c in zip(m.xy, m.labels, strict=True)
                ],
                "features": list(FEATURES),
                "profiles": [
                    {
                        "cluster_id": c,
                        "size": size,
                        "top_genres": genres[:3],
                        "z": [None if v != v else round(float(v), 2) for v in means],
                    }
                    for (c, size, genres), means in zip(m.profiles, m.means, strict=True)
                ],
            }

        return await cache.get("clusters", compute)

    def rolling(n: int) -> dict[str, Any]:
        top = leaderboard.top("artist", rolling_window, n)
        rows = []
        for record in top:
            artist = dimensions.get("artist", record["entity_id"]) or {}
            rows.append(
                {
                    "artist_id": record["entity_id"],
                    "name": artist.get("name") or record["entity_id"],
                    "plays": record["plays"],
                    "unique_listeners": record["unique_listeners"],
                }
            )
        first = top[0] if top else {}
        return {
            "window": rolling_window,
            "window_start": first.get("window_start"),
            "window_end": first.get("window_end"),
            "rows": rows,
            "note": None if rows else window_note(rolling_window, first_close(rolling_window)),
        }

    def pipeline() -> dict[str, Any]:
        snap = snapshot()
        lag: dict[str, int] = {}
        for entry in snap["consumer_lag"]:
            if entry["lag"] is not None:
                lag[entry["topic"]] = lag.get(entry["topic"], 0) + entry["lag"]
        return {
            "topics": [
                {
                    "topic": name,
                    "rate_in": values["rate_in"],
                    "rate_out": values["rate_out"],
                    "lag": lag.get(name),
                }
                for name, values in snap["topics"].items()
            ],
            "dead_letters": snap["dead_letters"],
            "lake": [
                {
                    "dataset": name,
                    "files": values["files"],
                    "rows": values["rows"],
                    "last_flush_at": values["last_flush_at"],
                }
                for name, values in snap["lake"].items()
            ],
            "uptime_seconds": snap["uptime_seconds"],
        }

    @app.page("/dashboard/data/{chart_id}")
    async def data(web: Web, request: Request, chart_id: str) -> Response:
        chart = BY_ID.get(chart_id)
        if chart is None:
            return error(web, 404, f"no chart {chart_id}; the charts are {', '.join(BY_ID)}")
        if chart_id == "rolling_artists":
            raw = request.query.get("n", "10")
            if not raw.isdigit() or not 1 <= int(raw) <= 100:
                return error(web, 400, f"n must be an integer between 1 and 100, not {raw!r}")
            return web.json(jsonable(rolling(int(raw))))
        if chart_id == "pipeline":
            return web.json(jsonable(pipeline()))
        if chart_id in ("cluster_scatter", "cluster_profiles"):
            return web.json({"clusters": await clusters()})
        try:
            return web.json({"rows": await lake_rows(chart_id)})
        except UserError as exc:
            return error(web, 503, str(exc))
