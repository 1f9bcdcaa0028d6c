"""Where lake objects go: a local directory or S3, behind one small interface.

Both backends make an object visible whole or not at all, so a reader (or a
sink restarted after a crash) never sees half a file:

- ``FileStorage`` writes to a temporary name in the target directory, fsyncs
  it, renames it over the final name and fsyncs the directory, in a thread.
- ``S3Storage`` sends one PUT below ``s3_multipart_threshold`` and a multipart
  upload above it (aborted on failure). Retries with jittered exponential
  backoff are botocore's ``standard`` mode. Credentials come from the standard
  AWS chain and are never logged.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any, Protocol

from spotify_stream.errors import UsageError, UserError, no_credentials
from spotify_stream.settings import Settings


class StorageUnavailable(UserError):
    """The lake cannot be read or written now: unreachable, refusing, missing, full.

    The sink retries what failed so (with a backoff, its offsets held); any other
    exception while writing is a bug and stops the worker. ``reason`` names the
    kind, for the counters: unreachable, refused, not_found, no_credentials, io_error.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class Storage(Protocol):
    """A lake root; keys are ``/``-separated paths below it."""

    url: str

    async def put(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes | None: ...

    async def keys(self, prefix: str = "") -> list[str]: ...

    async def delete(self, keys: list[str]) -> None:
        """Remove ``keys`` (absent ones are no error)."""

    async def check(self) -> None:
        """Raise a ``UserError`` when the lake cannot be written (at start, not mid-run)."""

    async def close(self) -> None: ...


class FileStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = f"file://{root}"

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put, key, data)

    def _put(self, key: str, data: bytes) -> None:
        path = self.root / key
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        except OSError as exc:
            raise _io_error(self.root, exc) from None
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):  # a full disk, a lost mount: an outage
                raise _io_error(self.root, exc) from None
            raise
        _fsync_dir(path.parent)  # the rename itself survives a power cut

    async def delete(self, keys: list[str]) -> None:
        def unlink() -> None:
            folders = set()
            for key in keys:
                path = self.root / key
                path.unlink(missing_ok=True)
                folders.add(path.parent)
            for folder in folders:
                _fsync_dir(folder)

        try:
            await asyncio.to_thread(unlink)
        except OSError as exc:
            raise _io_error(self.root, exc) from None

    async def check(self) -> None:
        def probe() -> None:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".probe.", suffix=".tmp")
                os.close(fd)
                os.unlink(tmp)
            except OSError as exc:
                raise _io_error(self.root, exc) from None

        await asyncio.to_thread(probe)

    async def get(self, key: str) -> bytes | None:
        path = self.root / key
        try:
            return await asyncio.to_thread(path.read_bytes) if path.is_file() else None
        except OSError as exc:
            raise _io_error(self.root, exc, "read") from None

    async def keys(self, prefix: str = "") -> list[str]:
        def scan() -> list[str]:
            found = (
                p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()
            )
            return sorted(k for k in found if k.startswith(prefix) and _visible(k))

        try:
            return await asyncio.to_thread(scan) if self.root.is_dir() else []
        except OSError as exc:
            raise _io_error(self.root, exc, "read") from None

    async def close(self) -> None:
        pass


def _io_error(root: Path, exc: OSError, doing: str = "write to") -> StorageUnavailable:
    return StorageUnavailable(f"cannot {doing} the lake at {root}: {exc.strerror}", "io_error")


def _fsync_dir(path: Path) -> None:
    directory = os.open(path, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _visible(key: str) -> bool:
    name = key.rsplit("/", 1)[-1]
    return not name.startswith(".") and (Path(name).suffix != ".tmp")


class S3Storage:
    def __init__(self, bucket: str, prefix: str, settings: Settings) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.settings = settings
        self._stack = AsyncExitStack()
        self._client: Any = None

    async def _s3(self) -> Any:
        if self._client is None:
            from aiobotocore.config import AioConfig
            from aiobotocore.session import get_session

            config = AioConfig(
                retries={"mode": "standard", "max_attempts": self.settings.s3_max_attempts},
                connect_timeout=self.settings.connect_timeout,
            )
            self._client = await self._stack.enter_async_context(
                get_session().create_client(
                    "s3", endpoint_url=self.settings.s3_endpoint, config=config
                )
            )
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _encryption(self) -> dict[str, str]:
        sse = self.settings.s3_sse
        if sse == "none":
            return {}
        extra = {"ServerSideEncryption": sse}
        if sse == "aws:kms" and self.settings.s3_sse_kms_key_id:
            extra["SSEKMSKeyId"] = self.settings.s3_sse_kms_key_id
        return extra

    async def put(self, key: str, data: bytes) -> None:
        s3 = await self._s3()
        with _s3_errors(self.url):
            if len(data) < self.settings.s3_multipart_threshold:
                await s3.put_object(
                    Bucket=self.bucket, Key=self._key(key), Body=data, **self._encryption()
                )
            else:
                await self._put_parts(s3, self._key(key), data)

    async def _put_parts(self, s3: Any, key: str, data: bytes) -> None:
        upload = await s3.create_multipart_upload(Bucket=self.bucket, Key=key, **self._encryption())
        upload_id = upload["UploadId"]
        size = self.settings.s3_part_size
        try:
            parts = []
            for number, start in enumerate(range(0, len(data), size), start=1):
                part = await s3.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data[start : start + size],
                )
                parts.append({"PartNumber": number, "ETag": part["ETag"]})
            await s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            await asyncio.shield(
                s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            )
            raise

    async def get(self, key: str) -> bytes | None:
        s3 = await self._s3()
        with _s3_errors(self.url):
            try:
                obj = await s3.get_object(Bucket=self.bucket, Key=self._key(key))
            except Exception as exc:
                if _code(exc) in ("NoSuchKey", "404"):
                    return None
                raise
            async with obj["Body"] as body:
                return await body.read()

    async def keys(self, prefix: str = "") -> list[str]:
        s3 = await self._s3()
        start = len(self.prefix) + 1 if self.prefix else 0
        found = []
        with _s3_errors(self.url):
            paginator = s3.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                found.extend(obj["Key"][start:] for obj in page.get("Contents", ()))
        return sorted(found)

    async def delete(self, keys: list[str]) -> None:
        s3 = await self._s3()
        with _s3_errors(self.url):
            for start in range(0, len(keys), 1000):  # DeleteObjects' limit
                batch = [{"Key": self._key(k)} for k in keys[start : start + 1000]]
                response = await s3.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
                for error in response.get("Errors", ()):
                    raise StorageUnavailable(
                        f"S3 did not delete {error.get('Key')} of {self.url}: "
                        f"{error.get('Code')} {error.get('Message', '')}".rstrip(),
                        "refused",
                    )

    async def check(self) -> None:
        s3 = await self._s3()
        with _s3_errors(self.url):
            await s3.head_bucket(Bucket=self.bucket)

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


@contextmanager
def _s3_errors(url: str) -> Iterator[None]:
    """Every way S3 can fail a call, as one clear ``StorageUnavailable``: at start it is
    one line for the user to fix; while running, the sink retries it."""
    import aiohttp
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
    )

    try:
        yield
    except NoCredentialsError:
        raise StorageUnavailable(str(no_credentials(url)), "no_credentials") from None
    except EndpointConnectionError as exc:
        raise StorageUnavailable(f"cannot reach S3 for {url}: {exc}", "unreachable") from None
    except ClientError as exc:
        code = _code(exc)
        if code in ("NoSuchBucket", "404"):  # HeadBucket answers with the bare status
            raise StorageUnavailable(f"S3 bucket not found: {url}", "not_found") from None
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise StorageUnavailable(f"S3 refused access to {url}: {code}", "refused") from None
        raise StorageUnavailable(f"S3 failed a call for {url}: {code or exc}", "refused") from None
    except (BotoCoreError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise StorageUnavailable(f"S3 failed a call for {url}: {exc}", "unreachable") from None


def require_aws_credentials(url: str) -> None:
    """Fail with the one wording when the standard chain has no credentials, before a
    client that would otherwise try anonymous access or the network first."""
    import botocore.session

    if botocore.session.get_session().get_credentials() is None:
        raise no_credentials(url)


async def check_lake(settings: Settings) -> None:
    """Fail with one clear line when the lake of ``settings`` cannot be written."""
    storage = storage_for(settings)
    try:
        await storage.check()
    finally:
        await storage.close()


def require_hive_layout(settings: Settings, command: str) -> None:
    """For the commands that work on the Hive layout's objects themselves."""
    if settings.lake_format == "iceberg":
        raise UsageError(
            f"{command} works on the Hive layout's objects; on Iceberg tables "
            "(SPOTIFY_STREAM_LAKE_FORMAT=iceberg) it is not built yet"
        )


def require_lake(settings: Settings) -> None:
    """For the commands that read the lake: a file:// lake that is not a directory is
    the user's mistake (a typo in SPOTIFY_STREAM_LAKE), not an empty lake; an s3://
    lake needs credentials before pyarrow's client tries the network."""
    lake = settings.lake
    if lake.startswith("s3://"):
        require_aws_credentials(lake)
    elif lake.startswith("file://"):
        root = Path(lake.removeprefix("file://")).expanduser()
        if not root.is_dir():
            raise UsageError(
                f"no lake at {lake}: it is not a directory (a worker or the demo writes "
                "one; SPOTIFY_STREAM_LAKE says where)"
            )


def storage_for(settings: Settings) -> Storage:
    """The backend of ``settings.lake``: ``file://DIR`` or ``s3://bucket/prefix``."""
    lake = settings.lake
    if lake.startswith("s3://"):
        bucket, _, prefix = lake.removeprefix("s3://").partition("/")
        if not bucket:
            raise UsageError(f"not an S3 location: {lake} (expected s3://bucket/prefix)")
        return S3Storage(bucket, prefix, settings)
    if lake.startswith("file://"):
        return FileStorage(Path(lake.removeprefix("file://")).expanduser())
    raise UsageError(f"SPOTIFY_STREAM_LAKE must be file://DIR or s3://bucket/prefix, not {lake}")
