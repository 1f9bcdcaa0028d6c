"""glue/: crawler, job and trigger definitions valid for botocore's Glue model, covering
every dataset and mart; deploy glue on moto's server (creates, then updates; moto has
no Update calls, so the second run's are validated by botocore and answered in the
client); the job scripts run the etl commands with Glue's arguments."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import types

import botocore.session
import pytest
from aiobotocore.session import get_session
from botocore.validate import validate_parameters

from spotify_stream.sink.datasets import DATASETS
from spotify_stream.sink.objects import LakeFile
from spotify_stream.sink.storage import storage_for
from spotify_stream.warehouse.deploy import (
    deploy_glue,
    deploy_values,
    glue_resources,
    update_request,
)
from spotify_stream.warehouse.etl import glue_dir
from spotify_stream.warehouse.marts import marts
from tests.lake import lake_settings
from tests.warehouse.test_compaction import DAY, write_parts

ROLE = "arn:aws:iam::123456789012:role/spotify-stream-glue"
VALUES = {
    "role": ROLE,
    "database": "spotify_stream",
    "lake": "s3://lake-bucket/lake",
    "scripts": "s3://lake-bucket/lake/glue-scripts",
    "package": "spotify-stream==0.1.0",
}
GLUE = botocore.session.get_session().get_service_model("glue")
CREATE = {"crawlers": "CreateCrawler", "jobs": "CreateJob", "triggers": "CreateTrigger"}
UPDATE = {"crawlers": "UpdateCrawler", "jobs": "UpdateJob", "triggers": "UpdateTrigger"}


@pytest.mark.parametrize("resource", glue_resources(VALUES), ids=lambda r: r.name)
def test_every_definition_is_a_valid_create_and_update_request(resource):
    validate_parameters(resource.body, GLUE.operation_model(CREATE[resource.kind]).input_shape)
    update = GLUE.operation_model(UPDATE[resource.kind]).input_shape
    validate_parameters(update_request(resource), update)
    assert "${" not in json.dumps(resource.body)


def test_the_crawlers_cover_every_dataset_and_mart():
    paths = {
        t["Path"]
        for r in glue_resources(VALUES)
        if r.kind == "crawlers"
        for t in r.body["Targets"]["S3Targets"]
    }
    lake = VALUES["lake"]
    assert paths == {f"{lake}/curated/{d.name}/" for d in DATASETS} | {
        f"{lake}/marts/{m}/" for m in marts()
    }


def test_every_job_has_its_script_and_the_triggers_run_them_in_order():
    resources = glue_resources(VALUES)
    jobs = {r.name: r.body for r in resources if r.kind == "jobs"}
    for body in jobs.values():
        script = body["Command"]["ScriptLocation"].rsplit("/", 1)[1]
        assert (glue_dir() / "jobs" / script).is_file()
        assert body["DefaultArguments"]["--SPOTIFY_STREAM_LAKE"] == VALUES["lake"]
    triggers = {r.name: r.body for r in resources if r.kind == "triggers"}
    scheduled = triggers["spotify-stream-daily-compact"]
    assert [a["JobName"] for a in scheduled["Actions"]] == ["spotify-stream-compact"]
    after = triggers["spotify-stream-aggregate-after-compact"]
    assert after["Predicate"]["Conditions"][0]["JobName"] == "spotify-stream-compact"
    assert [a["JobName"] for a in after["Actions"]] == ["spotify-stream-aggregate"]
    assert {a["JobName"] for t in triggers.values() for a in t["Actions"]} <= set(jobs)


@pytest.fixture
def s3_settings(fresh_settings, moto_endpoint, aws_env):
    return lake_settings(
        fresh_settings, "s3://deploy-bucket/lake", moto_endpoint, glue_endpoint=moto_endpoint
    )


async def test_deploy_creates_then_updates(s3_settings, moto_endpoint):
    settings = s3_settings
    values = deploy_values(settings, ROLE, None, None)
    assert values["scripts"] == "s3://deploy-bucket/lake/glue-scripts"
    first = await deploy_glue(settings, values)
    resources = glue_resources(values)
    assert first == [(r.kind.removesuffix("s"), r.name, "created") for r in resources]

    updates: list[tuple[str, dict]] = []

    def answer_update(model, params, **_):
        """moto has no Update calls: the request (already validated by botocore) is
        recorded and answered here."""
        updates.append((model.name, json.loads(params["body"])))
        return types.SimpleNamespace(status_code=200, headers={}), {}

    async with get_session().create_client("glue", endpoint_url=moto_endpoint) as glue:
        crawler = (await glue.get_crawler(Name="spotify-stream-curated"))["Crawler"]
        assert crawler["Role"] == ROLE and crawler["DatabaseName"] == settings.glue_database
        job = (await glue.get_job(JobName="spotify-stream-compact"))["Job"]
        assert job["Command"]["ScriptLocation"] == f"{values['scripts']}/compact.py"
        assert job["GlueVersion"] == "5.0"
        trigger = (await glue.get_trigger(Name="spotify-stream-daily-compact"))["Trigger"]
        assert trigger["Schedule"] == "cron(30 1 * * ? *)"
        for operation in UPDATE.values():
            glue.meta.events.register(f"before-call.glue.{operation}", answer_update)
        second = await deploy_glue(settings, values, glue)
    assert second == [(r.kind.removesuffix("s"), r.name, "updated") for r in resources]
    assert updates == [(UPDATE[r.kind], update_request(r)) for r in resources]

    scripts = storage_for(settings.model_copy(update={"lake": values["scripts"]}))
    assert await scripts.keys() == ["aggregate.py", "compact.py"]
    assert await scripts.get("compact.py") == (glue_dir() / "jobs" / "compact.py").read_bytes()
    await scripts.close()


async def test_the_compact_job_script_runs_with_glues_arguments(fresh_settings, tmp_path):
    settings = fresh_settings.model_copy(update={"lake": f"file://{tmp_path}/lake"})
    storage = storage_for(settings)
    await write_parts(storage, hours=(9,), partitions=2, flushes=3)
    glue_args = [
        "--JOB_ID", "j_1", "--JOB_RUN_ID", "jr_1", "--job-bookmark-option",
        "job-bookmark-disable", "--JOB_NAME", "spotify-stream-compact",
        "--SPOTIFY_STREAM_LAKE", settings.lake, "--date", f"{DAY}",
    ]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, str(glue_dir() / "jobs" / "compact.py"), *glue_args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "plays" in proc.stdout
    files = [LakeFile.parse(k) for k in await storage.keys(f"curated/plays/dt={DAY}/")]
    assert [f.file.startswith("compact-") for f in files] == [True]
    assert dt.date.fromisoformat(files[0].date) == DAY


def test_render_writes_the_requests_deploy_sends(tmp_path):
    env = {
        "SPOTIFY_STREAM_LAKE": VALUES["lake"],
        "SPOTIFY_STREAM_GLUE_DATABASE": VALUES["database"],
        "PATH": "/usr/bin:/bin",
    }
    command = [sys.executable, "-m", "spotify_stream", "deploy", "glue", "--role", ROLE]
    command += ["--package", VALUES["package"], "--render", str(tmp_path)]
    subprocess.run(command, env=env, check=True, capture_output=True)
    written = {
        path.relative_to(tmp_path).as_posix(): json.loads(path.read_text())
        for path in tmp_path.rglob("*.json")
    }
    assert written == {f"{r.kind}/{r.name}.json": r.body for r in glue_resources(VALUES)}
