"""``POST /v1/decisions`` over loopback: throughput, latency, and whether every answer was logged.

Three servers run one at a time, each as its own process on a free loopback port:

- ``noop``: bare Starlette reading the same JSON body and answering a fixed object
  (:data:`benchmarks.server_apps.noop_app`), the ceiling of this machine's Python HTTP
  stack under our server settings;
- ``seed``: the seed design, FastAPI + pydantic + Stable-Baselines3 ``predict`` per
  request, no logging (:func:`benchmarks.server_apps.seed_app`);
- ``ours``: ``rlops serve`` with an MLP policy from a registry, Redis features for
  10,000 units and the SQLite decision log.

noop and seed run under uvicorn with ``--loop uvloop --http httptools``, no access log and
``RLOPS_BENCH_WORKERS`` workers (default 1); ours gets the same worker count through its
own command line. Each server gets: wrk warm-up, then wrk saturation (closed loop,
``CONNECTIONS`` connections, one wrk thread: wrk and the server share two cores), then
the open-loop :mod:`benchmarks.loadgen` in its own process at half that server's own
saturating rate, latency measured from the intended send times.

Targets (the issue's, on 2 cores): ours at least 0.6 of noop's rate and 3x seed's, p99
under 10 ms at half load. Any non-2xx answer or socket error fails the row it touches.
Durability is part of the figure: after ours stops, its log must hold every decision it
acknowledged (and no more than were sent: wrk abandons in-flight requests at its deadline,
which the server may still complete and log).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import BenchResult
from benchmarks.loadgen import LoadReport, request_body, run_loadgen
from benchmarks.server_apps import SEED_MODEL_ENV
from benchmarks.server_fixtures import delete_features, promote_mlp, seed_model, write_features
from benchmarks.server_proc import HOST, Server, free_port, serving, uvicorn_command
from benchmarks.wrk_load import WrkReport, run_wrk, wrk_available

WORKERS = int(os.environ.get("RLOPS_BENCH_WORKERS", "1"))
CONNECTIONS = int(os.environ.get("RLOPS_BENCH_CONNECTIONS", "128"))
WRK_THREADS = 1
WARMUP_S = 2  # wrk takes whole seconds
SATURATION_S = 10
HALF_LOAD_S = 15.0  # long enough that one stall of the shared machine is not the p99
HALF_LOAD_WARMUP_S = 1.0
REDIS_URL = "redis://127.0.0.1:6379/0"
DECISION_FIELDS = frozenset(
    ("event_id", "action_id", "propensity", "policy_version", "arm", "explored", "fallback")
)


@dataclass(frozen=True, slots=True)
class Figures:
    """One server's runs: wrk warm-up and saturation, then the open loop at half load."""

    name: str
    warmup: WrkReport
    saturation: WrkReport
    half: LoadReport

    @property
    def clean(self) -> bool:
        return self.warmup.clean and self.saturation.clean and self.half.clean

    @property
    def acknowledged(self) -> int:
        return self.warmup.ok + self.saturation.ok + self.half.all_2xx

    @property
    def sent(self) -> int:
        return self.warmup.sent + self.saturation.sent + self.half.all_sent


def _load(server: Server, path: str) -> Figures:
    """wrk warm-up, wrk saturation, open loop at half. A server that died fails the run with
    its exit status, not as the refused connection a load tool then reports."""
    url = server.base_url + path
    try:
        warmup = run_wrk(url, duration_s=WARMUP_S, connections=CONNECTIONS, threads=WRK_THREADS)
        saturation = run_wrk(
            url, duration_s=SATURATION_S, connections=CONNECTIONS, threads=WRK_THREADS
        )
        half = run_loadgen(
            url,
            rate=max(saturation.rate / 2.0, 1.0),
            duration=HALF_LOAD_S,
            warmup=HALF_LOAD_WARMUP_S,
            connections=CONNECTIONS,
        )
    except RuntimeError:
        server.check_running()
        raise
    server.check_running()
    return Figures(server.name, warmup, saturation, half)


def _measure(
    name: str,
    command: Callable[[int], list[str]],
    path: str,
    tmp: Path,
    env: Mapping[str, str] | None = None,
) -> Figures:
    port = free_port()
    print(f"  {name}: starting", flush=True)
    with serving(name, command(port), port, tmp / f"{name}.out", env=env) as server:
        figures = _load(server, path)
    print(f"  {name}: {figures.saturation.rate:,.0f} req/s at saturation", flush=True)
    return figures


def _rlops_binary() -> str:
    beside = Path(sys.executable).with_name("rlops")
    return str(beside) if beside.exists() else (shutil.which("rlops") or "rlops")


def _ours_missing() -> str | None:
    """Why ``ours`` cannot run here, or None."""
    try:
        subprocess.run(
            [_rlops_binary(), "serve", "--help"], capture_output=True, timeout=60, check=True
        )
    except (OSError, subprocess.SubprocessError) as error:
        return f"`rlops serve --help` failed ({type(error).__name__}): not landed yet?"
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as error:
        return f"Redis not reachable at {REDIS_URL}: {error}"
    return None


def _probe(port: int) -> dict[str, object]:
    """One decision through the contract, checked, before any load."""
    connection = http.client.HTTPConnection(HOST, port, timeout=10.0)
    try:
        connection.request(
            "POST",
            "/v1/decisions",
            body=request_body(0),
            headers={"Content-Type": "application/json"},
        )
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"ours answered {response.status} to a decision: {body[:300]!r}")
    decision: dict[str, object] = json.loads(body)
    missing = DECISION_FIELDS - decision.keys()
    if missing:
        raise RuntimeError(f"ours' decision lacks {sorted(missing)}: {decision}")
    return decision


@dataclass(frozen=True, slots=True)
class Durability:
    logged: int
    acknowledged: int
    sent: int

    @property
    def ok(self) -> bool:
        return self.acknowledged <= self.logged <= self.sent


def _ours_command(tmp: Path, port: int, log_url: str, *, metrics: bool = True) -> list[str]:
    registry = tmp / "registry"
    if not registry.exists():
        promote_mlp(registry)
    # Decisions open without a token, as in the embedded default and as noop and seed take
    # them: the figure is the decision path, not authentication.
    tokens = tmp / "tokens.json"
    tokens.write_text(json.dumps({"open_scopes": ["decide", "outcomes"]}))
    settings = tmp / f"serve-{'metrics' if metrics else 'bare'}.json"
    settings.write_text(json.dumps({"metrics": metrics}))
    command = [_rlops_binary(), "serve", "--app", "pricing", "--host", HOST, "--port", str(port)]
    command += ["--workers", str(WORKERS), "--registry", str(registry), "--tokens", str(tokens)]
    command += ["--log", log_url, "--features", REDIS_URL, "--config", str(settings)]
    return command


def _saturation(tmp: Path, name: str, *, metrics: bool) -> float:
    """Decisions/s of ``rlops serve`` at saturation, with or without its metrics."""
    port = free_port()
    log_url = f"sqlite:///{tmp / (name + '.db')}"
    with serving(
        name, _ours_command(tmp, port, log_url, metrics=metrics), port, tmp / f"{name}.out"
    ) as server:
        url = server.base_url + "/v1/decisions"
        run_wrk(url, duration_s=WARMUP_S, connections=CONNECTIONS, threads=WRK_THREADS)
        report = run_wrk(url, duration_s=SATURATION_S, connections=CONNECTIONS, threads=WRK_THREADS)
    if not report.clean:
        raise RuntimeError(
            f"{name}: {report.non_2xx} non-2xx, {report.socket_errors} socket errors"
        )
    return report.rate


def _metrics_overhead(tmp: Path) -> BenchResult:
    """The share of decisions/s kept with metrics and monitoring on (same run, same load)."""
    write_features(REDIS_URL)
    try:
        bare = _saturation(tmp, "ours-without-metrics", metrics=False)
        measured = _saturation(tmp, "ours-with-metrics", metrics=True)
    finally:
        delete_features(REDIS_URL)
    print(f"  metrics: {measured:,.0f} decisions/s with, {bare:,.0f} without")
    ratio = measured / bare if bare else 0.0
    return BenchResult(
        name="server.metrics_overhead",
        value=measured,
        unit="/s",
        baseline="rlops serve with metrics and monitoring off (same load, same run)",
        baseline_value=bare,
        ratio=ratio,
        target=">= 0.9",
        passed=ratio >= 0.9,
    )


def _ours(tmp: Path) -> tuple[Figures, Durability]:
    from rlops.store import open_log

    log_url = f"sqlite:///{tmp / 'log.db'}"
    port = free_port()
    command = _ours_command(tmp, port, log_url)
    write_features(REDIS_URL)
    try:
        print("  ours: starting", flush=True)
        with serving("ours", command, port, tmp / "ours.out") as server:
            _probe(port)
            figures = _load(server, "/v1/decisions")
        print(f"  ours: {figures.saturation.rate:,.0f} decisions/s at saturation", flush=True)
    finally:
        delete_features(REDIS_URL)
    log = open_log(log_url)
    try:
        logged = log.count_decisions()
    finally:
        log.close()
    durability = Durability(logged, figures.acknowledged + 1, figures.sent + 1)  # + the probe
    print(
        f"  ours: log holds {logged:,} decisions; acknowledged (2xx) {durability.acknowledged:,};"
        f" sent {durability.sent:,} -> {'ok' if durability.ok else 'LOST OR EXTRA DECISIONS'}"
    )
    return figures, durability


# -- report ---------------------------------------------------------------------------------


def _notes(figures: Figures) -> str:
    notes = []
    for label, report in (("warm-up", figures.warmup), ("saturation", figures.saturation)):
        if not report.clean:
            notes.append(f"{label}: {report.non_2xx} non-2xx, {report.socket_errors} socket errors")
    half = figures.half
    if not half.clean:
        notes.append(
            f"half load: {half.non_2xx} non-2xx, {half.errors} errors, {half.unfinished} unfinished"
        )
    if not half.held_rate:
        notes.append(f"half load not held: completed {half.achieved_rate:,.0f}/s")
    if not half.on_time:
        notes.append(
            f"load generator late: lag p99 {half.lag_p99_us / 1e3:.1f} ms (in the latencies)"
        )
    return "; ".join(notes) or "ok"


def _table(all_figures: list[Figures]) -> None:
    print(
        f"\n  {'server':<6} {'sat req/s':>10} {'sat p50':>8} {'sat p99':>8}  "
        f"{'half req/s asked/got':>21} {'half p50':>9} {'half p99':>9}  notes (ms)"
    )
    for f in all_figures:
        s, h = f.saturation, f.half
        print(
            f"  {f.name:<6} {s.rate:>10,.0f} {s.p50_us / 1e3:>8.2f} {s.p99_us / 1e3:>8.2f}  "
            f"{h.requested_rate:>10,.0f}/{h.achieved_rate:<10,.0f} {h.p50_us / 1e3:>9.2f} "
            f"{h.p99_us / 1e3:>9.2f}  {_notes(f)}"
        )
    print(
        f"  workers {WORKERS}; wrk -t{WRK_THREADS} -c{CONNECTIONS} -d{SATURATION_S}s after "
        f"{WARMUP_S} s warm-up; half load: open loop, {HALF_LOAD_S:g} s after "
        f"{HALF_LOAD_WARMUP_S:g} s, latency from intended send time\n"
    )


def _ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline > 0 else 0.0


def _rows(noop: Figures, seed: Figures, ours: Figures, durability: Durability) -> list[BenchResult]:
    rate, noop_rate, seed_rate = ours.saturation.rate, noop.saturation.rate, seed.saturation.rate
    p99, noop_p99 = ours.half.p99_us / 1e3, noop.half.p99_us / 1e3
    p50, noop_p50 = ours.half.p50_us / 1e3, noop.half.p50_us / 1e3
    return [
        BenchResult(
            name="server.decisions_per_s_vs_noop",
            value=rate,
            unit="/s",
            baseline="no-op JSON endpoint on bare Starlette, same server settings, req/s",
            baseline_value=noop_rate,
            ratio=_ratio(rate, noop_rate),
            target=">= 0.6",
            passed=_ratio(rate, noop_rate) >= 0.6 and ours.saturation.clean and noop.clean,
        ),
        BenchResult(
            name="server.decisions_per_s_vs_seed",
            value=rate,
            unit="/s",
            baseline="seed design (FastAPI + pydantic + SB3 predict, no logging), req/s",
            baseline_value=seed_rate,
            ratio=_ratio(rate, seed_rate),
            target=">= 3",
            passed=_ratio(rate, seed_rate) >= 3.0 and ours.saturation.clean and seed.clean,
        ),
        BenchResult(
            name="server.p99_ms_at_half_load",
            value=p99,
            unit="ms",
            baseline="no-op p99 at half its own saturation (informational); ratio = base/value",
            baseline_value=noop_p99,
            ratio=_ratio(noop_p99, p99),
            target="p99 < 10 ms",
            passed=p99 < 10.0 and ours.half.clean,
        ),
        BenchResult(
            name="server.p50_ms_at_half_load",
            value=p50,
            unit="ms",
            baseline="no-op p50 at half its own saturation; ratio = base/value",
            baseline_value=noop_p50,
            ratio=_ratio(noop_p50, p50),
            target="informational",
            passed=True,
        ),
        BenchResult(
            name="server.p50_ms_at_saturation",
            value=ours.saturation.p50_us / 1e3,
            unit="ms",
            baseline=f"no-op p50 under wrk -c{CONNECTIONS}; ratio = base/value",
            baseline_value=noop.saturation.p50_us / 1e3,
            ratio=_ratio(noop.saturation.p50_us, ours.saturation.p50_us),
            target="informational",
            passed=True,
        ),
        BenchResult(
            name="server.logged_vs_acknowledged",
            value=float(durability.logged),
            unit="",
            baseline="2xx decisions acknowledged to the load generators",
            baseline_value=float(durability.acknowledged),
            ratio=_ratio(durability.logged, durability.acknowledged),
            target=f"acknowledged <= logged <= sent ({durability.sent})",
            passed=durability.ok,
        ),
    ]


def _seed_vs_noop(noop: Figures, seed: Figures) -> BenchResult:
    return BenchResult(
        name="server.seed_vs_noop",
        value=seed.saturation.rate,
        unit="/s",
        baseline="no-op JSON endpoint on bare Starlette, same server settings, req/s",
        baseline_value=noop.saturation.rate,
        ratio=_ratio(seed.saturation.rate, noop.saturation.rate),
        target="informational (the seed design's share of the ceiling; both runs clean)",
        passed=noop.clean and seed.clean,
    )


def _ours_failed(reason: str) -> BenchResult:
    return BenchResult(
        name="server.decisions_per_s_vs_noop",
        value=0.0,
        unit="/s",
        baseline=f"not measured: rlops serve failed ({reason})",
        baseline_value=0.0,
        ratio=0.0,
        target=">= 0.6",
        passed=False,
    )


def run() -> list[BenchResult]:
    if wrk_available() is None:
        print("wrk is not installed (Debian: apt-get install wrk) - skipped")
        return []
    with tempfile.TemporaryDirectory(prefix="rlops-bench-server-") as scratch:
        tmp = Path(scratch)
        noop = _measure(
            "noop",
            lambda port: uvicorn_command("benchmarks.server_apps:noop_app", port, workers=WORKERS),
            "/noop",
            tmp,
        )
        model = seed_model(tmp)
        seed = _measure(
            "seed",
            lambda port: uvicorn_command(
                "benchmarks.server_apps:seed_app", port, workers=WORKERS, factory=True
            ),
            "/v1/decisions",
            tmp,
            env={SEED_MODEL_ENV: str(model)},
        )
        results = [_seed_vs_noop(noop, seed)]
        missing = _ours_missing()
        if missing is not None:
            print(f"  ours: skipped - {missing}")
            _table([noop, seed])
            return results
        try:
            ours, durability = _ours(tmp)
        except RuntimeError as error:  # a server that never got ready, a bad decision, ...
            print(f"  ours: FAILED - {error}")
            _table([noop, seed])
            return [*results, _ours_failed(str(error).splitlines()[0])]
        _table([noop, seed, ours])
        return [*results, *_rows(noop, seed, ours, durability), _metrics_overhead(tmp)]
