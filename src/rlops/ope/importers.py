"""Bring existing logs: the Open Bandit Dataset sample and Vowpal Wabbit DSJSON.

Open Bandit Dataset (Saito et al. 2021): ZOZOTOWN fashion recommendations logged by a
uniform-random and a Bernoulli Thompson-sampling campaign; a 10,000-row sample of each
ships inside obp's source distribution (``obp/dataset/obd/{random,bts}/all/all.csv`` and
``item_context.csv``). obp pins versions that clash with ours, so it is never installed:
:func:`fetch_obd_sdist` runs ``pip download`` for the sdist and the files are read out of
the tarball. Each row becomes an :class:`Example`: the 80 items are the actions
(``item-0`` ... ``item-79``), the context is the user features (hashed categories), the
user-item affinities and the slot position; the reward is the click.

DSJSON is the decision-service log format of Vowpal Wabbit / Azure Personalizer: one JSON
object per line with the context ``c`` (shared features, and one ``_multi`` entry per
action), the ranked action ids ``a`` (1-based) with probabilities ``p``, the chosen
action ``_label_Action`` (1-based) with ``_label_probability`` and ``_label_cost``, outcomes
``o``, ``EventId``, ``Timestamp`` and ``_skipLearn``. VW minimises cost, so
``reward = -_label_cost``. Lines without a context (dangling rewards) and events marked
``_skipLearn`` are skipped; a missing cost falls back to the sum of the outcome values.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from rlops.core.actions import Action, ActionCatalog
from rlops.core.errors import NotFoundError, ValidationError
from rlops.core.features import FeatureValue
from rlops.core.records import Example

OBP_VERSION = "0.5.7"
Campaign = Literal["random", "bts"]


def fetch_obd_sdist(cache_dir: Path) -> Path:
    """The obp source tarball in ``cache_dir``, downloaded with pip if absent.

    obp 0.5.7 ships no wheel and declares Python < 3.11, hence ``--no-binary`` and
    ``--ignore-requires-python``; ``--no-deps`` keeps its pins out of the picture.
    """
    target = cache_dir / f"obp-{OBP_VERSION}.tar.gz"
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        f"obp=={OBP_VERSION}",
        "--no-deps",
        "--no-binary=:all:",
        "--ignore-requires-python",
        "--quiet",
        "-d",
        str(cache_dir),
    ]
    subprocess.run(command, check=True, capture_output=True)
    if not target.exists():
        raise NotFoundError(f"pip did not leave {target.name} in {cache_dir}", field="source")
    return target


def _obd_file(source: Path, campaign: Campaign, name: str) -> bytes:
    relative = f"obp/dataset/obd/{campaign}/all/{name}"
    if source.is_dir():
        for root in (source, source / "obp" / "dataset" / "obd" / campaign / "all"):
            for candidate in (root / relative, root / name):
                if candidate.exists():
                    return candidate.read_bytes()
        raise NotFoundError(f"no {relative} under {source}", field="source")
    with tarfile.open(source, "r:gz") as archive:
        for member in archive.getmembers():
            if member.name.endswith(relative):
                handle = archive.extractfile(member)
                if handle is not None:
                    return handle.read()
    raise NotFoundError(f"no {relative} in {source}", field="source")


@dataclass(frozen=True, slots=True)
class ObdLog:
    """One campaign of the Open Bandit Dataset sample as our records."""

    examples: tuple[Example, ...]
    catalog: ActionCatalog


def read_obd(source: Path, *, campaign: Campaign = "random", limit: int | None = None) -> ObdLog:
    """The ``campaign`` sample from an obp sdist tarball or an extracted directory."""
    import pandas as pd

    if campaign not in ("random", "bts"):
        raise ValidationError("campaign must be 'random' or 'bts'", field="campaign")
    frame = pd.read_csv(io.BytesIO(_obd_file(source, campaign, "all.csv")), index_col=0)
    items = pd.read_csv(io.BytesIO(_obd_file(source, campaign, "item_context.csv")), index_col=0)
    if limit is not None:
        frame = frame.iloc[:limit]
    action_ids = tuple(f"item-{int(i)}" for i in items["item_id"])
    catalog = ActionCatalog.of(
        [
            Action(id=f"item-{int(item)}", features=(float(value),))
            for item, value in zip(
                items["item_id"].to_numpy(), items["item_feature_0"].to_numpy(), strict=True
            )
        ],
        feature_names=("item_feature_0",),
    )
    user_columns = [c for c in frame.columns if c.startswith("user_feature_")]
    affinity_columns = [c for c in frame.columns if c.startswith("user-item_affinity_")]
    examples = []
    for index, row in zip(frame.index, frame.to_dict("records"), strict=True):
        features: dict[str, FeatureValue] = {c: str(row[c]) for c in user_columns}
        features.update({c.replace("-", "_"): float(row[c]) for c in affinity_columns})
        features["position"] = str(int(row["position"]))
        examples.append(
            Example(
                event_id=f"obd-{campaign}-{int(index)}",
                features=features,
                action_ids=action_ids,
                action_id=f"item-{int(row['item_id'])}",
                propensity=float(row["propensity_score"]),
                reward=float(row["click"]),
                reward_spec="obd-click",
                app="obd",
                ts=datetime.fromisoformat(str(row["timestamp"])).timestamp(),
                policy_version=f"obd-{campaign}",
                arm=campaign,
                unit_id=f"obd-{int(index)}",
            )
        )
    return ObdLog(examples=tuple(examples), catalog=catalog)


def _flatten(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, FeatureValue]]:
    for key, value in values.items():
        if key.startswith("_"):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{name}.")
        elif isinstance(value, bool | int | float | str):
            yield name, value
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, int | float) and not isinstance(item, bool):
                    yield f"{name}.{i}", float(item)


def _timestamp(value: object) -> float:
    if not isinstance(value, str):
        return 0.0
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def dsjson_example(event: Mapping[str, Any], *, reward_spec: str = "dsjson") -> Example | None:
    """One DSJSON line as an :class:`Example`, or ``None`` for lines to skip."""
    context = event.get("c")
    if not isinstance(context, Mapping) or event.get("_skipLearn", False):
        return None
    multi = context.get("_multi")
    if not isinstance(multi, list) or not multi:
        raise ValidationError("a DSJSON event needs c._multi with one entry per action", field="c")
    action_ids = tuple(str(i) for i in range(1, len(multi) + 1))
    if "_label_Action" in event:
        chosen = int(event["_label_Action"])
    elif event.get("a"):
        chosen = int(event["a"][0])
    else:
        raise ValidationError("a DSJSON event needs _label_Action or a", field="_label_Action")
    if "_label_probability" in event:
        propensity = float(event["_label_probability"])
    elif event.get("p"):
        propensity = float(event["p"][0])
    else:
        raise ValidationError("a DSJSON event needs _label_probability or p", field="p")
    if "_label_cost" in event:
        reward = -float(event["_label_cost"])
    elif event.get("o"):
        reward = sum(float(o.get("v", 0.0)) for o in event["o"] if isinstance(o, Mapping))
    else:
        return None  # no reward has arrived for this decision
    if not 0.0 < propensity <= 1.0:
        raise ValidationError(
            f"probability {propensity} is outside (0, 1]", field="_label_probability"
        )
    event_id = str(event.get("EventId", ""))
    return Example(
        event_id=event_id,
        features=dict(_flatten(context)),
        action_ids=action_ids,
        action_id=str(chosen),
        propensity=propensity,
        reward=reward,
        reward_spec=reward_spec,
        app="dsjson",
        ts=_timestamp(event.get("Timestamp")),
        n_outcomes=len(event.get("o", []) or []),
    )


def read_dsjson(path: Path, *, reward_spec: str = "dsjson") -> list[Example]:
    """Every learnable event of a DSJSON file, in file order."""
    examples = []
    with path.open() as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValidationError(
                    f"{path}:{number}: not JSON ({error})", field="line"
                ) from None
            example = dsjson_example(event, reward_spec=reward_spec)
            if example is not None:
                examples.append(example)
    return examples
