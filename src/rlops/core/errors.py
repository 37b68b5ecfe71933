"""Errors with a machine-readable code, so the HTTP shell and the CLI report them alike."""

from __future__ import annotations


class RlopsError(Exception):
    """Base of every error rlops raises on purpose.

    ``code`` is stable and machine-readable (it becomes the JSON ``code`` of an HTTP
    error); ``field`` names the offending input where there is one.
    """

    code = "rlops_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationError(RlopsError, ValueError):
    """Input that does not meet its contract. Nothing was written."""

    code = "invalid_input"


class NotFoundError(RlopsError, LookupError):
    """A named thing (an action version, a snapshot, a policy) does not exist."""

    code = "not_found"


class ConflictError(RlopsError):
    """A write lost a race or contradicts what is stored."""

    code = "conflict"


class IntegrityError(RlopsError):
    """Stored data failed verification (checksum, content id)."""

    code = "integrity_error"
