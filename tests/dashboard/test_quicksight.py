"""QuickSight: the committed definitions are what the charts and named queries generate;
every request is valid for botocore's QuickSight model; the datasets' SQL is the named
queries' (Athena dialect); deploy creates, then updates and publishes. moto's server
answers the calls it has (data sources, creating data sets and dashboards); the rest
are validated by botocore and answered in the client."""

from __future__ import annotations

import json
import types
from pathlib import Path

import botocore.session
import pytest
import sqlglot
from aiobotocore.session import get_session
from botocore.validate import validate_parameters

from spotify_stream.dashboard.charts import CHARTS
from spotify_stream.dashboard.quicksight import (
    KINDS,
    PLACEHOLDERS,
    Target,
    dataset_id,
    deploy,
    render,
    resources,
    update_request,
)
from spotify_stream.warehouse.query import named, named_queries, run_duckdb

COMMITTED = Path(__file__).parents[2] / "deploy" / "quicksight"
MODEL = botocore.session.get_session().get_service_model("quicksight")
TARGET = Target(
    "123456789012",
    "eu-west-1",
    "arn:aws:quicksight:eu-west-1:123456789012:user/default/alice",
    "spotify_stream",
    "primary",
)


def test_the_committed_definitions_are_generated(tmp_path):
    render(tmp_path)
    generated = {p.relative_to(tmp_path): p.read_text() for p in tmp_path.rglob("*.json")}
    committed = {p.relative_to(COMMITTED): p.read_text() for p in COMMITTED.rglob("*.json")}
    assert committed == generated, (
        "run: spotify-stream deploy quicksight --render deploy/quicksight"
    )


@pytest.mark.parametrize("resource", resources(TARGET), ids=lambda r: f"{r.kind}/{r.id}")
def test_every_request_is_valid(resource):
    name = KINDS[resource.kind][0]
    validate_parameters(resource.create, MODEL.operation_model(f"Create{name}").input_shape)
    update = MODEL.operation_model(f"Update{name}").input_shape
    validate_parameters(update_request(resource, MODEL), update)


def test_one_dataset_per_named_query_with_its_sql():
    datasets = {r.id: r.create for r in resources(TARGET) if r.kind == "data-set"}
    assert set(datasets) == {dataset_id(q) for q in named_queries()}
    for query in named_queries():
        table = datasets[dataset_id(query)]["PhysicalTableMap"]["query"]["CustomSql"]
        sql = table["SqlQuery"].replace("<<$artist_id>>", "ar1")
        tree = sqlglot.parse_one(sql, read="athena")
        # the lake's tables in the Glue database, the query's own text otherwise
        assert {t.db for t in tree.find_all(sqlglot.exp.Table) if t.db} == {"spotify_stream"}
        bound = named(query).bind({k: "ar1" for k, v in named(query).defaults.items() if v is None})
        assert [c["Name"] for c in table["Columns"]] == run_duckdb(None, bound).schema.names
    trend = datasets[dataset_id("artist_popularity_trend")]
    assert [p["StringDatasetParameter"]["Name"] for p in trend["DatasetParameters"]] == [
        "artist_id"
    ]


def test_the_visuals_are_the_lake_charts_on_their_datasets_columns():
    datasets = {r.id: r.create for r in resources(TARGET) if r.kind == "data-set"}
    dashboard = next(r.create for r in resources(TARGET) if r.kind == "dashboard")
    (sheet,) = dashboard["Definition"]["Sheets"]
    visuals = {next(iter(v.values()))["VisualId"]: v for v in sheet["Visuals"]}
    expected = [c for c in CHARTS if c.query and not c.live]
    assert list(visuals) == [c.id for c in expected]
    for chart in expected:
        ((kind, visual),) = visuals[chart.id].items()
        assert visual["Title"]["FormatText"]["PlainText"] == chart.title
        columns = {
            c["Name"]
            for c in datasets[dataset_id(chart.query)]["PhysicalTableMap"]["query"]["CustomSql"][
                "Columns"
            ]
        }
        used = {
            node["ColumnName"]
            for node in _walk(visual)
            if isinstance(node, dict) and "ColumnName" in node
        }
        assert used and used <= columns, chart.id
        assert {chart.x, chart.y} - {""} <= used or kind == "TableVisual", chart.id


def _walk(node):
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_placeholders_only_in_the_rendered_files():
    text = json.dumps([r.create for r in resources(PLACEHOLDERS)])
    for name in ("account_id", "region", "principal", "database", "workgroup"):
        assert f"${{{name}}}" in text
    assert "${" not in json.dumps([r.create for r in resources(TARGET)])


#: What moto's QuickSight lacks: answered in the client (validated by botocore first).
IN_CLIENT = {
    "DescribeDataSet",
    "UpdateDataSet",
    "DescribeAnalysis",
    "CreateAnalysis",
    "UpdateAnalysis",
    "UpdateDashboard",
    "UpdateDashboardPublishedVersion",
}


async def test_deploy_creates_then_updates(fresh_settings, moto_endpoint, aws_env):
    settings = fresh_settings.model_copy(update={"quicksight_endpoint": moto_endpoint})
    calls: list[tuple[str, str]] = []  # (operation, path) of every call
    exists: set[tuple[str, str]] = set()  # (kind, id) made, for the Describe calls in client
    ok = types.SimpleNamespace(status_code=200, headers={})

    def made(model, params) -> tuple[str, str]:
        kind = next(k for k in ("DataSet", "Analysis", "Dashboard") if k in model.name)
        body = json.loads(params["body"]) if params.get("body") else {}
        return kind, body.get(f"{kind}Id") or params["url_path"].rstrip("/").rsplit("/", 1)[1]

    def record(model, params, **_):
        calls.append((model.name, params["url_path"]))
        if model.name in ("CreateDataSet", "CreateDashboard"):  # moto's own
            exists.add(made(model, params))

    def answer(model, params, **_):
        """What moto lacks: answered here, once botocore has validated the request."""
        if model.name.startswith("Describe"):
            if made(model, params) in exists:
                return ok, {}
            missing = types.SimpleNamespace(status_code=404, headers={})
            return missing, {"Error": {"Code": "ResourceNotFoundException", "Message": "no"}}
        if model.name.startswith("Create"):
            exists.add(made(model, params))
        if model.name == "UpdateDashboard":
            return ok, {"VersionArn": "arn:aws:quicksight:::dashboard/spotify-stream/version/2"}
        return ok, {}

    async with get_session().create_client(
        "quicksight", region_name=TARGET.region, endpoint_url=moto_endpoint
    ) as client:
        client.meta.events.register("before-call.quicksight.*", record)
        for operation in IN_CLIENT:
            client.meta.events.register(f"before-call.quicksight.{operation}", answer)
        first, dashboard = await deploy(settings, TARGET, client)
        assert first == [(r.kind, r.id, "created") for r in resources(TARGET)]
        assert dashboard == "spotify-stream"
        # what moto keeps
        described = await client.describe_dashboard(
            AwsAccountId=TARGET.account_id, DashboardId="spotify-stream"
        )
        assert described["Dashboard"]["Name"] == "spotify-stream"
        source = await client.describe_data_source(
            AwsAccountId=TARGET.account_id, DataSourceId="spotify-stream-athena"
        )
        assert source["DataSource"]["Type"] == "ATHENA"

        calls.clear()
        second, _ = await deploy(settings, TARGET, client)
    assert second == [(r.kind, r.id, "updated") for r in resources(TARGET)]
    sent = [name for name, _ in calls]
    assert not any(name.startswith("Create") for name in sent)
    assert sent.count("UpdateDataSet") == len(named_queries())
    assert sent.count("UpdateDataSource") == sent.count("UpdateAnalysis") == 1
    assert sent[-2:] == ["UpdateDashboard", "UpdateDashboardPublishedVersion"]
    assert calls[-1][1].endswith("/dashboards/spotify-stream/versions/2")
