"""A real ``rlops serve`` process on a loopback port, for the tests that need one."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from rlops.serving.server import ServerConfig

RLOPS = str(Path(sys.executable).parent / "rlops")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LiveServer:
    config: ServerConfig
    directory: Path
    workers: int = 1
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> LiveServer:
        self.port = self.port or free_port()
        settings = self.directory / "serve.json"
        settings.write_text(json.dumps(self.config.to_json()))
        with open(self.directory / f"serve-{self.port}.err", "ab") as stderr:
            self.process = subprocess.Popen(
                [
                    RLOPS,
                    "serve",
                    "--config",
                    str(settings),
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                ],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rlops serve exited: {self.stderr()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"rlops serve was not ready in {timeout} s: {self.stderr()}")

    def stderr(self) -> str:
        path = self.directory / f"serve-{self.port}.err"
        return path.read_text()[-2000:] if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, nothing is flushed."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
