"""``spotify-stream report``: the dashboard's lake charts as PNG files and an index.html.

For sharing without a running worker: every chart of ``charts.CHARTS`` that
the lake answers (the named queries, the cluster map), from any lake the
DuckDB engine reads (file or S3). Each PNG is ``PNG_SIZE`` pixels; the page
gives each chart its title, description, a text alternative and the numbers
as a table, so it reads without the pictures and without colour.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import html
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spotify_stream.dashboard.charts import CHARTS, Chart
from spotify_stream.dashboard.data import cluster_map_of, query_rows
from spotify_stream.ml.clustering import FEATURES
from spotify_stream.settings import Settings

log = logging.getLogger(__name__)

PNG_SIZE = (1000, 600)  # pixels
_DPI = 100
_MARKERS = "os^Dv<>pP*Xh"  # series told apart by shape, not by colour alone
_LINES = ("-", "--", "-.", ":")


@dataclass(frozen=True)
class Report:
    index: Path
    pngs: list[Path]


async def write_report(settings: Settings, out: Path) -> Report:
    """Render every lake chart of ``settings``' lake into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    sections, pngs = [], []
    cluster_map = await cluster_map_of(settings, points=20_000)
    for chart in CHARTS:
        if chart.live:
            continue
        rows = await asyncio.to_thread(query_rows, settings, chart) if chart.query else []
        path = out / f"{chart.id}.png"
        table = await asyncio.to_thread(_draw, chart, rows, cluster_map, path)
        pngs.append(path)
        sections.append(_section(chart, path.name, table))
    index = out / "index.html"
    index.write_text(_page(settings, sections))
    return Report(index, pngs)


@functools.cache
def font_families() -> tuple[str, ...]:
    """DejaVu Sans, then a Noto CJK font when one is installed (Debian's fonts-noto-cjk,
    which ``./dev`` installs): matplotlib takes each glyph from the first that has it."""
    from matplotlib import font_manager

    manager = font_manager.fontManager
    if not any("CJK" in f.name for f in manager.ttflist):  # installed after the font cache
        for path in font_manager.findSystemFonts():
            if Path(path).name in ("NotoSansCJK-Regular.ttc", "NotoSansCJK-Bold.ttc"):
                manager.addfont(path)
    cjk = sorted({f.name for f in manager.ttflist if f.name.startswith("Noto Sans CJK")})
    return ("DejaVu Sans", *cjk[:1])


def _draw(chart: Chart, rows: list[dict[str, Any]], cluster_map, path: Path) -> list[list[Any]]:
    """Draw ``chart`` into ``path``; returns its numbers as table rows (header first).

    A glyph no installed font has is drawn as a box, and said once in the log (not
    as one matplotlib warning per glyph)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with (
        plt.rc_context({"font.family": list(font_families())}),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        table = _render(plt, chart, rows, cluster_map, path)
    missing = sorted(
        {str(w.message).split(" (")[0] for w in caught if "missing from" in str(w.message)}
    )
    if missing:
        log.warning(
            "%s: %d characters drawn as boxes (%s); install Debian's fonts-noto-cjk",
            path.name,
            len(missing),
            ", ".join(missing[:3]),
        )
    for w in caught:
        if "missing from" not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return table


def _render(
    plt, chart: Chart, rows: list[dict[str, Any]], cluster_map, path: Path
) -> list[list[Any]]:
    fig, ax = plt.subplots(figsize=(PNG_SIZE[0] / _DPI, PNG_SIZE[1] / _DPI), dpi=_DPI)
    ax.set_title(chart.title)
    table: list[list[Any]] = []
    if chart.id == "cluster_scatter":
        table = _scatter(ax, cluster_map)
    elif chart.id == "cluster_profiles":
        table = _heatmap(fig, ax, cluster_map)
    elif not rows:
        ax.text(0.5, 0.5, "no data in the lake yet", ha="center", va="center")
        ax.set_axis_off()
    elif chart.kind == "bar":
        labels = [str(r[chart.x]) for r in rows][::-1]
        values = [r[chart.y] for r in rows][::-1]
        bars = ax.barh(labels, values, color="#1f77b4")
        ax.bar_label(bars, fmt="{:,.0f}", padding=3)
        ax.set_xlabel(chart.y_label)
        ax.set_ylabel(chart.x_label)
        table = [[chart.x_label, chart.y_label], *([r[chart.x], r[chart.y]] for r in rows)]
    elif chart.kind == "line":
        import matplotlib.dates as mdates

        series = sorted({r[chart.series] for r in rows})
        days = sorted({dt.date.fromisoformat(str(r[chart.x])) for r in rows})
        pad = max(dt.timedelta(days=1), (days[-1] - days[0]) / 20)  # the data's span
        ax.set_xlim(days[0] - pad, days[-1] + pad)
        short = (days[-1] - days[0]).days < 10  # a tick a day; else matplotlib's choice
        ax.xaxis.set_major_locator(mdates.DayLocator() if short else mdates.AutoDateLocator())
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
        for i, name in enumerate(series):
            points = [(r[chart.x], r[chart.y]) for r in rows if r[chart.series] == name]
            ax.plot(
                [dt.date.fromisoformat(str(x)) for x, _ in points],
                [y for _, y in points],
                marker=_MARKERS[i % len(_MARKERS)],
                linestyle=_LINES[i % len(_LINES)],
                label=name,
            )
        ax.set_xlabel(chart.x_label)
        ax.set_ylabel(chart.y_label)
        ax.legend(title=chart.series, fontsize="small", loc="upper left", bbox_to_anchor=(1, 1))
        fig.autofmt_xdate()
        table = [
            [chart.x_label, chart.series, chart.y_label],
            *([r[chart.x], r[chart.series], r[chart.y]] for r in rows),
        ]
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)  # no tight bbox: every PNG is PNG_SIZE
    plt.close(fig)
    return table


def _scatter(ax, m) -> list[list[Any]]:
    if m is None:
        ax.text(0.5, 0.5, "no cluster model in the lake yet", ha="center", va="center")
        ax.set_axis_off()
        return []
    import matplotlib.pyplot as plt

    colours = plt.get_cmap("tab10" if len(m.profiles) <= 10 else "tab20")
    for cluster in m.ids:
        at = m.labels == cluster
        ax.scatter(
            *m.xy[at].T,
            s=6,
            alpha=0.5,
            color=colours(cluster % colours.N),
            marker=_MARKERS[cluster % len(_MARKERS)],
            label=f"{cluster}",
        )
    for cluster, (cx, cy) in zip(m.ids, m.centers_xy, strict=True):
        ax.annotate(str(cluster), (cx, cy), ha="center", va="center", weight="bold")
    ax.set_xlabel(f"principal component 1 ({m.explained[0]:.0f}% of variance)")
    ax.set_ylabel(f"principal component 2 ({m.explained[1]:.0f}% of variance)")
    ax.legend(
        title="cluster", markerscale=3, fontsize="small", loc="upper left", bbox_to_anchor=(1, 1)
    )
    counts = {int(c): int((m.labels == c).sum()) for c in m.ids}
    return [["cluster", "tracks shown"], *([c, n] for c, n in counts.items())]


def _heatmap(fig, ax, m) -> list[list[Any]]:
    if m is None:
        ax.text(0.5, 0.5, "no cluster model in the lake yet", ha="center", va="center")
        ax.set_axis_off()
        return []
    limit = max(1.0, float(np.nanmax(np.abs(m.means))))
    image = ax.imshow(m.means, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    for (row, col), value in np.ndenumerate(m.means):
        if not np.isnan(value):  # the value written in each cell: no colour needed
            ax.text(col, row, f"{value:+.1f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(FEATURES)), FEATURES, rotation=30, ha="right")
    ax.set_yticks(range(len(m.profiles)), [f"{c} ({size:,})" for c, size, _ in m.profiles])
    ax.set_xlabel("audio feature")
    ax.set_ylabel("cluster (tracks)")
    fig.colorbar(image, ax=ax, shrink=0.8, label="standard deviations from all tracks")
    return [
        ["cluster", "tracks", *FEATURES],
        *(
            [c, size, *(f"{v:+.2f}" for v in means)]
            for (c, size, _), means in zip(m.profiles, m.means, strict=True)
        ),
    ]


def _section(chart: Chart, png: str, table: list[list[Any]]) -> str:
    e = html.escape
    rows = "".join(
        "<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in row) + "</tr>" for row in table[1:]
    )
    head = "".join(f'<th scope="col">{e(str(v))}</th>' for v in table[0]) if table else ""
    numbers = (
        f"<table><caption>{e(chart.title)}: the numbers</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        if table
        else "<p>No data in the lake yet.</p>"
    )
    return (
        f'<section id="{chart.id}"><h2>{e(chart.title)}</h2><p>{e(chart.description)}</p>'
        f'<img src="{png}" width="{PNG_SIZE[0]}" height="{PNG_SIZE[1]}" '
        f'alt="{e(chart.title)}: {e(chart.description)}">{numbers}</section>'
    )


def _page(settings: Settings, sections: list[str]) -> str:
    made = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>spotify-stream report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; max-width: 1040px; color: #222; }}
img {{ max-width: 100%; height: auto; border: 1px solid #ddd; }}
table {{ border-collapse: collapse; margin: 1rem 0 2rem; font-size: 0.9rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: left; }}
caption {{ text-align: left; font-weight: bold; padding: 0.3rem 0; }}
</style></head><body>
<h1>spotify-stream report</h1>
<p>From the lake at {html.escape(settings.lake)}, {made}. The same charts, live: the
worker's <code>/dashboard</code>.</p>
{"".join(sections)}
</body></html>
"""
