"""One clear line for what the user must fix when an AWS call fails (Glue, Athena)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from spotify_stream.errors import UserError, no_credentials


@contextmanager
def aws_errors(service: str) -> Iterator[None]:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    try:
        yield
    except EndpointConnectionError as exc:
        raise UserError(f"cannot reach {service}: {exc}") from None
    except NoCredentialsError:
        raise no_credentials(service) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise UserError(f"{service} refused: {error.get('Code')}: {error.get('Message')}") from None
