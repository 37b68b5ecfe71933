"""Run every ``benchmarks/bench_*.py`` (or the one named) and write ``results.json``.

Each module exposes ``run() -> list[BenchResult]``. Usage: ``python benchmarks/run.py
[name]`` where ``name`` is the module's suffix (``decision_log`` for
``bench_decision_log.py``).
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.common import BenchResult  # noqa: E402


def _modules(only: str | None) -> list[str]:
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if only:
        wanted = only if only.startswith("bench_") else f"bench_{only}"
        if wanted not in names:
            raise SystemExit(f"no benchmark {only!r}; have: {[n[6:] for n in names]}")
        names = [wanted]
    return names


def main(argv: list[str]) -> int:
    results: list[BenchResult] = []
    for name in _modules(argv[0] if argv else None):
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        results.extend(module.run())
    width = max((len(r.name) for r in results), default=10)
    print(f"\n{'benchmark':<{width}}  {'value':>14}  {'baseline':>14}  {'ratio':>7}  target")
    for r in results:
        mark = "ok " if r.passed else "MISS"
        print(
            f"{r.name:<{width}}  {r.value:>10.4g} {r.unit:<3}  {r.baseline_value:>14.4g}  "
            f"{r.ratio:>7.2f}  {mark} {r.target}"
        )
    out = HERE / "results.json"
    out.write_text(json.dumps([r.to_json() for r in results], indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
