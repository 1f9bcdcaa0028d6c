"""QuickSight: the dashboard's lake charts over Athena, generated from ``charts.CHARTS``.

One Athena data source; one dataset per named query, its custom SQL the
query file's own (bound with its defaults; a parameter without a default
becomes a QuickSight dataset parameter ``<<$name>>``), tables qualified with
the Glue database, and array columns joined into strings (QuickSight has no
arrays); one analysis and one dashboard whose visuals are the charts', with
the same titles, axis labels and fields. The cluster scatter is not among
them: its projection is computed in Python, which Athena cannot run; the
cluster profiles table is.

``spotify-stream deploy quicksight --render deploy/quicksight`` writes these
requests with ``${placeholders}``; ``deploy quicksight --account-id ID
--principal ARN`` sends them: each resource is described first, then updated
when it exists (a dashboard update is published as its new version) or
created with the principal's permissions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from spotify_stream import definitions
from spotify_stream.dashboard.charts import CHARTS, Chart
from spotify_stream.settings import Settings

PREFIX = "spotify-stream"
NAME = "spotify-stream"
#: The Create call of each kind, in the order they depend on each other.
KINDS = {
    "data-source": ("DataSource", "DataSourceId"),
    "data-set": ("DataSet", "DataSetId"),
    "analysis": ("Analysis", "AnalysisId"),
    "dashboard": ("Dashboard", "DashboardId"),
}
PERMISSIONS = {
    "data-source": [
        "quicksight:DescribeDataSource",
        "quicksight:DescribeDataSourcePermissions",
        "quicksight:PassDataSource",
        "quicksight:UpdateDataSource",
        "quicksight:DeleteDataSource",
        "quicksight:UpdateDataSourcePermissions",
    ],
    "data-set": [
        "quicksight:DescribeDataSet",
        "quicksight:DescribeDataSetPermissions",
        "quicksight:PassDataSet",
        "quicksight:DescribeIngestion",
        "quicksight:ListIngestions",
        "quicksight:UpdateDataSet",
        "quicksight:DeleteDataSet",
        "quicksight:CreateIngestion",
        "quicksight:CancelIngestion",
        "quicksight:UpdateDataSetPermissions",
    ],
    "analysis": [
        "quicksight:RestoreAnalysis",
        "quicksight:UpdateAnalysisPermissions",
        "quicksight:DeleteAnalysis",
        "quicksight:DescribeAnalysisPermissions",
        "quicksight:QueryAnalysis",
        "quicksight:DescribeAnalysis",
        "quicksight:UpdateAnalysis",
    ],
    "dashboard": [
        "quicksight:DescribeDashboard",
        "quicksight:ListDashboardVersions",
        "quicksight:UpdateDashboardPermissions",
        "quicksight:QueryDashboard",
        "quicksight:UpdateDashboard",
        "quicksight:DeleteDashboard",
        "quicksight:DescribeDashboardPermissions",
        "quicksight:UpdateDashboardPublishedVersion",
    ],
}


@dataclass(frozen=True)
class Target:
    """Where the definitions go: placeholders when rendered, real values when deployed."""

    account_id: str
    region: str
    principal: str
    database: str
    workgroup: str

    def arn(self, kind: str, id_: str) -> str:
        return f"arn:aws:quicksight:{self.region}:{self.account_id}:{kind.replace('-', '')}/{id_}"


PLACEHOLDERS = Target("${account_id}", "${region}", "${principal}", "${database}", "${workgroup}")


@dataclass(frozen=True)
class Resource:
    kind: str  # a key of KINDS
    id: str
    create: dict[str, Any]  # the Create call's parameters


def dataset_id(query: str) -> str:
    return f"{PREFIX}-{query.replace('_', '-')}"


def _qs_type(arrow: pa.DataType) -> str:
    if pa.types.is_integer(arrow):
        return "INTEGER"
    if pa.types.is_floating(arrow) or pa.types.is_decimal(arrow):
        return "DECIMAL"
    if pa.types.is_timestamp(arrow) or pa.types.is_date(arrow):
        return "DATETIME"
    if pa.types.is_boolean(arrow):
        return "BOOLEAN"
    return "STRING"  # strings, and arrays joined into strings


def custom_sql(query: str, database: str) -> tuple[str, list[dict[str, str]], list[str]]:
    """The named query as QuickSight's custom SQL, its columns, and its parameters."""
    import sqlglot
    from sqlglot import exp

    from spotify_stream.warehouse.query import lake_tables, named, run_duckdb

    named_query = named(query)
    required = [k for k, v in named_query.defaults.items() if v is None]
    sql = named_query.bind({k: f"<<${k}>>" for k in required})
    schema = run_duckdb(None, sql).schema
    tree = sqlglot.parse_one(sql, read="athena")
    ctes = {cte.alias for cte in tree.find_all(exp.CTE)}
    tables = {name for name, _, _ in lake_tables()}
    for table in tree.find_all(exp.Table):
        if table.name in tables and table.name not in ctes and not table.db:
            table.set("db", exp.to_identifier(database))
    columns = [
        f"array_join({f.name}, ', ') AS {f.name}" if pa.types.is_list(f.type) else f.name
        for f in schema
    ]
    inner = tree.sql("athena")
    if any(pa.types.is_list(f.type) for f in schema):
        inner = f"SELECT {', '.join(columns)} FROM ({inner}) AS q"
    return (
        inner,
        [{"Name": f.name, "Type": _qs_type(f.type)} for f in schema],
        required,
    )


def resources(target: Target) -> list[Resource]:
    """Every QuickSight request, in dependency order."""
    source_id = f"{PREFIX}-athena"
    found = [
        Resource(
            "data-source",
            source_id,
            {
                "AwsAccountId": target.account_id,
                "DataSourceId": source_id,
                "Name": f"{NAME} (Athena)",
                "Type": "ATHENA",
                "DataSourceParameters": {"AthenaParameters": {"WorkGroup": target.workgroup}},
                "Permissions": _permissions(target, "data-source"),
            },
        )
    ]
    from spotify_stream.warehouse.query import named_queries

    for query in named_queries():
        sql, columns, params = custom_sql(query, target.database)
        id_ = dataset_id(query)
        body: dict[str, Any] = {
            "AwsAccountId": target.account_id,
            "DataSetId": id_,
            "Name": f"{NAME}: {query}",
            "PhysicalTableMap": {
                "query": {
                    "CustomSql": {
                        "DataSourceArn": target.arn("data-source", source_id),
                        "Name": query,
                        "SqlQuery": sql,
                        "Columns": columns,
                    }
                }
            },
            "ImportMode": "DIRECT_QUERY",
            "Permissions": _permissions(target, "data-set"),
        }
        if params:
            body["DatasetParameters"] = [
                {
                    "StringDatasetParameter": {
                        "Id": f"{query}-{p}".replace("_", "-"),
                        "Name": p,
                        "ValueType": "SINGLE_VALUED",
                    }
                }
                for p in params
            ]
        found.append(Resource("data-set", id_, body))
    definition = _definition(target)
    for kind, key in (("analysis", "AnalysisId"), ("dashboard", "DashboardId")):
        body = {
            "AwsAccountId": target.account_id,
            key: PREFIX,
            "Name": NAME,
            "Definition": definition,
            "Permissions": _permissions(target, kind),
        }
        if kind == "dashboard":
            body["VersionDescription"] = "spotify-stream deploy quicksight"
        found.append(Resource(kind, PREFIX, body))
    return found


def _permissions(target: Target, kind: str) -> list[dict[str, Any]]:
    return [{"Principal": target.principal, "Actions": PERMISSIONS[kind]}]


def _charts() -> Iterator[Chart]:
    return (c for c in CHARTS if c.query and not c.live)


def _definition(target: Target) -> dict[str, Any]:
    charts = list(_charts())
    return {
        "DataSetIdentifierDeclarations": [
            {"Identifier": c.query, "DataSetArn": target.arn("data-set", dataset_id(c.query))}
            for c in charts
        ],
        "Sheets": [
            {
                "SheetId": "spotify-stream",
                "Name": "spotify-stream",
                "Title": NAME,
                "Visuals": [_visual(c) for c in charts],
            }
        ],
    }


def _column(chart: Chart, name: str) -> dict[str, str]:
    return {"DataSetIdentifier": chart.query, "ColumnName": name}


def _title(chart: Chart) -> dict[str, Any]:
    return {"Visibility": "VISIBLE", "FormatText": {"PlainText": chart.title}}


def _subtitle(chart: Chart) -> dict[str, Any]:
    return {"Visibility": "VISIBLE", "FormatText": {"PlainText": chart.description}}


def _label(text: str) -> dict[str, Any]:
    return {"Visibility": "VISIBLE", "AxisLabelOptions": [{"CustomLabel": text}]}


def _visual(chart: Chart) -> dict[str, Any]:
    common = {
        "VisualId": chart.id,
        "Title": _title(chart),
        "Subtitle": _subtitle(chart),
        "VisualContentAltText": f"{chart.title}: {chart.description}",
    }
    value = {
        "NumericalMeasureField": {
            "FieldId": f"{chart.id}.{chart.y}",
            "Column": _column(chart, chart.y),
            "AggregationFunction": {"SimpleNumericalAggregation": "SUM"},
        }
    }
    if chart.kind == "bar":
        category = {
            "CategoricalDimensionField": {
                "FieldId": f"{chart.id}.{chart.x}",
                "Column": _column(chart, chart.x),
            }
        }
        return {
            "BarChartVisual": common
            | {
                "ChartConfiguration": {
                    "FieldWells": {
                        "BarChartAggregatedFieldWells": {"Category": [category], "Values": [value]}
                    },
                    "Orientation": "HORIZONTAL",
                    "SortConfiguration": {
                        "CategorySort": [
                            {
                                "FieldSort": {
                                    "FieldId": f"{chart.id}.{chart.y}",
                                    "Direction": "DESC",
                                }
                            }
                        ]
                    },
                    "CategoryLabelOptions": _label(chart.x_label),
                    "ValueLabelOptions": _label(chart.y_label),
                    "DataLabels": {"Visibility": "VISIBLE"},
                }
            }
        }
    if chart.kind == "line":
        day = {
            "DateDimensionField": {
                "FieldId": f"{chart.id}.{chart.x}",
                "Column": _column(chart, chart.x),
                "DateGranularity": "DAY",
            }
        }
        colour = {
            "CategoricalDimensionField": {
                "FieldId": f"{chart.id}.{chart.series}",
                "Column": _column(chart, chart.series),
            }
        }
        return {
            "LineChartVisual": common
            | {
                "ChartConfiguration": {
                    "FieldWells": {
                        "LineChartAggregatedFieldWells": {
                            "Category": [day],
                            "Values": [value],
                            "Colors": [colour],
                        }
                    },
                    "XAxisLabelOptions": _label(chart.x_label),
                    "PrimaryYAxisLabelOptions": _label(chart.y_label),
                    "DataLabels": {"Visibility": "HIDDEN"},
                }
            }
        }
    # a table of every column (the cluster profiles)
    _, columns, _ = custom_sql(chart.query, "db")
    return {
        "TableVisual": common
        | {
            "ChartConfiguration": {
                "FieldWells": {
                    "TableUnaggregatedFieldWells": {
                        "Values": [
                            {
                                "FieldId": f"{chart.id}.{c['Name']}",
                                "Column": _column(chart, c["Name"]),
                            }
                            for c in columns
                        ]
                    }
                }
            }
        }
    }


def update_request(resource: Resource, model: Any) -> dict[str, Any]:
    """``resource``'s Update call: its Create parameters that the Update call takes."""
    name = KINDS[resource.kind][0]
    members = model.operation_model(f"Update{name}").input_shape.members
    return {k: v for k, v in resource.create.items() if k in members}


def render(out: Path) -> list[Path]:
    """Write every request, with placeholders, under ``out`` (deploy/quicksight)."""
    documents = {f"{r.kind}/{r.id}.json": r.create for r in resources(PLACEHOLDERS)}
    return definitions.render(
        documents, out, "spotify-stream deploy quicksight --render deploy/quicksight"
    )


def target_for(settings: Settings, account_id: str, principal: str, region: str | None) -> Target:
    import botocore.session

    region = region or botocore.session.get_session().get_config_variable("region")
    if not region:
        from spotify_stream.errors import UsageError

        raise UsageError("no AWS region: give --region or set AWS_REGION (or a profile's region)")
    return Target(account_id, region, principal, settings.glue_database, settings.athena_workgroup)


async def deploy(
    settings: Settings, target: Target, client: Any = None
) -> tuple[list[tuple[str, str, str]], str]:
    """Create or update every resource: ((kind, id, action), ...) and the dashboard id.
    ``client``: the QuickSight client to use (tests); by default one from the AWS chain."""
    from contextlib import AsyncExitStack

    import botocore.session
    from aiobotocore.session import get_session

    from spotify_stream.warehouse.aws import aws_errors

    model = botocore.session.get_session().get_service_model("quicksight")
    done = []
    with aws_errors("QuickSight"):
        async with AsyncExitStack() as stack:
            if client is None:
                client = await stack.enter_async_context(
                    get_session().create_client(
                        "quicksight",
                        region_name=target.region,
                        endpoint_url=settings.quicksight_endpoint,
                    )
                )
            for resource in resources(target):
                done.append((resource.kind, resource.id, await _apply(client, model, resource)))
    return done, PREFIX


async def _apply(client: Any, model: Any, resource: Resource) -> str:
    name, key = KINDS[resource.kind]
    snake = {"DataSource": "data_source", "DataSet": "data_set"}.get(name, name.lower())
    ids = {"AwsAccountId": resource.create["AwsAccountId"], key: resource.id}
    try:
        await getattr(client, f"describe_{snake}")(**ids)
    except client.exceptions.ResourceNotFoundException:
        await getattr(client, f"create_{snake}")(**resource.create)
        return "created"
    response = await getattr(client, f"update_{snake}")(**update_request(resource, model))
    if resource.kind == "dashboard":  # an update is a new version: publish it
        version = int(response["VersionArn"].rsplit("/", 1)[1])
        await client.update_dashboard_published_version(**ids, VersionNumber=version)
    return "updated"
