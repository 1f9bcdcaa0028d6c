"""The Athena engine: the named query's SQL as written, run by Athena over the Glue tables.

StartQueryExecution in the configured workgroup, with the Glue database as
context and the results location when one is set; GetQueryExecution polled
with backoff (0.2 s doubling to 5 s) until the query ends or
``athena_timeout`` passes (then it is stopped); GetQueryResults paged, values
typed from Athena's column metadata. A failed query is one line with Athena's
own reason.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from spotify_stream.errors import UserError
from spotify_stream.settings import Settings
from spotify_stream.warehouse.aws import aws_errors

_INTEGERS = {"tinyint", "smallint", "integer", "int", "bigint"}
_FLOATS = {"double", "float", "real", "decimal"}


async def run_athena(settings: Settings, sql: str) -> pa.Table:
    from aiobotocore.session import get_session

    request: dict[str, Any] = {
        "QueryString": sql,
        "WorkGroup": settings.athena_workgroup,
        "QueryExecutionContext": {"Database": settings.glue_database},
    }
    if settings.athena_output:
        request["ResultConfiguration"] = {"OutputLocation": settings.athena_output}
    with aws_errors("Athena"):
        async with get_session().create_client(
            "athena", endpoint_url=settings.athena_endpoint
        ) as athena:
            query_id = (await athena.start_query_execution(**request))["QueryExecutionId"]
            await wait_for_query(athena, query_id, settings.athena_timeout)
            return await query_results(athena, query_id)


async def wait_for_query(athena: Any, query_id: str, timeout: float) -> None:
    """Until the query succeeds; UserError with Athena's reason when it does not."""
    deadline, delay = time.monotonic() + timeout, 0.2
    while True:
        execution = (await athena.get_query_execution(QueryExecutionId=query_id))["QueryExecution"]
        status = execution["Status"]
        state = status["State"]
        if state == "SUCCEEDED":
            return
        if state in ("FAILED", "CANCELLED"):
            reason = status.get("StateChangeReason") or status.get("AthenaError", {}).get(
                "ErrorMessage", "no reason given"
            )
            raise UserError(f"Athena query {query_id} {state.lower()}: {reason}")
        if time.monotonic() >= deadline:
            await athena.stop_query_execution(QueryExecutionId=query_id)
            raise UserError(
                f"Athena query {query_id} still {state.lower()} after {timeout:g} s; stopped"
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


async def query_results(athena: Any, query_id: str) -> pa.Table:
    """Every page of the results, typed by Athena's column metadata."""
    columns: list[dict[str, Any]] = []
    rows: list[list[str | None]] = []
    paginator = athena.get_paginator("get_query_results")
    async for page in paginator.paginate(QueryExecutionId=query_id):
        result = page["ResultSet"]
        columns = columns or result.get("ResultSetMetadata", {}).get("ColumnInfo", [])
        rows += [[d.get("VarCharValue") for d in row["Data"]] for row in result["Rows"]]
    names = [c["Name"] for c in columns]
    if rows and rows[0] == names:  # a SELECT's first row is its header
        rows = rows[1:]
    convert = [_converter(c.get("Type", "varchar")) for c in columns]
    return pa.table(
        {
            name: [None if row[i] is None else convert[i](row[i]) for row in rows]
            for i, name in enumerate(names)
        }
    )


def _converter(athena_type: str) -> Callable[[str], Any]:
    kind = athena_type.lower().split("(")[0]
    if kind in _INTEGERS:
        return int
    if kind in _FLOATS:
        return float
    if kind == "boolean":
        return lambda v: v.lower() == "true"
    if kind == "date":
        return dt.date.fromisoformat
    if kind.startswith("timestamp"):
        return lambda v: dt.datetime.fromisoformat(v.replace(" UTC", ""))
    return str
