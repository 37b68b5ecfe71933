"""Artifacts on disk under the registry root: copied in whole and verified, never edited.

Layout: ``<root>/artifacts/<name>/<version>/`` holding exactly the files the manifest
lists. The version is the artifact's content hash (:func:`rlops.policies.artifact.
model_version`), so the path names the content. A copy is written to a staging directory
beside its target, fsync'd, verified by a full :func:`load_policy`, made read-only and
renamed into place: a reader sees a whole, verified artifact or none.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

from rlops.core.errors import IntegrityError, NotFoundError
from rlops.policies.artifact import MANIFEST, LoadedPolicy, Manifest, load_policy, read_manifest

ARTIFACTS = "artifacts"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def relative_path(name: str, version: str) -> str:
    """Where ``name``/``version`` lives, relative to the root (both are checked ids)."""
    return f"{ARTIFACTS}/{name}/{version}"


def artifact_files(manifest: Manifest) -> list[str]:
    """The manifest and every file it lists; a listed name that is not a plain file name
    (``../x``, ``a/b``, a dot file) is refused, so a hostile manifest cannot write outside
    the artifact."""
    names = [MANIFEST]
    for name in manifest.files:
        if not name or Path(name).name != name or name.startswith("."):
            raise IntegrityError(f"the manifest lists an unsafe file name {name!r}", field="files")
        names.append(name)
    return names


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy(source: Path, staging: Path, names: list[str]) -> None:
    for name in names:
        with (source / name).open("rb") as src, (staging / name).open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        (staging / name).chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    _fsync_dir(staging)


def verify(directory: Path, *, name: str, version: str) -> LoadedPolicy:
    """A full load of ``directory``, which must hold ``name`` at ``version``."""
    try:
        loaded = load_policy(directory)
    except NotFoundError:
        raise IntegrityError(
            f"the artifact of {name} {version} is missing its manifest", field="manifest"
        ) from None
    if loaded.manifest.name != name or loaded.version != version:
        raise IntegrityError(
            f"{directory} holds {loaded.manifest.name} {loaded.version}, not {name} {version}",
            field="version",
        )
    return loaded


def place(source: Path, root: Path) -> tuple[Manifest, str]:
    """Copy the artifact at ``source`` under ``root`` (once); return its manifest and path.

    ``source`` is verified before copying and the copy after; an intact copy already in
    place (an earlier or concurrent registration of the same version) is kept. A damaged
    one that no index row points to yet is replaced.
    """
    manifest = read_manifest(source)
    load_policy(source)
    names = artifact_files(manifest)
    path = relative_path(manifest.name, manifest.version)
    target = root / path
    if target.exists():
        try:
            verify(target, name=manifest.name, version=manifest.version)
            return manifest, path
        except IntegrityError:
            _discard(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
    try:
        _copy(source, staging, names)
        verify(staging, name=manifest.name, version=manifest.version)
        try:
            os.replace(staging, target)
        except OSError:
            # Someone placed the same version first: theirs is verified; keep it.
            verify(target, name=manifest.name, version=manifest.version)
            _discard(staging)
        _fsync_dir(target.parent)
    except BaseException:
        _discard(staging)
        raise
    return manifest, path


def _discard(directory: Path) -> None:
    """Remove a directory, first renaming it so no reader can see it half deleted."""
    if not directory.exists():
        return
    trash = directory.with_name(f".trash-{directory.name}-{os.getpid()}-{id(directory)}")
    with contextlib.suppress(OSError):
        os.replace(directory, trash)
        directory = trash
    shutil.rmtree(directory, ignore_errors=True)
