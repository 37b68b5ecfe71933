"""A benchmarked server as a child process: free port, readiness poll, certain teardown.

Each server runs in its own session (process group) so that stopping it also stops any
worker processes uvicorn forks, and the group is killed even when the bench fails
half-way. Output goes to a file: a server that never becomes ready is reported with the
tail of what it printed, not with a bare timeout.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class Server:
    """A running server: where it listens and the process that owns the port."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    output: Path

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def check_running(self) -> None:
        """Raise, with the exit status and what it printed, if the server has exited."""
        code = self.process.poll()
        if code is None:
            return
        how = f"was killed by signal {-code}" if code < 0 else f"exited with {code}"
        raise RuntimeError(f"{self.name} {how} under load:\n{_tail(self.output)}")


def free_port() -> int:
    """A port nothing listens on now (the kernel's choice; another process could still take
    it before the server binds, which the readiness poll would then report)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def uvicorn_command(app: str, port: int, *, workers: int, factory: bool = False) -> list[str]:
    """The one uvicorn configuration every Python server in the bench runs under."""
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--app-dir",
        str(REPO),
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return [*command, "--factory"] if factory else command


def _ready(port: int) -> bool:
    connection = http.client.HTTPConnection(HOST, port, timeout=2.0)
    try:
        connection.request("GET", "/readyz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _tail(path: Path, lines: int = 20) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the group (a graceful stop flushes logs), then SIGKILL it if it lingers."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            print(f"  server pid {process.pid} ignored SIGTERM for {STOP_TIMEOUT_S:.0f} s; killed")
        except ProcessLookupError:
            pass
    # Workers left behind by a parent that exited still carry the group id.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@contextmanager
def serving(
    name: str,
    command: Sequence[str],
    port: int,
    output: Path,
    *,
    env: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    """Start ``command``, wait for ``GET /readyz`` to answer 200, stop it on exit."""
    child_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    with output.open("wb") as sink:
        process = subprocess.Popen(
            list(command),
            cwd=REPO,
            env=child_env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _ready(port):
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {process.returncode} before ready:\n{_tail(output)}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{name} not ready after {READY_TIMEOUT_S:.0f} s:\n{_tail(output)}"
                )
            time.sleep(0.1)
        yield Server(name, port, process, output)
    finally:
        _stop(process)
