"""Closed-loop saturation with wrk: the most a server answers per second, and at what latency.

wrk's Lua script builds the same request bodies as :func:`benchmarks.loadgen.request_body`
(``u0..u{UNITS-1}``, cycled) once per thread, so the hot loop only hands out a string.
Its ``done`` hook prints one line, ``RLOPS_WRK {json}``, with the counts and latency
percentiles (us). It also counts requests sent: wrk stops at its deadline with requests
in flight that the server may still complete, so "sent" bounds what a log may hold.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks.loadgen import CONTEXT, UNITS

MARK = "RLOPS_WRK "

_SCRIPT = """
local units = {units}
local context = '{context}'
local requests = {{}}
local i = 0
sent = 0

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function init(args)
  for u = 0, units - 1 do
    local body = '{{"unit_id":"u' .. u .. '","context":' .. context .. '}}'
    requests[u + 1] = wrk.format(nil, nil, nil, body)
  end
end

function request()
  i = i % units + 1
  sent = sent + 1
  return requests[i]
end

local threads = {{}}
function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, _)
  local total_sent = 0
  for _, thread in ipairs(threads) do total_sent = total_sent + thread:get("sent") end
  local e = summary.errors
  io.write(string.format(
    '{mark}{{"responses":%d,"duration_us":%d,"non_2xx":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"sent":%d}}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), total_sent))
end
"""


@dataclass(frozen=True, slots=True)
class WrkReport:
    """One wrk run. ``non_2xx`` is wrk's status-error count (status >= 400)."""

    responses: int
    duration_s: float
    non_2xx: int
    socket_errors: int
    p50_us: float
    p99_us: float
    sent: int

    @property
    def ok(self) -> int:
        return self.responses - self.non_2xx

    @property
    def rate(self) -> float:
        """2xx responses per second."""
        return self.ok / self.duration_s

    @property
    def clean(self) -> bool:
        return self.non_2xx == 0 and self.socket_errors == 0 and self.ok > 0


def wrk_available() -> str | None:
    """Path of the wrk binary, or None."""
    return shutil.which("wrk")


def script(units: int = UNITS, context: str = CONTEXT) -> str:
    return _SCRIPT.format(units=units, context=context, mark=MARK)


def parse(output: str) -> WrkReport:
    for line in output.splitlines():
        if line.startswith(MARK):
            fields = json.loads(line[len(MARK) :])
            return WrkReport(
                responses=fields["responses"],
                duration_s=fields["duration_us"] / 1e6,
                non_2xx=fields["non_2xx"],
                socket_errors=sum(fields[k] for k in ("connect", "read", "write", "timeout")),
                p50_us=float(fields["p50_us"]),
                p99_us=float(fields["p99_us"]),
                sent=fields["sent"],
            )
    raise RuntimeError(f"no {MARK.strip()} line in wrk's output:\n{output[-2000:]}")


def run_wrk(url: str, *, duration_s: int, connections: int, threads: int = 1) -> WrkReport:
    """``wrk -t threads -c connections -d duration`` POSTing decision requests to ``url``
    (wrk takes whole seconds)."""
    binary = wrk_available()
    if binary is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="rlops-wrk-") as tmp:
        lua = Path(tmp) / "decisions.lua"
        lua.write_text(script())
        # wrk's default 2 s timeout counts a slow answer as a socket error; a server that
        # answers slowly under saturation is measured by its latency, not refused.
        command = [
            binary,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration_s}s",
            "--timeout",
            "10s",
        ]
        command += ["-s", str(lua), url]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=duration_s + 30.0, check=False
        )
    if done.returncode != 0:
        said = (done.stdout + done.stderr)[-2000:]  # wrk prints its usage on stdout
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{said}")
    return parse(done.stdout)
