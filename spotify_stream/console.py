"""Terminal output for the commands: progress bars and summary tables (rich)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from spotify_stream.ingest.catalog import FileStats
from spotify_stream.ingest.producer import ProduceResult, ProgressCallback

if TYPE_CHECKING:
    import pyarrow as pa

    from spotify_stream.dashboard.report import Report
    from spotify_stream.warehouse.catalog import SyncResult
    from spotify_stream.warehouse.compaction import Compacted
    from spotify_stream.warehouse.query import NamedQuery

out = Console()
if not out.is_terminal:
    out = Console(width=120)  # logs and CI: wide enough for the summary tables
err = Console(stderr=True)


@contextmanager
def file_progress() -> Iterator[ProgressCallback]:
    """A progress bar per file (bytes read, rows, rows/s); yields the update callback."""
    progress = Progress(
        TextColumn("{task.description:<32}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[rows]:>9,} rows  {task.fields[rate]:>8,.0f} rows/s"),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
    )
    tasks: dict[str, TaskID] = {}

    def update(name: str, stats: FileStats) -> None:
        if stats.read == 0 and name not in tasks:
            return
        if name not in tasks:
            tasks[name] = progress.add_task(name, total=stats.size or None, rows=0, rate=0.0)
        task = progress.tasks[tasks[name]]
        elapsed = task.elapsed or 0.0
        progress.update(
            tasks[name],
            completed=stats.bytes_read,
            rows=stats.read,
            rate=stats.read / elapsed if elapsed > 0 else 0.0,
        )

    with progress:
        yield update


def produce_summary(result: ProduceResult) -> None:
    table = Table(title="Rows of each file", title_justify="left")
    for column in ("file", "read", "accepted", "rejected", "rejected by reason"):
        left = column in ("file", "rejected by reason")
        table.add_column(column, justify="left" if left else "right", no_wrap=column == "file")
    for name, stats in result.files.items():
        reasons = "\n".join(f"{r}: {n:,}" for r, n in sorted(stats.rejected.items()))
        table.add_row(
            name,
            f"{stats.read:,}",
            f"{stats.produced:,}",
            f"{sum(stats.rejected.values()):,}",
            (stats.error and f"[red]{stats.error}[/]") or reasons,
        )
    out.print(table)
    topics = Table(
        title="Messages acknowledged by Kafka (one per entity: the albums file has a row "
        "per track)",
        title_justify="left",
    )
    topics.add_column("topic")
    topics.add_column("messages", justify="right")
    for topic, count in sorted(result.messages.items()):
        topics.add_row(topic, f"{count:,}")
    out.print(topics)
    rate = result.rows_read / result.seconds if result.seconds else 0.0
    state = "interrupted after" if result.interrupted else "done in"
    out.print(f"{state} {result.seconds:.1f} s: {result.rows_read:,} rows, {rate:,.0f} rows/s")


def worker_summary(stats: dict, url: str) -> None:
    """What a worker has done, and where to look at it."""
    table = Table(title="stream worker", show_edge=False)
    table.add_column("topic")
    table.add_column("records in", justify="right")
    table.add_column("messages out", justify="right")
    for name, entry in stats["topics"].items():
        table.add_row(name, f"{entry['records_in']:,}", f"{entry['messages_out']:,}")
    out.print(table)
    events = stats["events"]
    out.print(
        f"enriched tracks emitted: {events.get('emitted', 0):,} "
        f"({events.get('emitted_incomplete', 0):,} incomplete after the max wait), "
        f"re-emitted: {events.get('re-emitted', 0) + events.get('labelled_later', 0):,}, "
        f"waiting: {stats['pending_joins']:,}"
    )
    dead = ", ".join(f"{k}={v}" for k, v in stats["dead_letters"].items()) or "none"
    out.print(f"dead letters from the worker: {dead}")
    out.print(
        f"monitoring: {url}/pipeline/stats  {url}/metrics  "
        f"{url}/popularity/top?entity=artist&window=1h&n=10"
    )
    out.print(f"dashboard: {url}/dashboard (the demo with --serve keeps it up)")


def sink_summary(stats: dict[str, dict], lake: str) -> None:
    """What a lake sink process landed, per dataset."""
    table = Table(title=f"landed in {lake}", title_justify="left", show_edge=False)
    for column in ("dataset", "records read", "objects", "rows", "flushes", "failures"):
        table.add_column(column, justify="left" if column == "dataset" else "right")
    for name, s in stats.items():
        table.add_row(
            name, *(f"{s[k]:,}" for k in ("read", "files", "rows", "flushes", "failures"))
        )
    out.print(table)


def lake_summary(counts: dict[str, tuple[int, int]], url: str) -> None:
    """The datasets in the lake, counted from the Parquet footers."""
    table = Table(title=f"lake: {url}/curated/", show_edge=False)
    table.add_column("dataset")
    table.add_column("Parquet objects", justify="right")
    table.add_column("rows", justify="right")
    for dataset, (objects, rows) in sorted(counts.items()):
        table.add_row(dataset, f"{objects:,}", f"{rows:,}")
    out.print(table)


def report_summary(report: Report) -> None:
    out.print(f"report: {report.index} ({len(report.pngs)} charts as PNG beside it)")


def recommendations(user_id: str, body: dict) -> None:
    """One user's recommendations, as the endpoint returned them."""
    table = Table(
        title=f"recommended for {user_id} (from {body['based_on_plays']} recent plays, "
        f"model version {body['model_version']})",
        show_edge=False,
    )
    for column in ("track", "artist", "popularity", "cluster", "distance"):
        table.add_column(column, justify="left" if column in ("track", "artist") else "right")
    for track in body["recommendations"]:
        table.add_row(
            track["name"] or track["track_id"],
            track["artist_name"] or "",
            str(track["popularity"]),
            str(track["cluster_id"]),
            f"{track['distance']:.2f}",
        )
    out.print(table)


@contextmanager
def counting_progress(description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar of done / total items; yields the update callback."""
    progress = Progress(
        TextColumn(description),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
        transient=True,
    )
    task = progress.add_task(description, total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    with progress:
        yield update


def catalog_summary(result: SyncResult, database: str) -> None:
    table = Table(title=f"Glue database {database}", show_edge=False)
    table.add_column("table")
    table.add_column("definition")
    table.add_column("partitions added", justify="right")
    for name, state in result.tables.items():
        table.add_row(name, state, f"{result.partitions_added.get(name, 0):,}")
    out.print(table)
    if result.database_created:
        out.print(f"created the database {database}")
    out.print("changed nothing: the catalog was up to date" if not result.changed else "synced")


def compaction_summary(results: dict[str, Compacted], day: object) -> None:
    table = Table(title=f"compaction of {day}", show_edge=False)
    for column in ("dataset", "partitions rewritten", "files before", "files after", "rows"):
        table.add_column(column, justify="left" if column == "dataset" else "right")
    for name, r in results.items():
        if r.files_before:
            table.add_row(
                name, f"{r.folders:,}", f"{r.files_before:,}", f"{r.files_after:,}", f"{r.rows:,}"
            )
    out.print(table if table.row_count else f"no files for {day}: nothing to compact")


def marts_summary(written: dict[str, int], day: object) -> None:
    table = Table(title=f"marts of {day}", show_edge=False)
    table.add_column("mart")
    table.add_column("rows", justify="right")
    for name, rows in written.items():
        table.add_row(name, f"{rows:,}")
    out.print(table)


def deploy_summary(done: list[tuple], values: dict[str, str]) -> None:
    table = Table(title="Glue", show_edge=False)
    for column in ("kind", "name", "action"):
        table.add_column(column)
    for row in done:
        table.add_row(*row)
    out.print(table)
    out.print(f"job scripts in {values['scripts']}; the jobs install {values['package']}")


def quicksight_summary(done: list[tuple[str, str, str]], dashboard: str, region: str) -> None:
    table = Table(title="QuickSight", show_edge=False)
    for column in ("kind", "id", "action"):
        table.add_column(column)
    for row in done:
        table.add_row(*row)
    out.print(table)
    out.print(
        f"dashboard id: {dashboard}  "
        f"(https://{region}.quicksight.aws.amazon.com/sn/dashboards/{dashboard})"
    )


def query_list(queries: Iterable[NamedQuery]) -> None:
    table = Table(show_edge=False)
    for column in ("query", "returns", "parameters (default)"):
        table.add_column(column)
    for q in queries:
        params = ", ".join(
            f"{k}={v}" if v is not None else f"{k} (required)" for k, v in q.defaults.items()
        )
        table.add_row(q.name, q.description, params)
    out.print(table)


def query_result(result: pa.Table, fmt: str) -> None:
    """A query's rows on stdout: a table for people (one block per row when the columns
    do not fit the terminal); CSV, a JSON array or JSON lines for programs. Lists and
    structs are JSON inside a CSV cell or a table cell."""
    import csv
    import json
    import sys

    from spotify_stream.dashboard.data import jsonable

    rows = result.to_pylist()
    if fmt == "json":
        json.dump(jsonable(rows), sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    if fmt == "jsonl":
        for row in rows:
            sys.stdout.write(json.dumps(jsonable(row), ensure_ascii=False) + "\n")
        return
    cells = [[_cell(v) for v in row.values()] for row in rows]
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(result.column_names)
        writer.writerows(cells)
        return
    widths = [
        max([len(name), *(len(row[i]) for row in cells)]) + 3
        for i, name in enumerate(result.column_names)
    ]
    if sum(widths) <= out.width:
        table = Table(show_edge=False)
        for name in result.column_names:
            table.add_column(name)
        for row in cells:
            table.add_row(*row)
        out.print(table)
    else:  # psql's expanded display: a name-value block per row
        for n, row in enumerate(cells, 1):
            block = Table(
                show_edge=False, show_header=False, title=f"row {n}", title_justify="left"
            )
            block.add_column(style="bold")
            block.add_column(overflow="fold")
            for name, value in zip(result.column_names, row, strict=True):
                block.add_row(name, value)
            out.print(block)
    out.print(f"{len(rows):,} rows")


def _cell(value: object) -> str:
    """A value as text: ISO 8601 times, lists and structs as JSON, NULL as nothing."""
    import json

    from spotify_stream.dashboard.data import jsonable

    value = jsonable(value)
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
