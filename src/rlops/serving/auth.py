"""Bearer tokens with scopes: ``decide``, ``outcomes`` and ``admin``.

Only sha256 digests of tokens are held, so a dumped config or a core file does not leak
a usable token. A presented token is hashed and compared with every configured digest
by :func:`hmac.compare_digest`, all of them whichever matches, so neither which token
matched nor how much of it did shows in the response time.

Scopes may be open (allowed without a token) so the embedded default works the moment
it is installed; ``admin`` is never open. A token presented for an open scope must still
be a known token: a wrong one is refused, never silently treated as anonymous.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from rlops.core.errors import NotFoundError, RlopsError, ValidationError

Scope = Literal["decide", "outcomes", "admin"]
SCOPES: tuple[Scope, ...] = ("decide", "outcomes", "admin")
#: Longest Authorization header read; a longer one is refused before hashing.
MAX_HEADER = 4096
#: Shortest plaintext token accepted in config: anything shorter is guessable.
MIN_TOKEN = 16
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
# A token is visible ASCII: it has to survive an HTTP header and a shell variable.
_TOKEN = re.compile(r"[\x21-\x7e]+")
_HEADER = re.compile(r"([A-Za-z]+) ([\x21-\x7e]+)")
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


class AuthError(RlopsError):
    """A refused request: 401 (no valid token) or 403 (a valid token without the scope).

    ``headers`` holds the ``WWW-Authenticate`` challenge that a 401 must carry.
    """

    def __init__(self, message: str, *, status: Literal[401, 403]) -> None:
        super().__init__(message, field="authorization")
        self.status = status
        self.code = "unauthorized" if status == 401 else "forbidden"

    @property
    def headers(self) -> dict[str, str]:
        if self.status == 401:
            return {"WWW-Authenticate": 'Bearer realm="rlops"'}
        return {}


def new_token() -> str:
    """A fresh random token: 32 bytes (256 bits) in URL-safe base64, 43 characters."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> bytes:
    """The sha256 of a token's UTF-8 bytes: what a :class:`Token` holds."""
    return hashlib.sha256(token.encode()).digest()


def _scopes(values: object, field_name: str) -> frozenset[Scope]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise ValidationError(f"{field_name} must be a list of scopes", field=field_name)
    scopes: set[Scope] = set()
    for i, value in enumerate(values):
        scope = next((s for s in SCOPES if s == value), None)
        if scope is None:
            raise ValidationError(
                f"{field_name}[{i}] must be one of {SCOPES}, got {value!r}",
                field=f"{field_name}[{i}]",
            )
        scopes.add(scope)
    return frozenset(scopes)


def _plaintext(token: object, field_name: str) -> str:
    if not isinstance(token, str) or not _TOKEN.fullmatch(token) or len(token) < MIN_TOKEN:
        raise ValidationError(
            f"{field_name} must be at least {MIN_TOKEN} visible ASCII characters "
            "without spaces (make one with rlops.serving.auth.new_token())",
            field=field_name,
        )
    return token


@dataclass(frozen=True, slots=True)
class Token:
    """A named token: its sha256 digest (32 bytes) and the scopes it grants."""

    name: str
    digest: bytes
    scopes: frozenset[Scope]

    def __post_init__(self) -> None:
        name: object = self.name
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValidationError(
                f"a token name must be 1-64 characters of letters, digits and _.-, got {name!r}",
                field="name",
            )
        digest: object = self.digest
        if not isinstance(digest, bytes) or len(digest) != 32:
            raise ValidationError("digest must be 32 bytes (a sha256)", field="digest")
        scopes = _scopes(self.scopes, "scopes")
        if not scopes:
            raise ValidationError(f"token {name!r} grants no scope", field="scopes")
        object.__setattr__(self, "scopes", scopes)

    @classmethod
    def from_plaintext(cls, name: str, token: str, scopes: Iterable[Scope]) -> Token:
        return cls(name, token_digest(_plaintext(token, "token")), frozenset(scopes))

    def to_json(self) -> dict[str, Any]:
        """Digest only: the plaintext is never kept, so it can never be written back."""
        ordered = [scope for scope in SCOPES if scope in self.scopes]
        return {"name": self.name, "sha256": self.digest.hex(), "scopes": ordered}


def _token_from_json(data: object, at: str) -> Token:
    if not isinstance(data, Mapping):
        raise ValidationError(f"{at} must be a JSON object", field=at)
    for key in data:
        if key not in ("name", "token", "sha256", "scopes"):
            raise ValidationError(f"unknown field {at}.{key}", field=f"{at}.{key}")
    for key in ("name", "scopes"):
        if key not in data:
            raise ValidationError(f"{at}.{key} is required", field=f"{at}.{key}")
    if ("token" in data) == ("sha256" in data):
        raise ValidationError(f"{at} needs exactly one of token and sha256", field=f"{at}.token")
    if "token" in data:
        digest = token_digest(_plaintext(data["token"], f"{at}.token"))
    else:
        hex_digest = data["sha256"]
        if not isinstance(hex_digest, str) or not _HEX_DIGEST.fullmatch(hex_digest):
            raise ValidationError(f"{at}.sha256 must be 64 hex digits", field=f"{at}.sha256")
        digest = bytes.fromhex(hex_digest)
    scopes = _scopes(data["scopes"], f"{at}.scopes")
    try:
        return Token(data["name"], digest, scopes)
    except ValidationError as error:
        raise ValidationError(error.message, field=f"{at}.{error.field}") from None


@dataclass(frozen=True)
class TokenBook:
    """The configured tokens and the scopes open without one."""

    tokens: tuple[Token, ...] = ()
    open_scopes: frozenset[Scope] = frozenset()

    def __post_init__(self) -> None:
        tokens: object = self.tokens
        if not isinstance(tokens, list | tuple):
            raise ValidationError("tokens must be a sequence of Token", field="tokens")
        names: set[str] = set()
        digests: set[bytes] = set()
        for i, token in enumerate(tokens):
            if not isinstance(token, Token):
                raise ValidationError(f"tokens[{i}] must be a Token", field=f"tokens[{i}]")
            if token.name in names:
                raise ValidationError(f"token name {token.name!r} repeats", field=f"tokens[{i}]")
            if token.digest in digests:
                raise ValidationError(
                    f"token {token.name!r} is the same secret as another", field=f"tokens[{i}]"
                )
            names.add(token.name)
            digests.add(token.digest)
        open_scopes = _scopes(self.open_scopes, "open_scopes")
        if "admin" in open_scopes:
            raise ValidationError("admin always requires a token", field="open_scopes")
        object.__setattr__(self, "tokens", tuple(tokens))
        object.__setattr__(self, "open_scopes", open_scopes)

    def authorize(self, header: str | None, scope: Scope) -> str | None:
        """The name of the token in ``header`` (an ``Authorization`` value) if it may use
        ``scope``; None for an open scope without a header. Raises :class:`AuthError`."""
        if scope not in SCOPES:
            raise ValidationError(f"unknown scope {scope!r}", field="scope")
        if header is None:
            if scope in self.open_scopes:
                return None
            raise AuthError(f"missing Authorization header: {scope} needs a token", status=401)
        match = _HEADER.fullmatch(header) if len(header) <= MAX_HEADER else None
        if match is None or match.group(1).lower() != "bearer":
            raise AuthError("malformed Authorization header: expected 'Bearer <token>'", status=401)
        presented = token_digest(match.group(2))
        found: Token | None = None
        for token in self.tokens:  # every digest, no early exit
            if hmac.compare_digest(presented, token.digest):
                found = token
        if found is None:
            raise AuthError("unknown bearer token", status=401)
        # An open scope admits anyone, so a known token without the scope passes too.
        if scope not in found.scopes and scope not in self.open_scopes:
            raise AuthError(f"token {found.name!r} lacks scope {scope!r}", status=403)
        return found.name

    def to_json(self) -> dict[str, Any]:
        return {
            "tokens": [token.to_json() for token in self.tokens],
            "open_scopes": [scope for scope in SCOPES if scope in self.open_scopes],
        }

    @classmethod
    def from_json(cls, data: object) -> TokenBook:
        """``{"tokens": [{"name", "token" | "sha256", "scopes"}], "open_scopes": [...]}``.

        Prefer ``sha256`` in files: the file then holds no usable secret.
        """
        if not isinstance(data, Mapping):
            raise ValidationError("a token book must be a JSON object", field="tokens")
        for key in data:
            if key not in ("tokens", "open_scopes"):
                raise ValidationError(f"unknown field {key}", field=str(key))
        items = data.get("tokens", [])
        if not isinstance(items, list):
            raise ValidationError("tokens must be a list", field="tokens")
        tokens = tuple(_token_from_json(item, f"tokens[{i}]") for i, item in enumerate(items))
        return cls(tokens, _scopes(data.get("open_scopes", []), "open_scopes"))

    @classmethod
    def from_file(cls, path: Path) -> TokenBook:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"no token file at {path}", field="path") from None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise ValidationError(f"{path} is not JSON: {error}", field="path") from None
        return cls.from_json(data)

    @classmethod
    def from_env(cls, value: str, *, open_scopes: Iterable[Scope] = ()) -> TokenBook:
        """``name:token:scope,scope;name2:token2:admin`` (an environment variable).

        Name and scopes are split off at the first and last ``:``, so a token may hold
        ``:`` but not ``;``. Whitespace around entries and empty entries are ignored.
        """
        entries = [entry.strip() for entry in value.split(";") if entry.strip()]
        if not entries:
            raise ValidationError("no tokens given", field="tokens")
        tokens = []
        for i, entry in enumerate(entries):
            at = f"tokens[{i}]"
            name, _, rest = entry.partition(":")
            token, _, scopes = rest.rpartition(":")
            if not name or not token:
                raise ValidationError(f"{at} must read name:token:scope,scope", field=at)
            scope_list = [scope.strip() for scope in scopes.split(",") if scope.strip()]
            try:
                digest = token_digest(_plaintext(token, "token"))
                tokens.append(Token(name, digest, _scopes(scope_list, "scopes")))
            except ValidationError as error:
                raise ValidationError(error.message, field=f"{at}.{error.field}") from None
        return cls(tuple(tokens), frozenset(open_scopes))

    @classmethod
    def embedded_default(cls) -> TokenBook:
        """No tokens; deciding and logging outcomes are open, admin needs a configured token."""
        return cls((), frozenset({"decide", "outcomes"}))
