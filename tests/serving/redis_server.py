"""A private ``redis-server`` that a test may stop and start, leaving the shared one alone.

It listens on 127.0.0.1 on a free port, persists nothing (``--save "" --appendonly no``)
unless asked for an append-only file fsynced on every write (``appendonly=True``: what a
test that restarts Redis and expects its data back needs), and keeps its port across
``stop()``/``start()``, so clients built on :attr:`url` reconnect
to the restarted server as they would to a production Redis coming back.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

REDIS_SERVER = "/usr/bin/redis-server"


def free_port() -> int:
    """A port nobody listens on now (the kernel's choice for an ephemeral bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def answers_ping(port: int, timeout: float = 0.2) -> bool:
    """Whether a Redis on ``port`` answers PING (plain RESP, no client library state)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class PrivateRedis:
    """One ``redis-server`` process on a fixed port, stopped and started on demand."""

    def __init__(
        self, binary: str = REDIS_SERVER, *, ready_timeout: float = 10.0, appendonly: bool = False
    ) -> None:
        self.binary = binary
        self.appendonly = appendonly
        self.ready_timeout = ready_timeout
        self._dir = Path(tempfile.mkdtemp(prefix="rlops-redis-"))
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def is_running(self) -> bool:
        """Whether the process is alive (a method: its answer changes under the caller)."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start on :attr:`port` and wait until it answers PING; raise with its log if not.

        The first start picks another free port if the chosen one was taken meanwhile;
        later starts keep the port, which clients already hold.
        """
        if self.is_running():
            return
        first = self._process is None
        for _attempt in range(3 if first else 1):
            if self._spawn_and_wait():
                return
            if not first:
                break
            self.port = free_port()
        raise RuntimeError(f"redis-server did not start on port {self.port}:\n{self._log_tail()}")

    def _spawn_and_wait(self) -> bool:
        log = self._dir / "redis.log"
        self._process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "always",
                "--dir", str(self._dir),
                "--logfile", str(log),
                "--daemonize", "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:  # exited: port taken, bad option, ...
                self._process.wait()
                return False
            if answers_ping(self.port):
                return True
            time.sleep(0.02)
        self._terminate()
        return False

    def stop(self) -> None:
        """Terminate the server and wait until it has exited and the port is closed."""
        self._terminate()
        deadline = time.monotonic() + self.ready_timeout
        while answers_ping(self.port) and time.monotonic() < deadline:
            time.sleep(0.02)

    def _terminate(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self._terminate()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _log_tail(self) -> str:
        log = self._dir / "redis.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"

    def __enter__(self) -> PrivateRedis:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
