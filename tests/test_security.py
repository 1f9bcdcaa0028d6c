"""Kafka security modes: the aiokafka arguments each gives, the same as Faust derives from
its credentials; SCRAM logins from settings or from Secrets Manager (moto's server over
HTTP); MSK IAM tokens signed from the AWS chain; the password in no log, page or error."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import ssl
import urllib.parse

import pytest
from aiobotocore.session import get_session
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from spotify_stream.embedded.worker import WorkerProcess
from spotify_stream.errors import UserError
from spotify_stream.security import aiokafka_auth, faust_credentials
from spotify_stream.settings import Settings
from tests.test_cli import run

SECRET = "s3cr3t-Kafka-PASSWORD"


def settings(**update) -> Settings:
    return Settings(_env_file=None, **update)


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory):
    """A self-signed CA certificate, as a private CA's bundle would be."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "spotify-stream test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "client.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (folder / "client.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return folder


def same_as_faust(s: Settings) -> dict:
    """Our arguments, checked against those Faust makes of our credentials."""
    ours = aiokafka_auth(s)
    theirs = credentials_to_aiokafka_auth(faust_credentials(s))
    assert set(ours) == set(theirs)
    for key, value in ours.items():
        if key == "ssl_context":
            assert isinstance(value, ssl.SSLContext) and isinstance(theirs[key], ssl.SSLContext)
        elif key == "sasl_oauth_token_provider":
            assert type(value) is type(theirs[key])
        else:
            assert theirs[key] == value, key
    return ours


def test_plaintext():
    s = settings()
    assert aiokafka_auth(s) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(s) is None


def test_tls_with_a_private_ca_and_a_client_certificate(ca_file):
    s = settings(
        kafka_security="tls",
        kafka_ca_file=ca_file / "ca.pem",
        kafka_cert_file=ca_file / "client.pem",
        kafka_key_file=ca_file / "client.key",
    )
    auth = same_as_faust(s)
    assert auth["security_protocol"] == "SSL"
    context = auth["ssl_context"]
    assert [c["subject"] for c in context.get_ca_certs()] == [
        ((("commonName", "spotify-stream test CA"),),)
    ]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    with pytest.raises(UserError, match="needs both"):
        aiokafka_auth(settings(kafka_security="tls", kafka_cert_file=ca_file / "client.pem"))
    with pytest.raises(UserError, match="SPOTIFY_STREAM_KAFKA_CA_FILE: no file"):
        aiokafka_auth(settings(kafka_security="tls", kafka_ca_file=ca_file / "missing.pem"))


def test_sasl_scram_from_settings():
    s = settings(kafka_security="sasl_scram", kafka_username="alice", kafka_password=SECRET)
    auth = same_as_faust(s)
    assert {k: v for k, v in auth.items() if k != "ssl_context"} == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice",
        "sasl_plain_password": SECRET,
    }
    assert SECRET not in repr(s) and SECRET not in str(s.model_dump())
    with pytest.raises(UserError, match="needs SPOTIFY_STREAM_KAFKA_USERNAME"):
        aiokafka_auth(settings(kafka_security="sasl_scram"))


def test_sasl_scram_from_secrets_manager(moto_endpoint, aws_env, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_endpoint)

    async def create() -> str:
        async with get_session().create_client("secretsmanager", endpoint_url=moto_endpoint) as sm:
            made = await sm.create_secret(
                Name="AmazonMSK_spotify",
                SecretString=json.dumps({"username": "bob", "password": SECRET}),
            )
            return made["ARN"]

    arn = asyncio.run(create())
    auth = same_as_faust(settings(kafka_security="sasl_scram", kafka_secret_arn=arn))
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == ("bob", SECRET)
    with pytest.raises(UserError, match="cannot read the Kafka secret"):
        aiokafka_auth(settings(kafka_security="sasl_scram", kafka_secret_arn=arn + "-nope"))


def test_msk_iam_tokens_from_the_aws_chain(aws_env):
    s = settings(kafka_security="msk_iam", aws_region="eu-west-1")
    auth = same_as_faust(s)
    assert (auth["security_protocol"], auth["sasl_mechanism"]) == ("SASL_SSL", "OAUTHBEARER")
    token = asyncio.run(auth["sasl_oauth_token_provider"].token())
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    parsed = urllib.parse.urlparse(url)
    query = urllib.parse.parse_qs(parsed.query)
    assert parsed.netloc == "kafka.eu-west-1.amazonaws.com"
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert query["X-Amz-Credential"][0].split("/")[2] == "eu-west-1"


def test_the_password_is_in_no_error_log_or_page(fresh_settings, tmp_path):
    # a client that cannot connect: one line, no secret
    env = {
        "SPOTIFY_STREAM_BROKER": "127.0.0.1:1",
        "SPOTIFY_STREAM_KAFKA_SECURITY": "sasl_scram",
        "SPOTIFY_STREAM_KAFKA_USERNAME": "alice",
        "SPOTIFY_STREAM_KAFKA_PASSWORD": SECRET,
        "SPOTIFY_STREAM_CONNECT_TIMEOUT": "2",
    }
    proc = run("-v", "simulate-plays", "--duration", "1", cwd=tmp_path, env=env)
    assert proc.returncode != 0 and "cannot reach Kafka" in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    # a worker given a password (unused in plaintext): not in its log, stats or metrics
    s = fresh_settings.model_copy(update={"kafka_username": "alice", "kafka_password": SECRET})
    with WorkerProcess(s, tmp_path, loglevel="debug") as worker:
        pages = json.dumps(worker.get("/pipeline/stats")) + worker.get("/metrics")
    assert SECRET not in pages
    assert SECRET not in worker.log.read_text(errors="replace")
