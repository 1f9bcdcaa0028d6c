"""Marts: daily aggregates of the lake, and the named queries that read them.

Each ``marts/NAME.sql`` is Athena SQL that aggregates the days listed in a
table ``days`` (column ``dt``), with ``dt`` as its first output column; its
header names the ``source`` dataset whose days it covers. ``etl aggregate
--date D`` runs it for one day and writes ``marts/NAME/dt=D/part-0.parquet``:
one object, so a rerun replaces it whole.

A named query reads a mart as if it were complete: ``complete_marts``
rewrites every reference to a mart into the mart's rows united with the same
SQL run over the source's days that have no mart yet (today, or a day not
aggregated). The answer is the same with or without marts; marts only make
it fast (at 5M plays, joining every play with its track takes over 1 s here).
A mart is a snapshot: plays that arrive for a day after its aggregation count
once the day is aggregated again.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa


MARTS_SQL = Path(__file__).parent / "marts"
MARTS = "marts"
_SOURCE = re.compile(r"^--\s*source:\s*(\w+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Mart:
    name: str
    description: str
    source: str  # the dataset whose days the mart covers
    sql: str  # Athena SQL over the table ``days``

    def folder(self, day: dt.date | None = None) -> str:
        return f"{MARTS}/{self.name}/" + (f"dt={day:%Y-%m-%d}/" if day else "")

    def for_days(self, days_sql: str) -> str:
        """The mart's SQL over the days ``days_sql`` selects (Athena SQL)."""
        import sqlglot

        tree = sqlglot.parse_one(self.sql, read="athena")
        return _hoist(tree, [("days", sqlglot.parse_one(days_sql, read="athena"))]).sql("athena")


@functools.cache
def marts() -> dict[str, Mart]:
    found = {}
    for path in sorted(MARTS_SQL.glob("*.sql")):
        text = path.read_text()
        source = _SOURCE.search(text)
        if source is None:
            raise ValueError(f"{path} has no '-- source: DATASET' line")
        description = text.splitlines()[0].lstrip("- ").strip()
        found[path.stem] = Mart(path.stem, description, source.group(1), text)
    return found


@functools.cache
def mart_schema(name: str) -> pa.Schema:
    """The columns of mart ``name`` as its files hold them (``dt`` is the folder):
    its SQL run by DuckDB over the datasets' empty tables, so the SQL is their only
    definition."""
    import duckdb
    import sqlglot

    sql = marts()[name].for_days("SELECT CAST(NULL AS VARCHAR) AS dt WHERE FALSE")
    with duckdb.connect() as con:
        register_empty_datasets(con)
        schema = con.sql(sqlglot.transpile(sql, read="athena", write="duckdb")[0]).arrow().schema
    return schema.remove(schema.get_field_index("dt"))


def register_empty_datasets(con) -> None:
    """Each lake dataset as an empty table of its columns and ``dt``, in DuckDB ``con``."""
    import pyarrow as pa

    from spotify_stream.sink.datasets import DATASETS
    from spotify_stream.sink.parquet import schema_of

    for d in DATASETS:
        schema = schema_of(d.topic.record).append(pa.field("dt", pa.string()))
        con.register(d.name, schema.empty_table())


def complete_marts(athena_sql: str) -> str:
    """``athena_sql`` with each mart it reads completed for the days the mart lacks."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(athena_sql, read="athena")
    used = sorted({t.name for t in tree.find_all(exp.Table) if t.name in marts()})
    if not used:
        return athena_sql
    added: list[tuple[str, exp.Expression]] = []
    for name in used:
        mart = marts()[name]
        current = f"{name}__current"
        for table in tree.find_all(exp.Table):
            if table.name == name:
                table.set("this", exp.to_identifier(current))
        columns = ", ".join(["dt", *mart_schema(name).names])
        lacking = (
            f"SELECT DISTINCT dt FROM {mart.source} "
            f"WHERE dt NOT IN (SELECT DISTINCT dt FROM {name})"
        )
        body = sqlglot.parse_one(mart.for_days(lacking), read="athena")
        prefix = f"{name}__"
        inner = [(prefix + c.alias, c.this) for c in body.ctes]
        renames = {c.alias: prefix + c.alias for c in body.ctes}
        body.set("with_", None)
        for expression in [*(query for _, query in inner), body]:
            for table in expression.find_all(exp.Table):
                if table.name in renames and not table.args.get("db"):
                    table.set("this", exp.to_identifier(renames[table.name]))
        union = sqlglot.parse_one(f"SELECT {columns} FROM {name}", read="athena").union(
            body, distinct=False
        )
        added += [*inner, (current, union)]
    return _hoist(tree, added).sql("athena")


def _hoist(tree, ctes):
    """``tree`` with the common table expressions ``ctes`` (alias, query) first in its
    WITH (they may not refer to its own)."""
    own = [(c.alias, c.this) for c in tree.ctes]
    tree.set("with_", None)
    for alias, query in [*ctes, *own]:
        tree = tree.with_(alias, as_=query)
    return tree
