"""A worker in a child process, for the demo, benchmarks and tests.

The child gets exactly the given settings through its environment (and its own
web port and state directory), so several can share one broker's partitions.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from spotify_stream import topics
from spotify_stream.embedded.broker import free_port
from spotify_stream.errors import UserError
from spotify_stream.settings import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process exactly ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOTIFY_STREAM_")}
    for name, value in settings.model_dump().items():
        if isinstance(value, SecretStr):  # str() would give the mask
            value = value.get_secret_value()
        if value is not None:
            env[f"SPOTIFY_STREAM_{name.upper()}"] = str(value)
    return env


class WorkerProcess:
    def __init__(
        self,
        settings: Settings,
        workdir: Path,
        name: str = "worker",
        loglevel: str = "info",
        web_port: int | None = None,
    ) -> None:
        """``web_port``: the settings' own when given; otherwise a free one."""
        workdir = workdir.resolve()  # the child runs in it: relative paths would nest
        workdir.mkdir(parents=True, exist_ok=True)
        update: dict[str, Any] = {"web_port": web_port or free_port(), "data_dir": workdir / name}
        if settings.lake.startswith("file://"):  # the child runs in ``workdir``, not here
            update["lake"] = f"file://{Path(settings.lake.removeprefix('file://')).resolve()}"
        self.settings = settings.model_copy(update=update)
        self.workdir = workdir
        self.loglevel = loglevel
        self.log = workdir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.web_host}:{self.settings.web_port}"

    def start(self, timeout: float = 90) -> WorkerProcess:
        """Start the worker and wait until its web server answers (after table recovery)."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "spotify_stream", "worker", "-l", self.loglevel],
            env=settings_env(self.settings),
            cwd=self.workdir,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise UserError(
                    f"worker exited with {self.process.returncode}; last lines of {self.log}:\n"
                    + self.tail()
                )
            try:
                self.get("/pipeline/stats")
                return self
            except OSError:
                time.sleep(0.3)
        raise UserError(f"worker not ready after {timeout:g} s; see {self.log}")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as response:
            body = response.read()
        return body.decode() if path == "/metrics" else json.loads(body)

    def get_status(self, path: str) -> tuple[int, Any]:
        try:
            return 200, self.get(path)
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def topic_stats(self, topic: str) -> dict[str, Any]:
        try:
            return self.get("/pipeline/stats")["topics"].get(topic, {})
        except OSError:
            return {}

    def plays_through(self, sent: int, stats: dict[str, Any] | None = None) -> bool:
        """Whether ``sent`` plays were read, and through both popularity repartitions
        (from ``stats``, ``/pipeline/stats``, when the caller has them)."""
        flow = (stats or self.get("/pipeline/stats"))["topics"]
        if flow.get(topics.PLAYS.name, {}).get("records_in", 0) < sent:
            return False
        for name in (topics.PLAYS_BY_TRACK, topics.CONTRIBUTIONS):
            internal = flow.get(topics.internal(self.settings.app_id, name), {})
            if internal.get("messages_in", 0) < internal.get("messages_out", 1):
                return False
        return True

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for(predicate: Any, timeout: float = 60, interval: float = 0.3) -> Any:
    """Poll ``predicate`` until it returns something truthy (or the time is up)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
