"""deploy/ec2/: the environment file, the cloud-init user data and the CloudFormation stack.

One source for each part: the settings (``Settings``) document the
environment file; the systemd unit is ``deploy/ec2/spotify-stream-worker@.service``;
the user data embeds both and is itself embedded in the stack's launch
template, with the stack's parameters as ``${Name}`` (``Fn::Sub``).
``spotify-stream deploy ec2 --render deploy/ec2`` writes the generated files;
the tests check the committed ones against it, lint the stack with cfn-lint
and the user data with ``cloud-init schema``, and read the IAM policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spotify_stream import __version__
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


def _policy(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": statements}


def stack() -> dict[str, Any]:
    """The CloudFormation template (long-form intrinsic functions: plain YAML)."""
    sub = lambda text: {"Fn::Sub": text}  # noqa: E731
    lake_objects = sub("arn:${AWS::Partition}:s3:::${LakeBucket}/${LakePrefix}/*")
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        # W1030: cfn-lint resolves KafkaClusterArn to its empty default in the Kafka policy,
        # which exists only when the ARN is set (condition MskIam)
        "Metadata": {"cfn-lint": {"config": {"ignore_checks": ["W1030"]}}},
        "Description": "spotify-stream: workers on EC2 writing the lake to S3, with its Glue "
        "database and Athena workgroup, and optionally an MSK cluster.",
        "Parameters": {
            "ReleaseVersion": {
                "Type": "String",
                "Default": __version__,
                "Description": "The spotify-stream release the instances install (pinned).",
            },
            "WorkersPerInstance": {
                "Type": "Number",
                "Default": 2,
                "MinValue": 1,
                "MaxValue": 16,
                "Description": "Worker processes per instance (one per core is a good start).",
            },
            "InstanceType": {"Type": "String", "Default": "m7i.large"},
            "ImageId": {
                "Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
                "Default": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
            },
            "DesiredInstances": {"Type": "Number", "Default": 2, "MinValue": 1},
            "MaxInstances": {"Type": "Number", "Default": 6, "MinValue": 1},
            "Partitions": {
                "Type": "Number",
                "Default": 12,
                "Description": "Partitions of the topics: the most worker processes that share work.",
            },
            "VpcId": {"Type": "AWS::EC2::VPC::Id"},
            "SubnetIds": {"Type": "List<AWS::EC2::Subnet::Id>"},
            "LakeBucket": {
                "Type": "String",
                "AllowedPattern": "[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]",
                "Description": "Name of the bucket this stack creates for the lake.",
            },
            "LakePrefix": {"Type": "String", "Default": "lake", "AllowedPattern": "[a-z0-9_-]+"},
            "ColdAfterDays": {
                "Type": "Number",
                "Default": 90,
                "Description": "Days after which lake objects move to Intelligent-Tiering.",
            },
            "GlueDatabase": {"Type": "String", "Default": "spotify_stream"},
            "AthenaWorkGroup": {"Type": "String", "Default": "spotify-stream"},
            "AthenaScanLimitBytes": {
                "Type": "Number",
                "Default": 10737418240,
                "MinValue": 10000000,
                "Description": "Bytes a query may scan before Athena cancels it.",
            },
            "CreateMskCluster": {
                "Type": "String",
                "Default": "false",
                "AllowedValues": ["true", "false"],
                "Description": "true: an MSK cluster (IAM auth) in SubnetIds (three of them).",
            },
            "KafkaBootstrapServers": {
                "Type": "String",
                "Default": "",
                "Description": "Bootstrap servers of an existing Kafka or MSK (when no cluster "
                "is created).",
            },
            "KafkaClusterArn": {
                "Type": "String",
                "Default": "",
                "Description": "ARN of an existing MSK cluster with IAM auth (grants access).",
            },
            "KafkaSecurity": {
                "Type": "String",
                "Default": "msk_iam",
                "AllowedValues": ["plaintext", "tls", "sasl_scram", "msk_iam"],
            },
            "KafkaSecretArn": {
                "Type": "String",
                "Default": "",
                "Description": "Secrets Manager secret of the SCRAM login (sasl_scram).",
            },
        },
        "Conditions": {
            "CreateMsk": {"Fn::Equals": [{"Ref": "CreateMskCluster"}, "true"]},
            "HasClusterArn": {"Fn::Not": [{"Fn::Equals": [{"Ref": "KafkaClusterArn"}, ""]}]},
            "MskIam": {"Fn::Or": [{"Condition": "CreateMsk"}, {"Condition": "HasClusterArn"}]},
            "HasSecret": {"Fn::Not": [{"Fn::Equals": [{"Ref": "KafkaSecretArn"}, ""]}]},
        },
        "Resources": {
            "Lake": {
                "Type": "AWS::S3::Bucket",
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {
                    "BucketName": {"Ref": "LakeBucket"},
                    "BucketEncryption": {
                        "ServerSideEncryptionConfiguration": [
                            {
                                "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"},
                                "BucketKeyEnabled": True,
                            }
                        ]
                    },
                    "PublicAccessBlockConfiguration": {
                        "BlockPublicAcls": True,
                        "BlockPublicPolicy": True,
                        "IgnorePublicAcls": True,
                        "RestrictPublicBuckets": True,
                    },
                    "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                    "LifecycleConfiguration": {
                        "Rules": [
                            {
                                "Id": "old-windows-cold",
                                "Status": "Enabled",
                                "Prefix": sub("${LakePrefix}/curated/"),
                                "Transitions": [
                                    {
                                        "StorageClass": "INTELLIGENT_TIERING",
                                        "TransitionInDays": {"Ref": "ColdAfterDays"},
                                    }
                                ],
                            },
                            {
                                "Id": "unfinished-uploads",
                                "Status": "Enabled",
                                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
                            },
                            {
                                "Id": "athena-results",
                                "Status": "Enabled",
                                "Prefix": sub("${LakePrefix}/athena-results/"),
                                "ExpirationInDays": 30,
                            },
                        ]
                    },
                },
            },
            "LakeTlsOnly": {
                "Type": "AWS::S3::BucketPolicy",
                "Properties": {
                    "Bucket": {"Ref": "Lake"},
                    "PolicyDocument": _policy(
                        [
                            {
                                "Sid": "TlsOnly",
                                "Effect": "Deny",
                                "Principal": "*",
                                "Action": "s3:*",
                                "Resource": [
                                    sub("arn:${AWS::Partition}:s3:::${LakeBucket}"),
                                    sub("arn:${AWS::Partition}:s3:::${LakeBucket}/*"),
                                ],
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        ]
                    ),
                },
            },
            "Database": {
                "Type": "AWS::Glue::Database",
                "Properties": {
                    "CatalogId": {"Ref": "AWS::AccountId"},
                    "DatabaseInput": {
                        "Name": {"Ref": "GlueDatabase"},
                        "Description": "spotify-stream lake (spotify-stream catalog sync)",
                    },
                },
            },
            "WorkGroup": {
                "Type": "AWS::Athena::WorkGroup",
                "Properties": {
                    "Name": {"Ref": "AthenaWorkGroup"},
                    "State": "ENABLED",
                    "WorkGroupConfiguration": {
                        "EnforceWorkGroupConfiguration": True,
                        "BytesScannedCutoffPerQuery": {"Ref": "AthenaScanLimitBytes"},
                        "ResultConfiguration": {
                            "OutputLocation": sub(
                                "s3://${LakeBucket}/${LakePrefix}/athena-results/"
                            ),
                            "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
                        },
                    },
                },
            },
            "WorkerRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": _policy(
                        [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "ec2.amazonaws.com"},
                                "Action": "sts:AssumeRole",
                            }
                        ]
                    ),
                    "Policies": [
                        {
                            "PolicyName": "lake-catalog-queries",
                            "PolicyDocument": _policy(
                                [
                                    {
                                        "Sid": "LakeObjects",
                                        "Effect": "Allow",
                                        "Action": [
                                            "s3:GetObject",
                                            "s3:PutObject",
                                            "s3:DeleteObject",
                                            "s3:AbortMultipartUpload",
                                        ],
                                        "Resource": lake_objects,
                                    },
                                    {
                                        "Sid": "LakeListing",
                                        "Effect": "Allow",
                                        "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                                        "Resource": sub("arn:${AWS::Partition}:s3:::${LakeBucket}"),
                                        "Condition": {
                                            "StringLike": {"s3:prefix": [sub("${LakePrefix}/*")]}
                                        },
                                    },
                                    {
                                        "Sid": "Catalog",
                                        "Effect": "Allow",
                                        "Action": [
                                            "glue:GetDatabase",
                                            "glue:GetTable",
                                            "glue:GetTables",
                                            "glue:CreateTable",
                                            "glue:UpdateTable",
                                            "glue:GetPartitions",
                                            "glue:BatchCreatePartition",
                                        ],
                                        "Resource": [
                                            sub(
                                                "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:catalog"
                                            ),
                                            sub(
                                                "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:database/${GlueDatabase}"
                                            ),
                                            sub(
                                                "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:table/${GlueDatabase}/*"
                                            ),
                                        ],
                                    },
                                    {
                                        "Sid": "Queries",
                                        "Effect": "Allow",
                                        "Action": [
                                            "athena:StartQueryExecution",
                                            "athena:GetQueryExecution",
                                            "athena:GetQueryResults",
                                            "athena:StopQueryExecution",
                                            "athena:GetWorkGroup",
                                        ],
                                        "Resource": sub(
                                            "arn:${AWS::Partition}:athena:${AWS::Region}:${AWS::AccountId}:workgroup/${AthenaWorkGroup}"
                                        ),
                                    },
                                ]
                            ),
                        },
                        {
                            "Fn::If": [
                                "MskIam",
                                {
                                    "PolicyName": "kafka",
                                    "PolicyDocument": _policy(
                                        [
                                            {
                                                "Sid": "Kafka",
                                                "Effect": "Allow",
                                                "Action": [
                                                    "kafka-cluster:Connect",
                                                    "kafka-cluster:DescribeCluster",
                                                    "kafka-cluster:*Topic*",
                                                    "kafka-cluster:ReadData",
                                                    "kafka-cluster:WriteData",
                                                    "kafka-cluster:*Group*",
                                                    "kafka-cluster:*TransactionalId*",
                                                    "kafka:GetBootstrapBrokers",
                                                ],
                                                "Resource": _cluster_resources(),
                                            }
                                        ]
                                    ),
                                },
                                {"Ref": "AWS::NoValue"},
                            ]
                        },
                        {
                            "Fn::If": [
                                "HasSecret",
                                {
                                    "PolicyName": "kafka-secret",
                                    "PolicyDocument": _policy(
                                        [
                                            {
                                                "Sid": "KafkaSecret",
                                                "Effect": "Allow",
                                                "Action": "secretsmanager:GetSecretValue",
                                                "Resource": {"Ref": "KafkaSecretArn"},
                                            }
                                        ]
                                    ),
                                },
                                {"Ref": "AWS::NoValue"},
                            ]
                        },
                    ],
                },
            },
            "WorkerProfile": {
                "Type": "AWS::IAM::InstanceProfile",
                "Properties": {"Roles": [{"Ref": "WorkerRole"}]},
            },
            "WorkerSecurityGroup": {
                "Type": "AWS::EC2::SecurityGroup",
                "Properties": {
                    "GroupDescription": "spotify-stream workers: no inbound; web pages on "
                    "127.0.0.1 (reach them through SSM port forwarding)",
                    "VpcId": {"Ref": "VpcId"},
                    "SecurityGroupEgress": [
                        {
                            "IpProtocol": "tcp",
                            "FromPort": 443,
                            "ToPort": 443,
                            "CidrIp": "0.0.0.0/0",
                            "Description": "S3, Glue, Athena, STS, Secrets Manager, PyPI",
                        },
                        {
                            "IpProtocol": "tcp",
                            "FromPort": 9092,
                            "ToPort": 9098,
                            "CidrIp": "10.0.0.0/8",
                            "Description": "Kafka in the VPC",
                        },
                    ],
                },
            },
            "MskSecurityGroup": {
                "Type": "AWS::EC2::SecurityGroup",
                "Condition": "CreateMsk",
                "Properties": {
                    "GroupDescription": "spotify-stream MSK: Kafka from the workers only",
                    "VpcId": {"Ref": "VpcId"},
                    "SecurityGroupIngress": [
                        {
                            "IpProtocol": "tcp",
                            "FromPort": 9092,
                            "ToPort": 9098,
                            "SourceSecurityGroupId": {"Ref": "WorkerSecurityGroup"},
                        }
                    ],
                },
            },
            "MskCluster": {
                "Type": "AWS::MSK::Cluster",
                "Condition": "CreateMsk",
                "Properties": {
                    "ClusterName": {"Fn::Sub": "${AWS::StackName}-kafka"},
                    "KafkaVersion": "3.6.0",
                    "NumberOfBrokerNodes": 3,
                    "BrokerNodeGroupInfo": {
                        "InstanceType": "kafka.m7g.large",
                        "ClientSubnets": {"Ref": "SubnetIds"},
                        "SecurityGroups": [{"Ref": "MskSecurityGroup"}],
                    },
                    "ClientAuthentication": {"Sasl": {"Iam": {"Enabled": True}}},
                    "EncryptionInfo": {
                        "EncryptionInTransit": {"ClientBroker": "TLS", "InCluster": True}
                    },
                },
            },
            "WorkerLaunchTemplate": {
                "Type": "AWS::EC2::LaunchTemplate",
                "Properties": {
                    "LaunchTemplateData": {
                        "ImageId": {"Ref": "ImageId"},
                        "InstanceType": {"Ref": "InstanceType"},
                        "IamInstanceProfile": {"Arn": {"Fn::GetAtt": ["WorkerProfile", "Arn"]}},
                        "SecurityGroupIds": [{"Ref": "WorkerSecurityGroup"}],
                        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
                        "BlockDeviceMappings": [
                            {
                                "DeviceName": "/dev/xvda",
                                "Ebs": {"VolumeSize": 30, "VolumeType": "gp3", "Encrypted": True},
                            }
                        ],
                        "UserData": {"Fn::Base64": {"Fn::Sub": [user_data(), _bootstrap()]}},
                    }
                },
            },
            "Workers": {
                "Type": "AWS::AutoScaling::AutoScalingGroup",
                "UpdatePolicy": {
                    "AutoScalingRollingUpdate": {
                        "MaxBatchSize": 1,
                        "MinInstancesInService": 1,
                        "PauseTime": "PT5M",
                    }
                },
                "Properties": {
                    "VPCZoneIdentifier": {"Ref": "SubnetIds"},
                    "MinSize": 1,
                    "MaxSize": {"Ref": "MaxInstances"},
                    "DesiredCapacity": {"Ref": "DesiredInstances"},
                    "LaunchTemplate": {
                        "LaunchTemplateId": {"Ref": "WorkerLaunchTemplate"},
                        "Version": {"Fn::GetAtt": ["WorkerLaunchTemplate", "LatestVersionNumber"]},
                    },
                    "Tags": [
                        {
                            "Key": "Name",
                            "Value": {"Fn::Sub": "${AWS::StackName}-worker"},
                            "PropagateAtLaunch": True,
                        }
                    ],
                },
            },
        },
        "Outputs": {
            "LakeUrl": {"Value": {"Fn::Sub": "s3://${LakeBucket}/${LakePrefix}"}},
            "WorkerRoleArn": {"Value": {"Fn::GetAtt": ["WorkerRole", "Arn"]}},
            "AutoScalingGroup": {"Value": {"Ref": "Workers"}},
        },
    }


def _cluster_resources() -> dict[str, Any]:
    """The MSK cluster's ARN, its topics' and its groups' (created or given)."""
    return {
        "Fn::If": [
            "CreateMsk",
            [
                {"Ref": "MskCluster"},
                {
                    "Fn::Sub": "arn:${AWS::Partition}:kafka:${AWS::Region}:${AWS::AccountId}:topic/${AWS::StackName}-kafka/*"
                },
                {
                    "Fn::Sub": "arn:${AWS::Partition}:kafka:${AWS::Region}:${AWS::AccountId}:group/${AWS::StackName}-kafka/*"
                },
            ],
            [
                {"Ref": "KafkaClusterArn"},
                _cluster_children("topic"),
                _cluster_children("group"),
            ],
        ]
    }


def _cluster_children(kind: str) -> dict[str, Any]:
    """``arn:...:<kind>/<cluster name>/<cluster uuid>/*`` of the given cluster ARN."""
    return {
        "Fn::Join": [
            "",
            [
                {"Fn::Select": [0, {"Fn::Split": [":cluster/", {"Ref": "KafkaClusterArn"}]}]},
                f":{kind}/",
                {"Fn::Select": [1, {"Fn::Split": [":cluster/", {"Ref": "KafkaClusterArn"}]}]},
                "/*",
            ],
        ]
    }


def _bootstrap() -> dict[str, Any]:
    """``Fn::Sub`` variables of the user data: a created cluster's bootstrap servers are
    looked up at boot (CloudFormation has no attribute for them)."""
    lookup = (
        'sed -i "s|^SPOTIFY_STREAM_BROKER=.*|SPOTIFY_STREAM_BROKER=$(aws kafka '
        "get-bootstrap-brokers --region ${AWS::Region} --cluster-arn ${MskCluster} "
        f'--query BootstrapBrokerStringSaslIam --output text)|" {ENV_FILE}'
    )
    return {
        "KafkaBootstrapServers": {
            "Fn::If": ["CreateMsk", "from-msk", {"Ref": "KafkaBootstrapServers"}]
        },
        "BrokerLookup": {"Fn::If": ["CreateMsk", {"Fn::Sub": lookup}, "/bin/true"]},
    }


def render(out: Path) -> list[Path]:
    """Write the generated files of ``deploy/ec2`` into ``out``."""
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    files = {
        "spotify-stream.env": env_template(),
        "stack.yaml": "# Generated by: spotify-stream deploy ec2 --render deploy/ec2\n"
        + yaml.safe_dump(stack(), sort_keys=False, width=100),
    }
    written = []
    for name, text in files.items():
        (out / name).write_text(text)
        written.append(out / name)
    return written
