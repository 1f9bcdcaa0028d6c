"""Named queries (``queries/*.sql``, Athena SQL) and the local engine that runs them.

A query file starts with comment lines: the first says what it returns, each
``-- param: name = default`` declares a parameter (``:name`` in the SQL; no
default: required). Parameters become SQL literals through sqlglot's syntax
tree, never by pasting text, so a value cannot change the statement.

The DuckDB engine transpiles the Athena SQL with sqlglot and runs it over the
lake: a file lake through ``read_parquet`` views, an S3 lake through pyarrow's
S3 filesystem (DuckDB's own S3 support is an extension it would download),
Iceberg tables through pyiceberg's scan of the current snapshot (DuckDB's
iceberg extension would be downloaded too). Each dataset is a view named like
its Glue table, ``dt`` and ``hr`` included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from spotify_stream.errors import UsageError, UserError
from spotify_stream.settings import Settings
from spotify_stream.sink.datasets import DATASETS
from spotify_stream.sink.objects import CURATED
from spotify_stream.sink.parquet import schema_of
from spotify_stream.warehouse.marts import (
    complete_marts,
    mart_schema,
    marts,
    register_empty_datasets,
)

QUERIES = Path(__file__).parent / "queries"
_PARAM = re.compile(r"^--\s*param:\s*(\w+)\s*(?:=\s*(.*?))?\s*$")


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str
    sql: str
    defaults: dict[str, str | None]  # None: required

    def bind(self, params: dict[str, str]) -> str:
        """The SQL with ``params`` (over the defaults) as literals, in Athena's dialect."""
        import sqlglot
        from sqlglot import exp

        unknown = set(params) - set(self.defaults)
        if unknown:
            raise UsageError(
                f"query {self.name} has no parameter {', '.join(sorted(unknown))}; "
                f"it takes {', '.join(self.defaults) or 'none'}"
            )
        values = {k: v for k, v in (self.defaults | params).items()}
        missing = [k for k, v in values.items() if v is None]
        if missing:
            raise UsageError(f"query {self.name} needs --param {missing[0]}=VALUE")
        tree = sqlglot.parse_one(self.sql, read="athena")

        def literal(node: exp.Expression) -> exp.Expression:
            if isinstance(node, exp.Placeholder) and node.name in values:
                value = values[node.name]
                if value == "current_date":
                    return exp.CurrentDate()
                if re.fullmatch(r"-?\d+", value):
                    return exp.Literal.number(value)
                return exp.Literal.string(value)
            return node

        return complete_marts(tree.transform(literal).sql("athena"))


def named_queries() -> dict[str, NamedQuery]:
    queries = {}
    for path in sorted(QUERIES.glob("*.sql")):
        text = path.read_text()
        header = [line for line in text.splitlines() if line.startswith("--")]
        defaults = {}
        for line in header:
            if match := _PARAM.match(line):
                defaults[match.group(1)] = match.group(2)
        description = header[0].lstrip("- ").strip() if header else ""
        queries[path.stem] = NamedQuery(path.stem, description, text, defaults)
    return queries


def named(name: str) -> NamedQuery:
    queries = named_queries()
    if name not in queries:
        raise UsageError(f"no query {name}; the named queries are {', '.join(queries)}")
    return queries[name]


def parquet_view(name: str, folder: Path, levels: int, union: bool) -> str:
    """DuckDB's view ``name`` of the Parquet files ``levels`` Hive partition folders
    (string columns) below ``folder``. ``union``: columns united by name over every
    file (each footer read: 2.4 times slower over 5,760 files); else the columns of
    the first file, which is all a named query reads."""
    files = folder.joinpath(*["*"] * levels, "*.parquet")
    return (
        f"CREATE OR REPLACE VIEW \"{name}\" AS SELECT * FROM read_parquet('{files}', "
        f"hive_partitioning = true, hive_types_autocast = false, union_by_name = {union})"
    )


def lake_tables() -> list[tuple[str, str, pa.Schema]]:
    """(name, folder under the lake root, columns with the partition keys) of every
    dataset and mart: the tables a query can read."""
    hive = [pa.field("dt", pa.string()), pa.field("hr", pa.string())]
    tables = [
        (d.name, f"{CURATED}/{d.name}/", pa.schema([*schema_of(d.topic.record), *hive]))
        for d in DATASETS
    ]
    for mart in marts().values():
        tables.append((mart.name, mart.folder(), pa.schema([*mart_schema(mart.name), hive[0]])))
    return tables


def with_hive_keys(table: pa.Table, event_time: str) -> pa.Table:
    """``table`` with the ``dt`` and ``hr`` columns its Hive folders would give it (the
    UTC day and hour of ``event_time``), so a query reads either layout alike."""
    import pyarrow.compute as pc

    when = table.column(event_time)
    return table.append_column("dt", pc.strftime(when, "%Y-%m-%d")).append_column(
        "hr", pc.strftime(when, "%H")
    )


def to_duckdb(athena_sql: str) -> str:
    """``athena_sql`` in DuckDB's dialect; a typo is the user's, said in one line."""
    import sqlglot

    try:
        return sqlglot.transpile(athena_sql, read="athena", write="duckdb")[0]
    except sqlglot.errors.SqlglotError as exc:
        raise UsageError(f"the SQL does not parse: {exc}".splitlines()[0]) from None


def run_duckdb(settings: Settings | None, athena_sql: str, marts: bool = True) -> pa.Table:
    """``athena_sql`` transpiled to DuckDB and run over the lake of ``settings`` (None:
    an empty lake, its tables' columns only; the marts' too unless not ``marts``)."""
    import duckdb

    sql = to_duckdb(athena_sql)
    with duckdb.connect() as con:
        if settings is None:
            register_empty_datasets(con)
            if marts:
                for name, _, schema in lake_tables()[len(DATASETS) :]:
                    con.register(name, schema.empty_table())
        try:
            if settings is not None:
                for name, folder, schema in lake_tables():
                    _register(con, settings, name, folder, schema)
            return con.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            raise UserError(f"the query failed in DuckDB: {exc}".splitlines()[0]) from None
        except (OSError, pa.ArrowException) as exc:  # S3 unreachable, refused, ...
            raise UserError(
                f"cannot read the lake at {settings.lake}: {exc}".splitlines()[0]
            ) from None


def _register(con, settings: Settings, name: str, folder: str, schema: pa.Schema) -> None:
    import pyarrow.dataset as ds

    lake = settings.lake
    dataset = next((d for d in DATASETS if d.name == name), None)
    if settings.lake_format == "iceberg" and dataset is not None:
        from spotify_stream.sink.iceberg import read_table

        table = read_table(settings, dataset)
        if table is not None:
            con.register(name, with_hive_keys(table, dataset.event_time))
            return
        con.register(name, schema.empty_table())
        return
    keys = [f for f in schema if f.name in ("dt", "hr")]
    if lake.startswith("file://"):
        root = Path(lake.removeprefix("file://")).expanduser().resolve()
        if any((root / folder).glob("/".join(["*"] * len(keys) + ["*.parquet"]))):
            con.execute(parquet_view(name, root / folder, len(keys), union=False))
            return
    else:
        from pyarrow import fs

        bucket, _, prefix = lake.removeprefix("s3://").partition("/")
        s3 = fs.S3FileSystem(endpoint_override=settings.s3_endpoint)
        path = "/".join(p for p in (bucket, prefix.strip("/"), folder.strip("/")) if p)
        if s3.get_file_info(path).type != fs.FileType.NotFound:
            partitioning = ds.partitioning(pa.schema(keys), flavor="hive")
            dataset = ds.dataset(path, filesystem=s3, format="parquet", partitioning=partitioning)
            con.register(name, dataset)
            return
    con.register(name, schema.empty_table())
