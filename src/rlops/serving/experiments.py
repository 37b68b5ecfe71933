"""Experiments: which registry alias serves each unit, by a stable hash and traffic shares.

A unit (a user, a cart, an account) is hashed with the experiment's salt to a bucket in
``[0, 1)``. Arms are laid out on ``[0, 1)`` in their listed order, each over an interval
as wide as its share, and a unit gets the arm whose interval holds its bucket. Hence:

- a unit keeps its arm while the salt and the shares are unchanged, in every process and
  on every machine: the hash is blake2b over UTF-8 bytes, never the builtin ``hash``,
  which is randomised per process;
- with arms ``[production, canary]`` (canary listed last), growing the canary's share
  lowers the one boundary, so units only move from production to canary, never back: a
  staged rollout 1% -> 10% -> 50% -> 100% keeps every earlier canary unit in the canary;
- a zero-share arm gets no traffic; a new salt reshuffles every unit (use one per
  independent experiment, so two experiments' arms are uncorrelated).

Shares change at run time through a :class:`Router`, with optimistic concurrency on the
experiment's revision. Given a ``path``, the experiment is also a JSON file that every
worker process follows, so one admin call re-routes all workers without a restart.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import math
import re
import threading
from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from rlops.core.errors import ConflictError, NotFoundError, ValidationError
from rlops.core.features import FeatureValue
from rlops.core.files import write_atomic
from rlops.core.records import check_features
from rlops.exploration.explorer import ExplorationConfig

log = logging.getLogger(__name__)

#: How far the shares may sum from 1 (floats such as 0.1 + 0.2 do not sum exactly).
SHARE_TOLERANCE = 1e-9
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
# The salt never contains NUL, so salt + NUL + unit id is unambiguous.
_SEPARATOR = b"\x00"
_TWO_TO_MINUS_53 = 2.0**-53


def _name(value: object, field_name: str) -> str:
    """Arm names and aliases travel in logs and metric labels: short, plain tokens."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValidationError(
            f"{field_name} must be 1-64 characters of letters, digits and _.-, got {value!r}",
            field=field_name,
        )
    return value


def _share(value: object, field_name: str) -> float:
    # NaN and infinities fail the range comparison, so they are rejected here too.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValidationError(
            f"{field_name} must be a finite number in [0, 1], got {value!r}", field=field_name
        )
    return float(value)


def _refield(error: ValidationError, prefix: str) -> ValidationError:
    """The same error with its field located inside a larger document."""
    field_name = f"{prefix}.{error.field}" if error.field else prefix
    return ValidationError(error.message, field=field_name)


def _fields(data: object, where: str, required: Sequence[str], optional: Sequence[str]) -> Any:
    """``data`` as a mapping with every required key and no unknown one.

    Unknown keys are errors: a typo in a hand-edited file (``"shares"`` for ``"share"``)
    must not be silently ignored.
    """
    at = f"{where}." if where else ""
    if not isinstance(data, Mapping):
        raise ValidationError(f"{where or 'value'} must be a JSON object", field=where or None)
    for key in required:
        if key not in data:
            raise ValidationError(f"{at}{key} is required", field=f"{at}{key}")
    for key in data:
        if key not in required and key not in optional:
            raise ValidationError(f"unknown field {at}{key}", field=f"{at}{key}")
    return data


def _exploration_from_json(data: object) -> ExplorationConfig:
    fields = _fields(data, "exploration", (), ("kind", "schedule", "floor"))
    schedule_keys = ("kind", "start", "end", "horizon", "unit")
    _fields(fields.get("schedule", {}), "exploration.schedule", (), schedule_keys)
    floor = fields.get("floor", 0.0)
    if isinstance(floor, bool) or not isinstance(floor, int | float):
        raise ValidationError("exploration.floor must be a number", field="exploration.floor")
    try:
        return ExplorationConfig.from_json(dict(fields))
    except ValidationError as error:
        if (error.field or "").startswith("exploration"):
            raise
        raise _refield(error, "exploration") from None
    except (TypeError, ValueError) as error:
        raise ValidationError(f"exploration is invalid: {error}", field="exploration") from None


@dataclass(frozen=True, slots=True)
class Arm:
    """One arm: a name logged with each decision, the alias it serves and its traffic share.

    ``exploration`` overrides the server's default for this arm's units (so a canary can
    explore while production does not); ``explore_segment`` further limits exploration to
    contexts whose features equal all of its values (see :func:`segment_mask`).
    """

    name: str
    alias: str
    share: float
    exploration: ExplorationConfig | None = None
    explore_segment: Mapping[str, FeatureValue] | None = None

    def __post_init__(self) -> None:
        _name(self.name, "name")
        _name(self.alias, "alias")
        object.__setattr__(self, "share", _share(self.share, "share"))
        exploration: object = self.exploration
        if exploration is not None and not isinstance(exploration, ExplorationConfig):
            raise ValidationError("exploration must be an ExplorationConfig", field="exploration")
        if self.explore_segment is not None:
            segment = check_features(self.explore_segment, "explore_segment")
            if not segment:
                raise ValidationError(
                    "explore_segment must name a feature (None explores everywhere)",
                    field="explore_segment",
                )
            # A read-only copy: routers share arms across threads.
            object.__setattr__(self, "explore_segment", MappingProxyType(segment))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "alias": self.alias,
            "share": self.share,
            "exploration": None if self.exploration is None else self.exploration.to_json(),
            "explore_segment": None if self.explore_segment is None else dict(self.explore_segment),
        }

    @classmethod
    def from_json(cls, data: object) -> Arm:
        fields = _fields(data, "", ("name", "alias", "share"), ("exploration", "explore_segment"))
        exploration = fields.get("exploration")
        return cls(
            name=fields["name"],
            alias=fields["alias"],
            share=fields["share"],
            exploration=None if exploration is None else _exploration_from_json(exploration),
            explore_segment=fields.get("explore_segment"),
        )


def _arms(value: object) -> tuple[Arm, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise ValidationError("an experiment needs at least one arm", field="arms")
    names: set[str] = set()
    for i, arm in enumerate(value):
        if not isinstance(arm, Arm):
            raise ValidationError(f"arms[{i}] must be an Arm", field=f"arms[{i}]")
        if arm.name in names:
            raise ValidationError(f"arm name {arm.name!r} repeats", field=f"arms[{i}].name")
        names.add(arm.name)
    total = math.fsum(arm.share for arm in value)
    if abs(total - 1.0) > SHARE_TOLERANCE:
        raise ValidationError(f"arm shares must sum to 1, got {total!r}", field="arms")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class Experiment:
    """Arms over the units, laid out in listed order; ``revision`` counts committed changes."""

    name: str
    salt: str
    arms: tuple[Arm, ...]
    revision: int = 0

    def __post_init__(self) -> None:
        _name(self.name, "name")
        salt: object = self.salt
        if not isinstance(salt, str) or not 1 <= len(salt) <= 256 or "\x00" in salt:
            raise ValidationError("salt must be 1-256 characters without NUL", field="salt")
        try:
            salt.encode()
        except UnicodeEncodeError:
            raise ValidationError("salt must be valid Unicode text", field="salt") from None
        revision: object = self.revision
        if isinstance(revision, bool) or not isinstance(revision, int) or revision < 0:
            raise ValidationError("revision must be an integer >= 0", field="revision")
        object.__setattr__(self, "arms", _arms(self.arms))

    def arm(self, name: str) -> Arm:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise NotFoundError(f"experiment {self.name!r} has no arm {name!r}", field="arm")

    def with_shares(self, shares: Mapping[str, float]) -> Experiment:
        """New shares for the named arms (others keep theirs), at the next revision."""
        if not isinstance(shares, Mapping):
            raise ValidationError("shares must map arm names to shares", field="shares")
        updated = {arm.name: arm for arm in self.arms}
        for name, value in shares.items():
            if name not in updated:
                raise ValidationError(f"no arm named {name!r}", field=f"shares.{name}")
            updated[name] = replace(updated[name], share=_share(value, f"shares.{name}"))
        try:
            return replace(self, arms=tuple(updated.values()), revision=self.revision + 1)
        except ValidationError as error:
            raise ValidationError(error.message, field="shares") from None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "salt": self.salt,
            "revision": self.revision,
            "arms": [arm.to_json() for arm in self.arms],
        }

    @classmethod
    def from_json(cls, data: object) -> Experiment:
        if not isinstance(data, Mapping):
            raise ValidationError("an experiment must be a JSON object", field="experiment")
        fields = _fields(data, "", ("name", "salt", "arms"), ("revision",))
        items = fields["arms"]
        if not isinstance(items, list):
            raise ValidationError("arms must be a list", field="arms")
        arms = []
        for i, item in enumerate(items):
            try:
                arms.append(Arm.from_json(item))
            except ValidationError as error:
                raise _refield(error, f"arms[{i}]") from None
        return cls(fields["name"], fields["salt"], tuple(arms), fields.get("revision", 0))


def single_arm(alias: str = "production") -> Experiment:
    """The default: every unit on one arm named ``production`` serving ``alias``."""
    return Experiment("default", "default", (Arm("production", alias, 1.0),))


def unit_bucket(unit_id: str, salt: str) -> float:
    """The unit's position in ``[0, 1)``: blake2b (8-byte digest) of salt, NUL, unit id.

    The digest is read as a big-endian 64-bit integer and its top 53 bits are scaled by
    ``2**-53``: exact in a float and strictly below 1 (dividing all 64 bits by ``2**64``
    rounds the largest values up to 1.0).
    """
    digest = hashlib.blake2b(salt.encode() + _SEPARATOR + unit_id.encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) * _TWO_TO_MINUS_53


@dataclass(frozen=True, slots=True)
class _Layout:
    """An experiment prepared for routing; replaced whole, so readers need no lock."""

    experiment: Experiment
    salted: hashlib.blake2b  # already fed salt + NUL; each unit hashes a copy
    bounds: tuple[float, ...]  # upper bounds of every served arm but the last
    served: tuple[Arm, ...]  # arms with a positive share, in listed order

    @classmethod
    def of(cls, experiment: Experiment) -> _Layout:
        served = tuple(arm for arm in experiment.arms if arm.share > 0)
        shares = [arm.share for arm in served]
        # Cumulative sums; the last arm takes everything above the last bound, so a sum a
        # hair below 1 cannot leave buckets unassigned or hand them to a zero-share arm.
        bounds = tuple(math.fsum(shares[: i + 1]) for i in range(len(served) - 1))
        salted = hashlib.blake2b(experiment.salt.encode() + _SEPARATOR, digest_size=8)
        return cls(experiment, salted, bounds, served)


def segment_mask(
    segment: Mapping[str, FeatureValue] | None, rows: Sequence[Mapping[str, FeatureValue]]
) -> npt.NDArray[np.bool_]:
    """Which rows may explore, shape ``(n,)``: all when ``segment`` is None.

    A row is in the segment when it has every segment feature at an equal value; values
    compare as Python compares them (``1 == 1.0 == True``), and a missing feature is out.
    """
    if segment is None:
        return np.ones(len(rows), dtype=np.bool_)
    missing = object()
    wanted = tuple(segment.items())
    return np.fromiter(
        (all(row.get(key, missing) == value for key, value in wanted) for row in rows),
        dtype=np.bool_,
        count=len(rows),
    )


def save_experiment(path: Path, experiment: Experiment) -> None:
    """Write atomically: a reader sees the old file or the new one, never a torn one."""
    write_atomic(path, orjson.dumps(experiment.to_json(), option=orjson.OPT_INDENT_2))


def load_experiment(path: Path) -> Experiment:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"no experiment file at {path}", field="path") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ValidationError(f"{path} is not JSON: {error}", field="experiment") from None
    return Experiment.from_json(data)


def _signature(path: Path) -> tuple[int, int, int] | None:
    """Inode, mtime and size: every atomic replace makes a new inode, so writes within
    one mtime tick are still seen."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


class Router:
    """Holds the current experiment and assigns arms; safe to share across threads.

    With ``path``, the file is the state all workers share: if it exists it wins over
    ``experiment`` at start (an invalid file raises, so a broken config stops a deploy),
    every update is written to it under an exclusive file lock, after adopting a newer
    revision found there, so two processes cannot both commit the same revision, and
    :meth:`follow` picks up other processes' updates. An operator editing the file by
    hand must raise its revision, as followers only take newer revisions.
    """

    def __init__(self, experiment: Experiment, *, path: Path | None = None) -> None:
        self.path = path
        #: Changed files that could not be read as an experiment (the current one stayed).
        self.reload_failures = 0
        #: Called (from the follower thread) with an experiment another process wrote.
        self.on_change: Callable[[Experiment], None] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: tuple[int, int, int] | None = None
        if path is not None:
            self._seen = _signature(path)
            if self._seen is not None:
                experiment = load_experiment(path)
        self._layout = _Layout.of(experiment)

    @property
    def experiment(self) -> Experiment:
        return self._layout.experiment

    def assign(self, unit_ids: Sequence[str]) -> list[Arm]:
        """The arm of each unit: one hash per unit, then a bisection of the share bounds."""
        layout = self._layout  # read once: a concurrent update cannot split a batch
        salted, bounds, served = layout.salted, layout.bounds, layout.served
        arms: list[Arm] = []
        try:
            for unit_id in unit_ids:
                hasher = salted.copy()
                hasher.update(unit_id.encode())
                bucket = (int.from_bytes(hasher.digest(), "big") >> 11) * _TWO_TO_MINUS_53
                arms.append(served[bisect_right(bounds, bucket)])
        except (AttributeError, UnicodeEncodeError):
            at = f"unit_ids[{len(arms)}]"
            raise ValidationError(f"{at} must be a UTF-8 encodable string", field=at) from None
        return arms

    def update(self, experiment: Experiment, *, expected_revision: int | None = None) -> Experiment:
        """Replace the experiment; it is committed at the current revision + 1."""
        return self._commit(lambda _current: experiment, expected_revision)

    def set_shares(
        self, shares: Mapping[str, float], *, expected_revision: int | None = None
    ) -> Experiment:
        """Change the named arms' shares (a rollout step) without touching anything else."""
        return self._commit(lambda current: current.with_shares(shares), expected_revision)

    def follow(self, interval: float = 0.5) -> None:
        """Poll ``path`` every ``interval`` seconds in a daemon thread until :meth:`stop`."""
        if self.path is None:
            raise ValidationError("a router without a path has nothing to follow", field="path")
        if not 0 < interval <= 60:
            raise ValidationError("interval must lie in (0, 60] seconds", field="interval")
        if self._thread is not None:
            raise ValidationError("this router is already following its file", field="follow")
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._follow, args=(interval,), name="experiment-follower", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _follow(self, interval: float) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # an unreadable directory must not end the follower
                log.exception("following %s failed; retrying", self.path)
            self._stop.wait(interval)

    def refresh(self) -> None:
        """Adopt the file's experiment now if another process wrote a newer revision."""
        path = self.path
        signature = None if path is None else _signature(path)
        if path is None or signature is None or signature == self._seen:
            return
        self._seen = signature
        try:
            experiment = load_experiment(path)
        except NotFoundError:
            return  # removed between stat and read: keep the current experiment
        except (ValidationError, OSError) as error:
            with self._lock:
                self.reload_failures += 1
            log.warning("kept experiment revision %d: %s", self.experiment.revision, error)
            return
        with self._lock:
            changed = experiment.revision > self._layout.experiment.revision
            if changed:
                self._layout = _Layout.of(experiment)
        if changed and self.on_change is not None:
            try:
                self.on_change(experiment)
            except Exception:  # the new experiment serves; the listener's failure is logged
                log.exception("reacting to experiment revision %d failed", experiment.revision)

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        if self.path is None:
            yield
            return
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)  # released when the file closes
            yield

    def _commit(
        self, change: Callable[[Experiment], Experiment], expected_revision: int | None
    ) -> Experiment:
        with self._lock, self._file_lock():
            if self.path is not None:
                with suppress(NotFoundError, ValidationError):  # a broken file is overwritten
                    on_disk = load_experiment(self.path)
                    if on_disk.revision > self._layout.experiment.revision:
                        self._layout = _Layout.of(on_disk)
            current = self._layout.experiment
            if expected_revision is not None and expected_revision != current.revision:
                raise ConflictError(
                    f"experiment is at revision {current.revision}, not {expected_revision}",
                    field="expected_revision",
                )
            new = replace(change(current), revision=current.revision + 1)
            if self.path is not None:
                save_experiment(self.path, new)  # before the swap: a failed write changes nothing
            self._layout = _Layout.of(new)
            return new
