"""deploy/ec2: the generated files are current; the stack passes cfn-lint; the user data,
rendered for given parameters, passes Debian's ``cloud-init schema`` and carries the
unit and the settings; the worker role grants nothing outside the lake prefix, the Glue
database, the Athena workgroup and the Kafka cluster and secret it is given."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from spotify_stream.ec2 import (
    ENV_FILE,
    STACK_SETTINGS,
    UNIT,
    env_template,
    render,
    stack,
    substitute,
    user_data,
)
from spotify_stream.settings import Settings

COMMITTED = Path(__file__).parents[1] / "deploy" / "ec2"
CLOUD_INIT = "/usr/bin/cloud-init"
PARAMETERS = {
    "KafkaSecurity": "msk_iam",
    "KafkaSecretArn": "",
    "AWS::Region": "eu-west-1",
    "LakeBucket": "acme-spotify-lake",
    "LakePrefix": "lake",
    "GlueDatabase": "spotify_stream",
    "AthenaWorkGroup": "spotify-stream",
    "Partitions": "12",
    "ReleaseVersion": "0.1.0",
    "WorkersPerInstance": "3",
}


def test_the_committed_files_are_generated(tmp_path):
    for path in render(tmp_path):
        assert (COMMITTED / path.name).read_text() == path.read_text(), (
            f"run: spotify-stream deploy ec2 --render deploy/ec2 ({path.name})"
        )


def test_the_stack_passes_cfn_lint():
    lint = Path(sys.executable).with_name("cfn-lint")
    proc = subprocess.run(
        [str(lint), str(COMMITTED / "stack.yaml")], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "variant",
    [
        {
            "KafkaBootstrapServers": "b-1.kafka.eu-west-1.amazonaws.com:9098",
            "BrokerLookup": "/bin/true",
        },
        {
            "KafkaBootstrapServers": "from-msk",
            "KafkaSecurity": "sasl_scram",
            "KafkaSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:AmazonMSK_x",
            "BrokerLookup": (
                'sed -i "s|^SPOTIFY_STREAM_BROKER=.*|SPOTIFY_STREAM_BROKER=$(aws kafka '
                "get-bootstrap-brokers --cluster-arn arn:aws:kafka:eu-west-1:1:cluster/c/u "
                f'--query BootstrapBrokerStringSaslIam --output text)|" {ENV_FILE}'
            ),
        },
    ],
    ids=["existing-cluster", "created-cluster-scram"],
)
def test_the_user_data_is_valid_cloud_config(variant, tmp_path):
    assert Path(CLOUD_INIT).exists(), "Debian's cloud-init is missing: ./dev test installs it"
    text = substitute(user_data(), PARAMETERS | variant)
    assert "${" not in text
    path = tmp_path / "user-data.yaml"
    path.write_text(text)
    proc = subprocess.run(
        [CLOUD_INIT, "schema", "--config-file", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "Valid cloud-config" in proc.stdout, proc.stdout + proc.stderr
    config = yaml.safe_load(text)
    files = {f["path"]: f for f in config["write_files"]}
    assert files[f"/etc/systemd/system/{UNIT}"]["content"] == (COMMITTED / UNIT).read_text()
    env = dict(
        line.split("=", 1)
        for line in files[ENV_FILE]["content"].splitlines()
        if line and not line.startswith("#")
    )
    assert env["SPOTIFY_STREAM_LAKE"] == "s3://acme-spotify-lake/lake"
    assert env["SPOTIFY_STREAM_BROKER"] == variant["KafkaBootstrapServers"]
    assert set(env) == {f"SPOTIFY_STREAM_{k.upper()}" for k in STACK_SETTINGS}
    assert files[ENV_FILE]["permissions"] == "0640" and files[ENV_FILE]["defer"]
    # the pinned release, and one worker per port 6066.. as many as asked
    assert "'spotify-stream==0.1.0'" in " ".join(config["runcmd"])
    assert "$(seq 1 3)" in config["runcmd"][-1] and "6066 - 1 + i" in config["runcmd"][-1]


def test_the_env_template_documents_every_setting():
    text = env_template()
    for name, field in Settings.model_fields.items():
        assert f"SPOTIFY_STREAM_{name.upper()}" in text, name
        assert field.description and f"# {field.description}" in text, name


def test_the_unit_outlives_the_sink_window_and_runs_unprivileged():
    unit = (COMMITTED / UNIT).read_text()
    stop = int(re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M).group(1))
    assert stop > Settings(_env_file=None).flush_seconds
    for line in (
        "User=spotify-stream",
        "Restart=on-failure",
        "LimitNOFILE=65536",
        "StandardOutput=journal",
        "NoNewPrivileges=true",
        "KillSignal=SIGTERM",
    ):
        assert re.search(rf"^{re.escape(line)}$", unit, re.M), line  # fmt: skip


def _strings(node) -> list[str]:
    """Every ARN pattern a Resource holds, with Fn::Sub text kept as written."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    if "Fn::Sub" in node:
        return [node["Fn::Sub"]]
    if "Ref" in node:
        return [f"${{{node['Ref']}}}"]
    if "Fn::If" in node:
        return [s for branch in node["Fn::If"][1:] for s in _strings(branch)]
    if "Fn::Join" in node:
        return ["<join of ${KafkaClusterArn}>"]
    raise AssertionError(f"unexpected resource {node}")


def test_the_worker_role_grants_only_its_own():
    role = stack()["Resources"]["WorkerRole"]["Properties"]
    statements = []
    for policy in role["Policies"]:
        if "Fn::If" in policy:  # conditional policies: the granting branch
            policy = policy["Fn::If"][1]
        statements += policy["PolicyDocument"]["Statement"]
    allowed = {
        "s3": [
            "arn:${AWS::Partition}:s3:::${LakeBucket}/${LakePrefix}/*",
            "arn:${AWS::Partition}:s3:::${LakeBucket}",
        ],
        "glue": [
            "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:catalog",
            "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:database/${GlueDatabase}",
            "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:table/${GlueDatabase}/*",
        ],
        "athena": [
            "arn:${AWS::Partition}:athena:${AWS::Region}:${AWS::AccountId}:workgroup/${AthenaWorkGroup}"
        ],
        "kafka-cluster": [
            "${MskCluster}",
            "${KafkaClusterArn}",
            "<join of ${KafkaClusterArn}>",
            "arn:${AWS::Partition}:kafka:${AWS::Region}:${AWS::AccountId}:topic/${AWS::StackName}-kafka/*",
            "arn:${AWS::Partition}:kafka:${AWS::Region}:${AWS::AccountId}:group/${AWS::StackName}-kafka/*",
        ],
        "secretsmanager": ["${KafkaSecretArn}"],
    }
    allowed["kafka"] = allowed["kafka-cluster"]
    for statement in statements:
        assert statement["Effect"] == "Allow"
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        services = {a.split(":")[0] for a in actions}
        assert len(services - {"kafka"}) == 1, statement["Sid"]
        resources = _strings(statement["Resource"])
        assert "*" not in resources
        for service in services:
            assert set(resources) <= set(allowed[service]), (statement["Sid"], resources)
        if "s3:ListBucket" in actions:  # the bucket, only below the prefix
            assert statement["Condition"] == {
                "StringLike": {"s3:prefix": [{"Fn::Sub": "${LakePrefix}/*"}]}
            }
        elif services == {"s3"}:
            assert resources == ["arn:${AWS::Partition}:s3:::${LakeBucket}/${LakePrefix}/*"]
    # no managed policy to widen it
    assert "ManagedPolicyArns" not in role
