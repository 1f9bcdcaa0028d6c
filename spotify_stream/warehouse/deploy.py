"""``spotify-stream deploy glue``: the crawlers, ETL jobs and triggers of ``glue/``, in AWS.

Each ``glue/<kind>/*.json`` is the request body of Glue's Create call, with
``${role}``, ``${database}``, ``${lake}``, ``${scripts}`` and ``${package}``
filled in here. The job scripts (``glue/jobs/*.py``) are uploaded to
``${scripts}`` first. A resource that exists is updated with the same body, so
a second run changes the definitions in place and creates nothing.
"""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spotify_stream import definitions
from spotify_stream.errors import UsageError
from spotify_stream.settings import Settings
from spotify_stream.warehouse.aws import aws_errors
from spotify_stream.warehouse.etl import glue_dir

KINDS = ("crawlers", "jobs", "triggers")


@dataclass(frozen=True)
class GlueResource:
    kind: str  # one of KINDS
    name: str
    body: dict[str, Any]  # the Create call's parameters


def glue_resources(values: dict[str, str]) -> list[GlueResource]:
    """Every definition under ``glue/``, with ``values`` filled in."""
    resources = []
    for kind in KINDS:
        for path in sorted((glue_dir() / kind).glob("*.json")):
            body = json.loads(definitions.fill(path, values))
            resources.append(GlueResource(kind, body["Name"], body))
    return resources


def render(values: dict[str, str], out: Path) -> list[Path]:
    """Write the requests ``deploy glue`` would send, filled with ``values``, under ``out``."""
    documents = {f"{r.kind}/{r.name}.json": r.body for r in glue_resources(values)}
    return definitions.render(documents, out, "spotify-stream deploy glue --render")


def deploy_values(
    settings: Settings, role: str, scripts: str | None, package: str | None
) -> dict[str, str]:
    from spotify_stream import __version__

    if not settings.lake.startswith("s3://"):
        raise UsageError(f"deploy glue needs an s3:// lake, not {settings.lake}")
    lake = settings.lake.rstrip("/")
    return {
        "role": role,
        "database": settings.glue_database,
        "lake": lake,
        "scripts": (scripts or f"{lake}/glue-scripts").rstrip("/"),
        "package": package or f"spotify-stream=={__version__}",
    }


async def deploy_glue(settings: Settings, values: dict[str, str], glue: Any = None) -> list[tuple]:
    """Upload the job scripts and create or update every resource: (kind, name, action).
    ``glue``: the Glue client to use (tests); by default one from the AWS chain."""
    from aiobotocore.session import get_session

    resources = glue_resources(values)
    await _upload_scripts(settings, values["scripts"])
    done = []
    with aws_errors("Glue"):
        async with AsyncExitStack() as stack:
            if glue is None:
                glue = await stack.enter_async_context(
                    get_session().create_client("glue", endpoint_url=settings.glue_endpoint)
                )
            for r in resources:
                done.append((r.kind.removesuffix("s"), r.name, await _apply(glue, r)))
    return done


async def _upload_scripts(settings: Settings, scripts: str) -> None:
    from spotify_stream.sink.storage import S3Storage

    bucket, _, prefix = scripts.removeprefix("s3://").partition("/")
    if not scripts.startswith("s3://") or not bucket:
        raise UsageError(f"--scripts must be an s3:// location, not {scripts}")
    storage = S3Storage(bucket, prefix, settings)
    try:
        for path in sorted((glue_dir() / "jobs").glob("*.py")):
            await storage.put(path.name, path.read_bytes())
    finally:
        await storage.close()


_GET = {
    "crawlers": ("get_crawler", "Name"),
    "jobs": ("get_job", "JobName"),
    "triggers": ("get_trigger", "Name"),
}


async def _apply(glue: Any, resource: GlueResource) -> str:
    kind, one = resource.kind, resource.kind.removesuffix("s")
    get, key = _GET[kind]
    try:
        await getattr(glue, get)(**{key: resource.name})
    except glue.exceptions.EntityNotFoundException:
        await getattr(glue, f"create_{one}")(**resource.body)
        return "created"
    await getattr(glue, f"update_{one}")(**update_request(resource))
    return "updated"


def update_request(resource: GlueResource) -> dict[str, Any]:
    """The Update call's parameters for ``resource``'s Create body."""
    body = resource.body
    if resource.kind == "crawlers":
        return body
    if resource.kind == "jobs":
        return {
            "JobName": resource.name,
            "JobUpdate": {k: v for k, v in body.items() if k != "Name"},
        }
    fixed = ("Name", "Type", "StartOnCreation", "Tags")  # a trigger's, set at creation only
    return {
        "Name": resource.name,
        "TriggerUpdate": {k: v for k, v in body.items() if k not in fixed},
    }
