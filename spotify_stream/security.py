"""Kafka security from settings: the same connection options for every client.

``SPOTIFY_STREAM_KAFKA_SECURITY`` picks one of:

- ``plaintext``: no TLS (the embedded broker, a local Kafka);
- ``tls``: TLS, with a client certificate when ``kafka_cert_file`` is set
  (MSK's mutual TLS, port 9094);
- ``sasl_scram``: SCRAM over TLS (MSK port 9096); the user and password from
  settings, or from the Secrets Manager secret ``kafka_secret_arn``
  (``{"username": ..., "password": ...}``, as MSK's ``AmazonMSK_`` secrets);
- ``msk_iam``: SASL OAUTHBEARER over TLS with tokens signed by
  ``aws-msk-iam-sasl-signer-python`` from the AWS credential chain (MSK port 9098).

``aiokafka_auth`` gives aiokafka's keyword arguments (producer, consumers,
admin client); ``faust_credentials`` gives Faust's ``broker_credentials``,
which Faust turns into the same arguments. Secrets stay in ``SecretStr`` and
in these objects; nothing here logs them.
"""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
from typing import Any

from aiokafka.abc import AbstractTokenProvider

from spotify_stream.errors import UsageError, UserError
from spotify_stream.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of every mode but plaintext."""
    if settings.kafka_security == "plaintext":
        return None
    from aiokafka.helpers import create_ssl_context

    for name in ("kafka_ca_file", "kafka_cert_file", "kafka_key_file"):
        path = getattr(settings, name)
        if path is not None and not path.is_file():
            raise UsageError(f"SPOTIFY_STREAM_{name.upper()}: no file {path}")
    if (settings.kafka_cert_file is None) != (settings.kafka_key_file is None):
        raise UsageError("mutual TLS needs both SPOTIFY_STREAM_KAFKA_CERT_FILE and _KEY_FILE")
    return create_ssl_context(
        cafile=str(settings.kafka_ca_file) if settings.kafka_ca_file else None,
        certfile=str(settings.kafka_cert_file) if settings.kafka_cert_file else None,
        keyfile=str(settings.kafka_key_file) if settings.kafka_key_file else None,
    )


def scram_login(settings: Settings) -> tuple[str, str]:
    """The SCRAM user and password: the settings', else the secret's."""
    if settings.kafka_username and settings.kafka_password:
        return settings.kafka_username, settings.kafka_password.get_secret_value()
    if settings.kafka_secret_arn:
        return _secret(settings.kafka_secret_arn, settings.aws_region)
    raise UsageError(
        "kafka_security=sasl_scram needs SPOTIFY_STREAM_KAFKA_USERNAME and _PASSWORD, "
        "or SPOTIFY_STREAM_KAFKA_SECRET_ARN"
    )


@functools.cache
def _secret(arn: str, region: str | None) -> tuple[str, str]:
    import botocore.session
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = botocore.session.get_session().create_client("secretsmanager", region_name=region)
        value = json.loads(client.get_secret_value(SecretId=arn)["SecretString"])
        return value["username"], value["password"]
    except (BotoCoreError, ClientError) as exc:
        raise UserError(f"cannot read the Kafka secret {arn}: {exc}") from None
    except (KeyError, TypeError, ValueError):
        raise UserError(
            f'the Kafka secret {arn} is not JSON with "username" and "password"'
        ) from None


class MSKTokenProvider(AbstractTokenProvider):
    """aiokafka's OAUTHBEARER token provider for MSK IAM (a token per connection, signed
    in a thread from the AWS credential chain)."""

    def __init__(self, region: str) -> None:
        self.region = region

    async def token(self) -> str:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

        token, _expiry_ms = await asyncio.to_thread(
            MSKAuthTokenProvider.generate_auth_token, self.region
        )
        return token

    def extensions(self) -> dict[str, str]:
        return {}


def _region(settings: Settings) -> str:
    import botocore.session

    region = settings.aws_region or botocore.session.get_session().get_config_variable("region")
    if not region:
        raise UsageError("kafka_security=msk_iam needs SPOTIFY_STREAM_AWS_REGION or AWS_REGION")
    return region


def aiokafka_auth(settings: Settings) -> dict[str, Any]:
    """The security keyword arguments of every aiokafka client."""
    mode = settings.kafka_security
    if mode == "plaintext":
        return {"security_protocol": "PLAINTEXT"}
    context = ssl_context(settings)
    if mode == "tls":
        return {"security_protocol": "SSL", "ssl_context": context}
    if mode == "sasl_scram":
        username, password = scram_login(settings)
        return {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": username,
            "sasl_plain_password": password,
            "ssl_context": context,
        }
    return {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "OAUTHBEARER",
        "sasl_oauth_token_provider": MSKTokenProvider(_region(settings)),
        "ssl_context": context,
    }


def faust_credentials(settings: Settings) -> Any:
    """Faust's ``broker_credentials`` for the same connection (None: plaintext)."""
    import faust
    from faust.types.auth import SASLMechanism

    auth = aiokafka_auth(settings)
    mode = settings.kafka_security
    if mode == "plaintext":
        return None
    if mode == "tls":
        return faust.SSLCredentials(auth["ssl_context"])
    if mode == "sasl_scram":
        return faust.SASLCredentials(
            username=auth["sasl_plain_username"],
            password=auth["sasl_plain_password"],
            ssl_context=auth["ssl_context"],
            mechanism=SASLMechanism(auth["sasl_mechanism"]),
        )
    return faust.OAuthCredentials(
        oauth_cb=auth["sasl_oauth_token_provider"], ssl_context=auth["ssl_context"]
    )
