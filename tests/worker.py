"""A real worker process (``spotify-stream worker``) for end-to-end tests."""

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

from spotify_stream.embedded import free_port
from spotify_stream.settings import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process exactly ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOTIFY_STREAM_")}
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"SPOTIFY_STREAM_{name.upper()}"] = str(value)
    return env


class Worker:
    def __init__(self, settings: Settings, workdir: Path, name: str = "worker") -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.settings = settings.model_copy(
            update={"web_port": free_port(), "data_dir": workdir / name}
        )
        self.workdir = workdir
        self.log = workdir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.web_port}"

    def start(self, timeout: float = 90) -> Worker:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "spotify_stream", "worker", "-l", "info"],
            env=settings_env(self.settings),
            cwd=self.workdir,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}: {self.tail()}")
            try:
                self.get("/pipeline/stats")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.3)
        raise TimeoutError(f"worker not ready after {timeout} s: {self.tail()}")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as response:
            body = response.read()
        return json.loads(body) if path != "/metrics" else body.decode()

    def get_status(self, path: str) -> tuple[int, Any]:
        try:
            return 200, self.get(path)
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for(predicate: Any, timeout: float = 60, interval: float = 0.5) -> Any:
    """Poll ``predicate`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
