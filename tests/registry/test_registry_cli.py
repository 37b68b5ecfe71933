"""``rlops registry ...`` and ``rlops gate --version`` over a real registry and decision log."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rlops.apps.defaults import pricing_join_config
from rlops.core.records import Decision, Outcome
from rlops.registry.records import PRODUCTION
from rlops.registry.registry import Registry
from rlops.store import open_log
from tests.registry.conftest import CATALOG, NAME, logged_examples, save_fixed

runner = CliRunner()


def rlops(*args: str) -> tuple[int, str]:
    from rlops.cli import app

    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def _registered(tmp_path: Path) -> tuple[list[str], str, str]:
    root = ["--registry", str(tmp_path / "root")]
    versions = []
    for action in (0, 1):
        code, out = rlops(
            "registry",
            "register",
            str(save_fixed(tmp_path / f"a{action}", action)),
            *root,
            "--json",
        )
        assert code == 0, out
        versions.append(json.loads(out)["version"])
    return root, versions[0], versions[1]


def test_list_show_diff(tmp_path: Path) -> None:
    root, v1, v2 = _registered(tmp_path)
    code, out = rlops("registry", "list", *root, "--json")
    assert code == 0 and [v["version"] for v in json.loads(out)] == [v1, v2]
    assert rlops("registry", "promote", NAME, v1, "--alias", "candidate", *root)[0] == 0
    code, out = rlops("registry", "list", NAME, *root)
    assert code == 0 and v1 in out and "candidate" in out and "none" in out
    code, out = rlops("registry", "show", NAME, "candidate", *root, "--json")
    shown = json.loads(out)
    assert shown["version"]["version"] == v1 and shown["aliases"] == ["candidate"]
    assert shown["manifest"]["family"] == "mlp" and shown["gate"] is None
    code, out = rlops("registry", "show", NAME, v2, *root)
    assert code == 0 and "manifest sha256" in out and v2 in out
    code, out = rlops("registry", "diff", NAME, "candidate", v2, *root, "--json")
    fields = {c["field"] for c in json.loads(out)}
    assert {"version", "arrays.b1.sha256"} <= fields and "family" not in fields
    code, out = rlops("registry", "diff", NAME, v1, v2, *root)
    assert code == 0 and "arrays.b1.sha256" in out
    assert rlops("registry", "show", NAME, "nope", *root)[0] == 2


def test_promote_rollback_history(tmp_path: Path) -> None:
    root, v1, v2 = _registered(tmp_path)
    code, out = rlops("registry", "promote", NAME, v1, *root)
    assert code == 2 and "no gate record" in out
    code, out = rlops("registry", "promote", NAME, v1, "--force", *root)
    assert code == 2 and "reason" in out
    code, out = rlops("registry", "history", NAME, *root, "--json")
    assert json.loads(out) == []
    code, out = rlops(
        "registry", "promote", NAME, v1, "--force", "--reason", "first", "--by", "ana", *root
    )
    assert code == 0 and "revision 1" in out
    code, out = rlops(
        "registry",
        "promote",
        NAME,
        v2,
        "--force",
        "--reason",
        "hotfix",
        "--expect-revision",
        "7",
        *root,
    )
    assert code == 2 and "conflict" in out
    rlops(
        "registry",
        "promote",
        NAME,
        v2,
        "--force",
        "--reason",
        "next",
        "--expect-revision",
        "1",
        *root,
    )
    code, out = rlops("registry", "rollback", NAME, "--reason", "bad numbers", *root, "--json")
    assert code == 0 and json.loads(out)["version"] == v1
    code, out = rlops("registry", "history", NAME, "--alias", PRODUCTION, *root)
    assert code == 0 and "FORCED" in out and "rollback" in out and "bad numbers" in out
    code, out = rlops("registry", "history", NAME, *root, "--json")
    events = json.loads(out)
    assert [(e["kind"], e["actor"] == "ana") for e in events] == [
        ("promote", True),
        ("promote", False),
        ("rollback", False),
    ]
    code, out = rlops("registry", "list", "--index", "mysql://x", *root)
    assert code == 2 and "unsupported" in out


def _seed_log(url: str) -> None:
    """Uniform logging; a sale with margin 0.5 whenever action 1 was shown."""
    examples = logged_examples(300, best=1, seed=3)
    with open_log(url) as log:
        log.append_decisions(
            [
                Decision(
                    event_id=e.event_id,
                    ts=e.ts,
                    app="pricing",
                    unit_id=f"u{i}",
                    arm="production",
                    policy_version="logging",
                    features=e.features,
                    action_ids=CATALOG.ids,
                    action_id=e.action_id,
                    propensity=e.propensity,
                )
                for i, e in enumerate(examples)
            ]
        )
        log.append_outcomes(
            [
                Outcome(f"o{i}", e.event_id, e.ts + 60.0, {"converted": 1.0, "margin_rate": 0.5})
                for i, e in enumerate(examples)
                if e.reward > 0
            ]
        )
        log.join_step(pricing_join_config(), now=1e9)


def test_gate_a_registered_version_then_promote_it(tmp_path: Path) -> None:
    root, v1, v2 = _registered(tmp_path)
    url = f"sqlite:///{tmp_path / 'log.db'}"
    gate = ["gate", "--app", "pricing", "--version", v2, *root, "--log", url, "--since", "1e10"]
    code, out = rlops(*gate, "--kl-bound", "10")
    assert code == 2 and "no pricing examples" in out  # nothing logged yet: nothing stored
    _seed_log(url)
    thresholds = tmp_path / "t.json"
    thresholds.write_text(
        json.dumps({"app": "pricing", "thresholds": [{"metric": "reward", "value": -1e6}]})
    )
    rlops("registry", "promote", NAME, v1, "--force", "--reason", "first", *root)
    code, out = rlops(
        *gate,
        "--thresholds",
        str(thresholds),
        "--seeds",
        "1",
        "--resamples",
        "200",
        "--kl-bound",
        "10",
        "--by",
        "ci",
        "--json",
    )
    assert code == 0, out
    record = json.loads(out)
    assert record["passed"] and record["against_version"] == v1
    assert record["off_policy"]["reference_policy"] == v1 and record["off_policy"]["n"] == 300
    code, out = rlops("registry", "promote", NAME, v2, *root)
    assert code == 0, out
    with Registry.open(tmp_path / "root") as registry:
        assert registry.require_alias(NAME, PRODUCTION).version == v2
