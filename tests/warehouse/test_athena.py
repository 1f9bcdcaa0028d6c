"""The Athena engine against moto's server over HTTP. moto does not execute SQL: it
answers with results seeded through its own API, so these tests check the call
sequence (what was asked of Athena), the paging and typing of results, and the
handling of a query that does not succeed; the SQL itself is checked by
sqlglot's Athena dialect in test_queries and test_tables."""

from __future__ import annotations

import datetime as dt
import json
import urllib.request

import pytest
from aiobotocore.session import get_session

from spotify_stream.errors import UserError
from spotify_stream.warehouse.athena import run_athena, wait_for_query
from spotify_stream.warehouse.query import named


@pytest.fixture
def settings(fresh_settings, moto_endpoint, aws_env):
    return fresh_settings.model_copy(
        update={
            "athena_endpoint": moto_endpoint,
            "athena_output": "s3://results-bucket/athena/",
            "glue_database": "lake_db",
        }
    )


def seed(endpoint: str, columns: list[tuple[str, str]], rows: list[list[str | None]]) -> None:
    """Queue the result of the next query moto is asked for."""
    body = {
        "region": "us-east-1",
        "results": [
            {
                "column_info": [
                    {
                        "Name": n,
                        "Label": n,
                        "Type": t,
                        "CatalogName": "hive",
                        "SchemaName": "",
                        "TableName": "",
                        "Nullable": "UNKNOWN",
                        "CaseSensitive": False,
                        "Precision": 0,
                        "Scale": 0,
                    }
                    for n, t in columns
                ],
                "rows": [
                    {"Data": [{} if v is None else {"VarCharValue": v} for v in row]}
                    for row in [[n for n, _ in columns], *rows]
                ],
            }
        ],
    }
    request = urllib.request.Request(
        f"{endpoint}/moto-api/static/athena/query-results",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request).close()


async def test_a_named_query_runs_and_its_results_are_typed(settings, moto_endpoint):
    columns = [
        ("artist_id", "varchar"),
        ("plays", "bigint"),
        ("skip_rate", "double"),
        ("explicit", "boolean"),
        ("day", "date"),
        ("at", "timestamp"),
    ]
    seed(
        moto_endpoint,
        columns,
        [
            ["a1", "12", "0.25", "true", "2026-11-24", "2026-11-24 08:00:00.000"],
            ["a2", "7", None, "false", "2026-11-23", "2026-11-23 09:30:00.500"],
        ],
    )
    sql = named("most_streamed_artists").bind({"n": "2"})
    table = await run_athena(settings, sql)
    assert table.to_pylist() == [
        {
            "artist_id": "a1",
            "plays": 12,
            "skip_rate": 0.25,
            "explicit": True,
            "day": dt.date(2026, 11, 24),
            "at": dt.datetime(2026, 11, 24, 8),
        },
        {
            "artist_id": "a2",
            "plays": 7,
            "skip_rate": None,
            "explicit": False,
            "day": dt.date(2026, 11, 23),
            "at": dt.datetime(2026, 11, 23, 9, 30, 0, 500000),
        },
    ]
    # what Athena was asked: the SQL as bound, in the workgroup, database and output set
    async with get_session().create_client("athena", endpoint_url=moto_endpoint) as athena:
        ids = (await athena.list_query_executions(WorkGroup="primary"))["QueryExecutionIds"]
        asked = [
            (await athena.get_query_execution(QueryExecutionId=i))["QueryExecution"] for i in ids
        ]
    ours = [q for q in asked if q["Query"] == sql]
    assert len(ours) == 1
    assert ours[0]["QueryExecutionContext"]["Database"] == "lake_db"
    # (Athena answers with the result file's name under the location asked for)
    assert ours[0]["ResultConfiguration"]["OutputLocation"].startswith(
        "s3://results-bucket/athena/"
    )
    assert ours[0]["WorkGroup"] == "primary"


async def test_a_query_that_does_not_succeed_is_one_line(settings, moto_endpoint):
    async with get_session().create_client("athena", endpoint_url=moto_endpoint) as athena:
        query_id = (
            await athena.start_query_execution(
                QueryString="SELECT 1",
                WorkGroup="primary",
                ResultConfiguration={"OutputLocation": "s3://results-bucket/athena/"},
            )
        )["QueryExecutionId"]
        await athena.stop_query_execution(QueryExecutionId=query_id)
        with pytest.raises(UserError, match=f"Athena query {query_id} cancelled"):
            await wait_for_query(athena, query_id, timeout=5)


async def test_an_unreachable_athena_is_one_line(settings):
    unreachable = settings.model_copy(update={"athena_endpoint": "http://127.0.0.1:9"})
    with pytest.raises(UserError, match="cannot reach Athena"):
        await run_athena(unreachable, "SELECT 1")
