"""System tools the tests drive for real (Debian packages), found or explained."""

from __future__ import annotations

import os
import shutil

import pytest


def require_binary(*names: str, package: str) -> str:
    """The first of ``names`` on PATH; otherwise skip with the reason, or fail under CI,
    where a missing tool must not pass as a skipped test."""
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    reason = f"{names[0]} is not installed (Debian: apt-get install {package})"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so tests that need {names[0]} must not skip: {reason}")
    pytest.skip(reason)
