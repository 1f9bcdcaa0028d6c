"""The ``spotify-stream`` command."""

from __future__ import annotations

import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any, TypeVar

import click

from spotify_stream import __version__
from spotify_stream.errors import UsageError, UserError
from spotify_stream.runtime import Interrupted, import_early, run_async, tune_gc
from spotify_stream.settings import Settings, get_settings

T = TypeVar("T")
log = logging.getLogger("spotify_stream")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Duration(click.ParamType):
    """Seconds from ``90``, ``90s``, ``15m``, ``2h`` or ``1d``."""

    name = "duration"

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip().lower()
        unit = _UNITS.get(text[-1:])
        number = text[:-1] if unit else text
        try:
            seconds = float(number) * (unit or 1)
        except ValueError:
            self.fail(f"{value!r} is not a duration such as 90s, 15m, 2h or 1d", param, ctx)
        if seconds < 0:
            self.fail(f"{value!r} is negative", param, ctx)
        return seconds


def _dataset_names() -> list[str]:
    from spotify_stream.sink.datasets import DATASETS

    return [d.name for d in DATASETS]


def _mart_names() -> list[str]:
    from spotify_stream.warehouse.marts import marts

    return sorted(marts())


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # aiokafka logs every failed connection attempt; our own one-line errors say it once.
    logging.getLogger("aiokafka").setLevel(logging.DEBUG if verbose else logging.CRITICAL)
    # "Found credentials in environment variables": which source, on every client.
    for name in ("aiobotocore.credentials", "botocore.credentials"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)


def _directory(path: Path) -> Path:
    """``path`` created if missing, or one line saying why it cannot be."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the directory {path}: {exc.strerror}") from None
    return path


def _lake_settings() -> Settings:
    """The settings of a command that reads the lake, once the lake is there to read."""
    from spotify_stream.sink.storage import require_lake

    settings = _settings()
    require_lake(settings)
    return settings


def _settings() -> Settings:
    try:
        return get_settings()
    except Exception as exc:  # pydantic ValidationError: name the variable
        raise UsageError(f"invalid setting: {exc}".replace("\n", " ")) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="spotify-stream")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging, tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Real-time pipeline for Spotify catalog and listening data.

    Settings come from SPOTIFY_STREAM_* environment variables or a .env file;
    the defaults run everything locally on the embedded broker.
    """
    ctx.obj = {"verbose": verbose}
    _setup_logging(verbose)


@cli.command()
@click.option("--port", default=9092, show_default=True, help="Port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
def broker(port: int, host: str) -> None:
    """Run the embedded Kafka-compatible broker (Tansu) in the foreground.

    Data lives in memory and is gone when the broker stops (Ctrl-C).
    """
    from spotify_stream.embedded import EmbeddedBroker

    embedded = EmbeddedBroker(port=port, host=host)
    bootstrap = embedded.start()
    click.echo(
        f"broker ready on {bootstrap} (SPOTIFY_STREAM_BROKER=kafka://{bootstrap}); Ctrl-C stops it"
    )
    stopping = False

    def _stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    while embedded.running and not stopping:
        time.sleep(0.2)
    if not stopping:
        tail = embedded.log_tail()
        embedded.stop()
        raise UserError(f"embedded broker exited unexpectedly: {tail or 'no output'}")
    embedded.stop()
    click.echo("broker stopped")


@cli.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory to write the four Kaggle-format CSV files to.",
)
@click.option(
    "--tracks",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Number of tracks (artists and albums scale with it).",
)
@click.option(
    "--seed", type=int, default=42, show_default=True, help="Random seed; same seed, same files."
)
@click.option(
    "--anomalies",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Fraction of extra corrupted rows per file (listed in _anomalies.csv).",
)
def generate(out_dir: Path, tracks: int, seed: int, anomalies: float) -> None:
    """Write a realistic synthetic data set in the Kaggle "Spotify Dataset 2023" format."""
    from spotify_stream.ingest.generator import generate as run

    _directory(out_dir)
    written = run(out_dir, tracks, seed=seed, anomalies=anomalies, progress=log.info)
    total = sum(written.values())
    click.echo(f"wrote {total:,} rows in {len(written)} files to {out_dir}")


@cli.command()
@click.option(
    "--source",
    required=True,
    metavar="DIR|s3://BUCKET/PREFIX",
    help="Where the Kaggle entity files are.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Messages per second at most (default: as fast as Kafka takes them).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Only the first N rows of the tracks file, with their album rows, audio features "
    "and artists (a small catalog whose every track joins whole).",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1, max=100_000),
    default=None,
    help="Opt-in bulk form: N records per message on input topics (default: one record per "
    "message keyed by id; SPOTIFY_STREAM_INPUT_BATCH_RECORDS).",
)
def produce(source: str, rate: float | None, limit: int | None, batch: int | None) -> None:
    """Clean the entity files and send them to the entity topics.

    Creates missing topics (SPOTIFY_STREAM_PARTITIONS partitions), keys every
    record by its id, sends rejected rows to spotify.deadletter with the reason,
    and prints a summary per file. Ctrl-C stops reading, flushes what was sent
    and reports it. Exits 1 if a file was missing or unreadable.
    """
    from spotify_stream import console
    from spotify_stream.ingest.producer import produce as run

    settings = _settings()
    if batch:
        settings = settings.model_copy(update={"input_batch_records": batch})
    try:
        with console.file_progress() as update:
            result = run_async(
                lambda stop: run(
                    settings, source, rate=rate, limit=limit, stop=stop, progress=update
                )
            )
    except Interrupted as exc:  # what was sent before Ctrl-C is in Kafka: say what
        console.produce_summary(exc.result)
        raise
    console.produce_summary(result)
    if result.file_errors:
        raise UserError("; ".join(result.file_errors), exit_code=1)


@cli.command("simulate-plays")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=100,
    show_default=True,
    help="Plays per second.",
)
@click.option(
    "--users",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Simulated listeners.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=60,
    show_default=True,
    help="Seconds to run.",
)
@click.option("--seed", type=int, default=None, help="Random seed for a repeatable run.")
@click.option(
    "--backfill",
    type=Duration(),
    default="0",
    metavar="DURATION",
    help="First send --backfill-plays plays played over this past period (e.g. 2h, 90m), "
    "in time order: popularity windows close without waiting for an hour to pass.",
)
@click.option(
    "--backfill-plays",
    type=click.IntRange(min=1),
    default=5000,
    show_default=True,
    help="Plays of the --backfill period.",
)
def simulate_plays(
    rate: float,
    users: int,
    duration: float,
    seed: int | None,
    backfill: float,
    backfill_plays: int,
) -> None:
    """Send listening events to spotify.plays, choosing tracks by popularity.

    The catalog is read from spotify.tracks, so run `produce` first. A
    popularity window closes once plays pass its end (an hour by default):
    --backfill fills past windows at once.
    Example: spotify-stream simulate-plays --backfill 2h --duration 30
    """
    from spotify_stream.ingest.plays import run_simulation

    settings = _settings()
    try:
        sent = run_async(
            lambda stop: run_simulation(
                settings,
                rate=rate,
                users=users,
                duration=duration,
                seed=seed,
                stop=stop,
                backfill=backfill,
                backfill_plays=backfill_plays,
            )
        )
    except Interrupted as exc:
        click.echo(f"sent {exc.result:,} plays to spotify.plays")
        raise
    click.echo(f"sent {sent:,} plays to spotify.plays")


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("faust_args", nargs=-1, type=click.UNPROCESSED)
def worker(faust_args: tuple[str, ...]) -> None:
    """Run a stream worker: the Faust app with this project's settings.

    Extra options go to `faust worker`, for example `-l info`, `--web-port 6067`
    (see `faust -A spotify_stream.app worker --help`). Start several with their
    own SPOTIFY_STREAM_DATA_DIR and web port to share the partitions.
    """
    from spotify_stream.kafka import ensure_worker_topics, partition_plan
    from spotify_stream.ownership import claim
    from spotify_stream.sink.storage import check_lake

    settings = _settings()
    # Faust retries an absent broker forever; say it in one line instead. (Before
    # the app is built: an app touched inside this loop would stay bound to it.)
    partitions, counts = run_async(lambda _stop: ensure_worker_topics(settings))
    for warning in partition_plan(settings.app_id, counts, settings.partitions):
        log.warning("%s", warning)
    if partitions != settings.partitions:  # the tables take the existing topics' count
        settings = settings.model_copy(update={"partitions": partitions})
    if settings.lake_sink:  # a wrong bucket or an unwritable directory: one line, not retries
        run_async(lambda _stop: check_lake(settings))
    run_async(lambda _stop: claim(settings))  # a lake or state of another broker: one line
    from spotify_stream.app import create_app

    app = create_app(settings)

    import_early()  # before the collector freezes what the imports made
    tune_gc()
    sys.argv = ["spotify-stream worker", "worker", *faust_args]
    app.main()


@cli.command()
def sink() -> None:
    """Run the lake sink alone, beside workers started with SPOTIFY_STREAM_LAKE_SINK=false.

    Reads every dataset's topic in the consumer group <app_id>-lake and lands it in
    SPOTIFY_STREAM_LAKE, as the sink inside a worker does (several sink processes
    share the partitions). Ctrl-C writes what it holds, commits it, and stops.
    """
    from spotify_stream import console
    from spotify_stream.kafka import ensure_worker_topics
    from spotify_stream.ownership import claim
    from spotify_stream.sink.process import run_sink
    from spotify_stream.sink.storage import check_lake

    settings = _settings()
    run_async(lambda _stop: ensure_worker_topics(settings))  # Kafka there, in one line
    run_async(lambda _stop: check_lake(settings))
    run_async(lambda _stop: claim(settings))  # a lake of another broker: one line
    try:
        lake = run_async(lambda stop: run_sink(settings, stop))
    except Interrupted as exc:  # the way to stop it: what it landed
        lake = exc.result
    console.sink_summary({s.dataset.name: s.stats for s in lake.sinks.values()}, settings.lake)


@cli.command()
@click.option(
    "--tracks",
    type=click.IntRange(min=1),
    default=2000,
    show_default=True,
    help="Size of the generated data set.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=5,
    show_default=True,
    help="Seconds of simulated plays.",
)
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo"),
    show_default=True,
    help="The demo's own directory: its data, lake, worker state, report and catalog. "
    "A second run clears what the first left there, and nothing else.",
)
@click.option("--serve", is_flag=True, help="Keep the worker and its web pages up until Ctrl-C.")
def demo(tracks: int, duration: float, workdir: Path, serve: bool) -> None:
    """Run the pipeline on the embedded defaults: broker, data, worker, producer, plays,
    an example recommendation, the lake and the cluster report, all in ./demo."""
    from spotify_stream.demo import run_demo

    run_demo(_settings(), tracks=tracks, duration=duration, workdir=workdir, serve=serve)


@cli.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("report"),
    show_default=True,
    help="Directory for index.html and the PNG files (created).",
)
def report(out_dir: Path) -> None:
    """The dashboard's charts of the lake as index.html and one PNG per chart.

    Reads SPOTIFY_STREAM_LAKE (./lake by default; s3://bucket/prefix with the
    AWS credential chain) with the named queries: top albums, most streamed
    artists, top genres over time, and the cluster map and profiles of the
    newest model version. For sharing without a running worker (the live
    version: the worker's /dashboard).
    """
    from spotify_stream import console
    from spotify_stream.dashboard.report import write_report

    settings = _lake_settings()
    _directory(out_dir)
    with console.out.status("reading the lake"):
        result = run_async(lambda _stop: write_report(settings, out_dir))
    console.report_summary(result)


@cli.group()
def catalog() -> None:
    """The lake's tables: Glue (for Athena) or a local DuckDB file."""


@catalog.command("sync")
@click.option(
    "--target",
    type=click.Choice(["glue", "local"]),
    default="local",
    show_default=True,
    help="glue: database, tables and partitions in AWS Glue (an s3:// lake); "
    "local: DuckDB views over a file:// lake.",
)
@click.option(
    "--duckdb",
    "duckdb_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("lake.duckdb"),
    show_default=True,
    help="The DuckDB file of --target local.",
)
def catalog_sync(target: str, duckdb_path: Path) -> None:
    """Create or update the tables of every lake dataset (a crawler's work, idempotent).

    Glue: the database SPOTIFY_STREAM_GLUE_DATABASE, one table per dataset with
    dt/hr partitions and partition projection, columns from the Parquet files
    (new columns are added, none removed), and the partitions not yet registered.
    Credentials and region from the standard AWS chain.
    """
    from spotify_stream import console
    from spotify_stream.sink.storage import require_hive_layout, storage_for
    from spotify_stream.warehouse.catalog import sync_glue, sync_local

    settings = _settings()
    require_hive_layout(settings, "catalog sync")
    if target == "local":
        _directory(duckdb_path.parent)
    storage = storage_for(settings)

    async def run() -> Any:
        try:
            if target == "local":
                return await sync_local(settings, storage, str(duckdb_path))
            with console.counting_progress("reading Parquet footers") as progress:
                return await sync_glue(settings, storage, progress)
        finally:
            await storage.close()

    result = run_async(lambda _stop: run())
    if target == "local":
        console.out.print(
            f"{duckdb_path}: views {', '.join(result) or '(none: the lake is empty)'} "
            f"over {storage.url}"
        )
    else:
        console.catalog_summary(result, settings.glue_database)


@cli.command()
@click.argument("name", required=False)
@click.option("--sql", help="Athena SQL to run instead of a named query.")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="K=V",
    help="A parameter of the named query (repeatable), e.g. --param n=20.",
)
@click.option(
    "--engine",
    type=click.Choice(["duckdb", "athena"]),
    default="duckdb",
    show_default=True,
    help="duckdb: the SQL transpiled and run locally over the lake (file or S3); "
    "athena: run by Athena over the Glue tables (catalog sync --target glue first).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "jsonl"]),
    default="table",
    show_default=True,
    help="table: for a terminal (a block per row when the columns do not fit); csv; "
    "json: one JSON array; jsonl: one JSON object per line. Lists are JSON in csv and table.",
)
@click.option("--list", "list_", is_flag=True, help="List the named queries and their parameters.")
def query(
    name: str | None,
    sql: str | None,
    params: tuple[str, ...],
    engine: str,
    fmt: str,
    list_: bool,
) -> None:
    """Run a named query (spotify_stream/warehouse/queries/NAME.sql) or --sql over the lake.

    The queries are Athena SQL; the DuckDB engine transpiles them with sqlglot.
    Example: spotify-stream query most_streamed_artists --param n=5 --format csv
    """
    from spotify_stream import console
    from spotify_stream.sink.storage import require_lake
    from spotify_stream.warehouse.query import named, named_queries, run_duckdb, to_duckdb

    if list_ or (name is None and sql is None):  # no arguments: what there is to run
        console.query_list(named_queries().values())
        return
    if name is not None and sql is not None:
        raise click.UsageError("give a query NAME or --sql, not both")
    values = {}
    for param in params:
        key, sep, value = param.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{param!r} is not K=V", param_hint="--param")
        values[key] = value
    if sql is not None:
        if values:
            raise click.UsageError("--param applies to named queries")
        statement = sql
    else:
        statement = named(name).bind(values)
    settings = _settings()
    if engine == "athena":
        from spotify_stream.warehouse.athena import run_athena

        with console.out.status("waiting for Athena"):
            result = run_async(lambda _stop: run_athena(settings, statement))
    else:
        to_duckdb(statement)  # a typo first, then where the lake is
        require_lake(settings)
        result = run_duckdb(settings, statement)
    console.query_result(result, fmt)


@cli.group()
def etl() -> None:
    """Batch jobs over the lake: compaction and daily marts.

    The Glue jobs of glue/jobs/ run the same code (spotify-stream deploy glue).
    A day is settled SPOTIFY_STREAM_ETL_SETTLE seconds (default 3600) after it
    ends; before that the jobs refuse it unless --force.
    """


_day_option = click.option(
    "--date",
    "day",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="The UTC day, YYYY-MM-DD (default: yesterday).",
)
_force_option = click.option(
    "--force",
    is_flag=True,
    help="Run on a day that is not settled: only once the workers have stopped.",
)


def _etl_day(day: Any, force: bool, settings: Settings) -> Any:
    from spotify_stream.warehouse.etl import check_settled, yesterday

    day = day.date() if day is not None else yesterday()
    if not force:
        check_settled(day, settings)
    return day


@etl.command("compact")
@_day_option
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    type=click.Choice(_dataset_names()),
    help="Only this dataset (repeatable; default: every dataset).",
)
@_force_option
def etl_compact(day: Any, datasets: tuple[str, ...], force: bool) -> None:
    """Rewrite each hour folder of a day into a few large files (the row multiset kept).

    Idempotent: a folder already compacted is left alone, a run a crash
    interrupted is finished. On Iceberg tables each table's partition of the
    day is rewritten in one snapshot instead (readers see the old files or the
    new). Example: spotify-stream etl compact --date 2026-11-23
    """
    from spotify_stream import console
    from spotify_stream.sink.storage import storage_for
    from spotify_stream.warehouse.compaction import compact_day, compact_iceberg_day

    settings = _settings()
    day = _etl_day(day, force, settings)
    if settings.lake_format == "iceberg":
        with console.out.status(f"rewriting the tables' partitions of {day}"):
            results = run_async(lambda _stop: compact_iceberg_day(settings, day, list(datasets)))
        console.compaction_summary(results, day)
        return
    storage = storage_for(settings)

    async def run() -> Any:
        try:
            with console.counting_progress("compacting hour folders") as progress:
                return await compact_day(settings, storage, day, list(datasets), progress)
        finally:
            await storage.close()

    console.compaction_summary(run_async(lambda _stop: run()), day)


@etl.command("aggregate")
@_day_option
@click.option(
    "--mart",
    "names",
    multiple=True,
    type=click.Choice(_mart_names()),
    help="Only this mart (repeatable; default: every mart).",
)
@_force_option
def etl_aggregate(day: Any, names: tuple[str, ...], force: bool) -> None:
    """Build a day's marts: marts/NAME/dt=DAY/part-0.parquet (a rerun replaces them).

    The marts are the SQL files of spotify_stream/warehouse/marts/; named
    queries read them, and compute the days without one from the raw data.
    Example: spotify-stream etl aggregate --date 2026-11-23
    """
    from spotify_stream import console
    from spotify_stream.sink.storage import storage_for
    from spotify_stream.warehouse.etl import aggregate_day

    settings = _settings()
    day = _etl_day(day, force, settings)
    storage = storage_for(settings)

    async def run() -> Any:
        try:
            with console.out.status(f"aggregating {day}"):
                return await aggregate_day(settings, storage, day, list(names))
        finally:
            await storage.close()

    console.marts_summary(run_async(lambda _stop: run()), day)


@etl.command("to-iceberg")
def etl_to_iceberg() -> None:
    """Copy a Hive-layout lake's datasets into Iceberg tables (workers stopped).

    One commit per dataset, with the offsets the sink's group committed, so a
    sink started with SPOTIFY_STREAM_LAKE_FORMAT=iceberg goes on from there.
    The curated/ objects are left in place. Example: spotify-stream etl to-iceberg
    """
    from spotify_stream.sink.storage import storage_for
    from spotify_stream.warehouse.migration import to_iceberg

    settings = _lake_settings()
    if settings.lake_format == "iceberg":
        raise click.UsageError("the lake is Iceberg already (SPOTIFY_STREAM_LAKE_FORMAT)")
    storage = storage_for(settings)

    async def run() -> Any:
        try:
            return await to_iceberg(settings, storage)
        finally:
            await storage.close()

    for copied in run_async(lambda _stop: run()):
        click.echo(
            f"{copied.dataset}: {copied.rows:,} rows from {copied.objects:,} objects, "
            f"{len(copied.offsets)} partitions' offsets"
            + (
                f"; {copied.left_out} begun after the commit left to the sink"
                if copied.left_out
                else ""
            )
        )
    click.echo("now start the workers with SPOTIFY_STREAM_LAKE_FORMAT=iceberg")


def _render_option(help: str, required: bool = False) -> Any:
    """``--render DIR`` of the deploy commands (``definitions.render``)."""
    return click.option(
        "--render",
        "render_dir",
        type=click.Path(file_okay=False, path_type=Path),
        required=required,
        help=help,
    )


@cli.group()
def deploy() -> None:
    """Create or update the AWS side of the pipeline (credentials: the standard AWS chain)."""


@deploy.command("glue")
@click.option("--role", required=True, metavar="ARN", help="IAM role of the crawlers and jobs.")
@click.option(
    "--scripts",
    metavar="S3URI",
    help="Where the job scripts are uploaded [default: <lake>/glue-scripts].",
)
@click.option(
    "--package",
    metavar="SPEC",
    help="What the jobs pip-install (--additional-python-modules): a requirement or an "
    "s3:// wheel [default: spotify-stream==<this version>].",
)
@_render_option("Write the requests, filled with these values, under this directory instead.")
def deploy_glue_command(
    role: str, scripts: str | None, package: str | None, render_dir: Path | None
) -> None:
    """The Glue crawlers, ETL jobs and triggers defined in glue/ (idempotent).

    Uploads glue/jobs/*.py, then creates each crawler (glue/crawlers/), job
    (glue/jobs/: Glue 5.0 Spark jobs whose driver runs spotify-stream etl) and
    trigger (glue/triggers/: compact daily at 01:30 UTC, aggregate after it), or
    updates it when it exists. The tables themselves: catalog sync --target glue.
    Example: spotify-stream deploy glue --role arn:aws:iam::123456789012:role/spotify-stream-glue
    """
    from spotify_stream import console
    from spotify_stream.warehouse.deploy import deploy_glue, deploy_values, render

    settings = _settings()
    values = deploy_values(settings, role, scripts, package)
    if render_dir is not None:
        written = render(values, render_dir)
        console.out.print(f"{len(written)} requests under {render_dir}")
        return
    with console.out.status("deploying to Glue"):
        done = run_async(lambda _stop: deploy_glue(settings, values))
    console.deploy_summary(done, values)


@deploy.command("quicksight")
@click.option("--account-id", help="The AWS account of QuickSight.")
@click.option("--principal", metavar="ARN", help="The QuickSight user or group given access.")
@click.option("--region", help="QuickSight's region [default: the AWS chain's].")
@_render_option("Write the requests, with ${placeholders}, under this directory instead.")
def deploy_quicksight_command(
    account_id: str | None, principal: str | None, region: str | None, render_dir: Path | None
) -> None:
    """The Athena data source, a dataset per named query, and the analysis and dashboard.

    The datasets' custom SQL is the named queries' own, over the Glue database
    SPOTIFY_STREAM_GLUE_DATABASE in workgroup SPOTIFY_STREAM_ATHENA_WORKGROUP
    (catalog sync --target glue first); the visuals are the dashboard's lake
    charts. Idempotent: what exists is updated, the dashboard's new version
    published. Example:
    spotify-stream deploy quicksight --account-id 123456789012 \
      --principal arn:aws:quicksight:eu-west-1:123456789012:user/default/alice
    """
    from spotify_stream import console
    from spotify_stream.dashboard import quicksight

    if render_dir is not None:
        written = quicksight.render(render_dir)
        console.out.print(f"{len(written)} requests under {render_dir}")
        return
    if not account_id or not principal:
        raise click.UsageError("give --account-id and --principal (or --render DIR)")
    settings = _settings()
    target = quicksight.target_for(settings, account_id, principal, region)
    with console.out.status("deploying to QuickSight"):
        done, dashboard = run_async(lambda _stop: quicksight.deploy(settings, target))
    console.quicksight_summary(done, dashboard, target.region)


@deploy.command("ec2")
@_render_option(
    "Write the generated files (stack.yaml, spotify-stream.env) under this directory.",
    required=True,
)
def deploy_ec2_command(render_dir: Path) -> None:
    """The EC2 deployment's generated files: the CloudFormation stack and the env template.

    The stack (S3 lake bucket, Glue database, Athena workgroup, least-privilege
    worker role, launch template with the cloud-init user data, auto-scaling
    group, optionally MSK) is deployed with the AWS CLI; see the README's runbook.
    Example: spotify-stream deploy ec2 --render deploy/ec2
    """
    from spotify_stream import console
    from spotify_stream.ec2 import render

    written = render(render_dir)
    console.out.print("wrote " + ", ".join(str(p) for p in written))


def _arguments(argv: list[str]) -> tuple[list[str], bool]:
    """The arguments with -v/--verbose moved to the front, where the group takes it, so
    that it works anywhere on the line (a worker's own options after ``--`` stay)."""
    end = argv.index("--") if "--" in argv else len(argv)
    verbose = any(a in ("-v", "--verbose") for a in argv[:end])
    rest = [a for i, a in enumerate(argv) if i >= end or a not in ("-v", "--verbose")]
    return (["--verbose", *rest] if verbose else rest), verbose


def main() -> None:
    args, verbose = _arguments(sys.argv[1:])
    try:
        cli.main(args, prog_name="spotify-stream", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt, Interrupted):
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.UsageError as exc:  # one line, and where the help is
        command = exc.ctx.command_path if exc.ctx else "spotify-stream"
        click.echo(f"error: {exc.format_message()} (see {command} --help)", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:
        if isinstance(exc, OSError) and exc.filename is not None and not verbose:
            click.echo(f"error: {exc.filename}: {exc.strerror}", err=True)  # a path given
            sys.exit(1)
        if verbose:
            raise
        click.echo(
            f"internal error: {type(exc).__name__}: {exc} (rerun with -v for details)", err=True
        )
        sys.exit(70)
