"""deploy/ec2/: the environment file, the cloud-init user data and the CloudFormation stack.

One source for each part: the settings (``Settings``) document the
environment file; the systemd unit is ``deploy/ec2/spotify-stream-worker@.service``;
the user data embeds both and is itself embedded in the stack's launch
template, with the stack's parameters as ``${Name}`` (``Fn::Sub``); the stack
is the template ``ec2_stack.yaml`` beside this file.
``spotify-stream deploy ec2 --render deploy/ec2`` writes the generated files;
the tests check the committed ones against it, lint the stack with cfn-lint
and the user data with ``cloud-init schema``, and read the IAM policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spotify_stream import __version__, definitions
from spotify_stream.settings import Settings

UNIT = "spotify-stream-worker@.service"
ENV_FILE = "/etc/spotify-stream/spotify-stream.env"
FIRST_PORT = 6066
#: Settings the systemd unit gives each worker (its instance name is the web port).
PER_WORKER = ("web_port", "data_dir")
#: What the stack sets in the environment file; every other setting keeps its default.
STACK_SETTINGS = {
    "broker": "${KafkaBootstrapServers}",
    "kafka_security": "${KafkaSecurity}",
    "kafka_secret_arn": "${KafkaSecretArn}",
    "aws_region": "${AWS::Region}",
    "lake": "s3://${LakeBucket}/${LakePrefix}",
    "s3_sse": "aws:kms",
    "glue_database": "${GlueDatabase}",
    "athena_workgroup": "${AthenaWorkGroup}",
    "partitions": "${Partitions}",
    "replication": "3",
}


def deploy_dir() -> Path:
    """``deploy/``: inside the package of a wheel, beside it in a source checkout."""
    packaged = Path(__file__).parent / "deploy"
    return packaged if packaged.is_dir() else Path(__file__).parents[1] / "deploy"


def env_template(values: dict[str, str] | None = None) -> str:
    """Every setting with its description and default; ``values`` set, the rest commented."""
    values = values or {}
    lines = [
        "# spotify-stream settings: one per line, SPOTIFY_STREAM_<NAME>=value.",
        "# Commented lines show the default. Secrets (kafka_password) belong in",
        "# Secrets Manager (SPOTIFY_STREAM_KAFKA_SECRET_ARN), not here.",
    ]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = (
            ""
            if default is None
            else str(default).lower()
            if isinstance(default, bool)
            else str(default)
        )
        lines.append("")
        lines.append(f"# {field.description or name}")
        key = f"SPOTIFY_STREAM_{name.upper()}"
        if name in PER_WORKER:
            lines.append(f"# {key}: set for each worker by {UNIT} (do not set it here)")
        elif name in values:
            lines.append(f"{key}={values[name]}")
        else:
            lines.append(f"#{key}={shown}")
    return "\n".join(lines) + "\n"


def user_data() -> str:
    """The cloud-config of a worker instance, with the stack's ``${Parameters}``."""
    import yaml

    _Dumper = _dumper()
    unit = (deploy_dir() / "ec2" / UNIT).read_text()
    config = {
        "package_update": True,
        "packages": ["python3.11", "python3.11-pip"],
        "users": [
            "default",
            {
                "name": "spotify-stream",
                "system": True,
                "shell": "/sbin/nologin",
                "homedir": "/var/lib/spotify-stream",
                "no_create_home": False,
            },
        ],
        "write_files": [
            {
                "path": ENV_FILE,
                "permissions": "0640",
                "owner": "root:spotify-stream",
                "content": env_template(STACK_SETTINGS),
                "defer": True,  # after the user exists
            },
            {
                "path": f"/etc/systemd/system/{UNIT}",
                "permissions": "0644",
                "content": unit,
            },
        ],
        "runcmd": [
            "python3.11 -m venv /opt/spotify-stream",
            "/opt/spotify-stream/bin/pip install --quiet 'spotify-stream==${ReleaseVersion}'",
            "install -d -o spotify-stream -g spotify-stream -m 0750 /var/lib/spotify-stream",
            "${BrokerLookup}",
            "systemctl daemon-reload",
            "for i in $(seq 1 ${WorkersPerInstance}); do "
            f"systemctl enable --now spotify-stream-worker@$(({FIRST_PORT} - 1 + i)); done",
        ],
    }
    return "#cloud-config\n" + yaml.dump(config, Dumper=_Dumper, sort_keys=False, width=1000)


def _literal(dumper: Any, text: str) -> Any:
    return dumper.represent_scalar(
        "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None
    )


def _dumper() -> type:
    import yaml

    class Dumper(yaml.SafeDumper):
        """Multi-line strings (the files written) as literal blocks."""

    Dumper.add_representer(str, _literal)
    return Dumper


def substitute(text: str, parameters: dict[str, str]) -> str:
    """``text`` with ``${Name}`` replaced as ``Fn::Sub`` does (for the tests' rendering)."""
    for name, value in parameters.items():
        text = text.replace(f"${{{name}}}", value)
    return text


STACK = Path(__file__).with_name("ec2_stack.yaml")


def stack() -> dict[str, Any]:
    """The CloudFormation template: ``ec2_stack.yaml`` with this release as the
    ReleaseVersion default and the cloud-init user data in the launch template."""
    import yaml

    template = yaml.safe_load(STACK.read_text())
    template["Parameters"]["ReleaseVersion"]["Default"] = __version__
    launch = template["Resources"]["WorkerLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    launch["UserData"]["Fn::Base64"]["Fn::Sub"][0] = user_data()
    return template


def render(out: Path) -> list[Path]:
    """Write the generated files of ``deploy/ec2`` into ``out``."""
    documents = {"spotify-stream.env": env_template(), "stack.yaml": stack()}
    return definitions.render(documents, out, "spotify-stream deploy ec2 --render deploy/ec2")
