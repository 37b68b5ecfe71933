"""Bearer tokens with scopes: who may do what, how headers are read, and how books load."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rlops.core.errors import NotFoundError, RlopsError, ValidationError
from rlops.serving import auth
from rlops.serving.auth import (
    SCOPES,
    AuthError,
    Scope,
    Token,
    TokenBook,
    new_token,
    token_digest,
)

DECIDER = "decider-token-0123456789abcdef"
OUTCOMES = "outcomes-token-0123456789abcdef"
ADMIN = "admin-token-0123456789abcdef-xyz"
ALL = "all-scopes-token-0123456789abcdef"


def book(open_scopes: frozenset[Scope] = frozenset()) -> TokenBook:
    return TokenBook(
        (
            Token.from_plaintext("decider", DECIDER, ["decide"]),
            Token.from_plaintext("logger", OUTCOMES, ["outcomes"]),
            Token.from_plaintext("ops", ADMIN, ["admin"]),
            Token.from_plaintext("root", ALL, SCOPES),
        ),
        open_scopes,
    )


def refused(call: Callable[[], object]) -> AuthError:
    with pytest.raises(AuthError) as error:
        call()
    assert error.value.field == "authorization"
    return error.value


@pytest.mark.parametrize("scope", SCOPES)
def test_each_scope_admits_only_tokens_that_grant_it(scope: Scope) -> None:
    tokens = book()
    holder = {"decide": ("decider", DECIDER), "outcomes": ("logger", OUTCOMES)}
    holder["admin"] = ("ops", ADMIN)
    name, token = holder[scope]
    assert tokens.authorize(f"Bearer {token}", scope) == name
    assert tokens.authorize(f"Bearer {ALL}", scope) == "root"
    for other_name, other in holder.values():
        if other_name == name:
            continue
        header = f"Bearer {other}"
        error = refused(lambda: tokens.authorize(header, scope))  # noqa: B023 (called at once)
        assert (error.status, error.code) == (403, "forbidden")
        assert error.message == f"token {other_name!r} lacks scope {scope!r}"
        assert error.headers == {}
    error = refused(lambda: tokens.authorize(None, scope))
    assert (error.status, error.code) == (401, "unauthorized")
    assert "missing Authorization header" in error.message
    assert error.headers == {"WWW-Authenticate": 'Bearer realm="rlops"'}


def test_the_scheme_is_case_insensitive() -> None:
    for scheme in ("bearer", "BEARER", "BeArEr"):
        assert book().authorize(f"{scheme} {ADMIN}", "admin") == "ops"


def test_embedded_default_opens_decide_and_outcomes_but_never_admin() -> None:
    default = TokenBook.embedded_default()
    assert default.tokens == ()
    assert default.authorize(None, "decide") is None
    assert default.authorize(None, "outcomes") is None
    assert refused(lambda: default.authorize(None, "admin")).status == 401
    # A header for an open scope must still be a known token.
    assert refused(lambda: default.authorize(f"Bearer {DECIDER}", "decide")).status == 401
    assert refused(lambda: default.authorize("Bearer", "decide")).status == 401


def test_open_scopes_beside_tokens() -> None:
    tokens = book(frozenset({"decide"}))
    assert tokens.authorize(None, "decide") is None
    assert tokens.authorize(f"Bearer {DECIDER}", "decide") == "decider"
    # Anonymous callers may decide, so a known token without the scope may too.
    assert tokens.authorize(f"Bearer {ADMIN}", "decide") == "ops"
    assert (
        refused(lambda: tokens.authorize("Bearer wrong-token-0123456789", "decide")).status == 401
    )
    assert refused(lambda: tokens.authorize(None, "outcomes")).status == 401
    assert refused(lambda: tokens.authorize(f"Bearer {DECIDER}", "outcomes")).status == 403


def test_admin_can_never_be_open() -> None:
    with pytest.raises(ValidationError) as error:
        TokenBook((), frozenset({"decide", "admin"}))
    assert error.value.field == "open_scopes"
    with pytest.raises(ValidationError) as error:
        TokenBook.from_json({"open_scopes": ["admin"]})
    assert error.value.field == "open_scopes"
    with pytest.raises(ValidationError) as error:
        TokenBook.from_env(f"ops:{ADMIN}:admin", open_scopes=["admin"])
    assert error.value.field == "open_scopes"


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Bearer",
        "Bearer ",
        f"Bearer  {ADMIN}",
        f" Bearer {ADMIN}",
        f"Bearer {ADMIN} ",
        f"Bearer\t{ADMIN}",
        f"Bearer {ADMIN} {ADMIN}",
        f"Bearer{ADMIN}",
        f"Basic {ADMIN}",
        f"Token {ADMIN}",
        "Bearer tökén-0123456789abcdef",
        "Bearer a\x00b",
        "Bearer " + "x" * 4096,
    ],
)
def test_malformed_headers_are_401(header: str) -> None:
    error = refused(lambda: book(frozenset({"decide"})).authorize(header, "decide"))
    assert (error.status, error.code) == (401, "unauthorized")
    assert error.message.startswith("malformed Authorization header")


def test_a_header_at_the_length_cap_is_read() -> None:
    long_token = "y" * (auth.MAX_HEADER - len("Bearer "))
    tokens = TokenBook((Token.from_plaintext("long", long_token, ["decide"]),))
    assert tokens.authorize(f"Bearer {long_token}", "decide") == "long"


def test_an_unknown_token_is_401() -> None:
    error = refused(lambda: book().authorize(f"Bearer {new_token()}", "decide"))
    assert (error.status, error.code, error.message) == (
        401,
        "unauthorized",
        "unknown bearer token",
    )
    assert isinstance(error, RlopsError)


def test_an_unknown_scope_is_a_programming_error() -> None:
    with pytest.raises(ValidationError):
        book().authorize(f"Bearer {ADMIN}", "write")  # type: ignore[arg-type]  # on purpose


@pytest.mark.parametrize("present", [DECIDER, ADMIN, ALL, "no-such-token-0123456789"])
def test_every_digest_is_compared_whichever_matches(
    present: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)  # the module auth calls through
    tokens = book()
    with contextlib.suppress(AuthError):
        tokens.authorize(f"Bearer {present}", "admin")
    assert len(calls) == len(tokens.tokens) == 4
    assert [b for _, b in calls] == [t.digest for t in tokens.tokens]
    assert {a for a, _ in calls} == {hashlib.sha256(present.encode()).digest()}


def test_new_tokens_are_long_random_and_usable() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    token = tokens.pop()
    assert len(token) == 43
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    held = TokenBook((Token.from_plaintext("fresh", token, ["decide"]),))
    assert held.authorize(f"Bearer {token}", "decide") == "fresh"


def test_tokens_hold_only_digests() -> None:
    token = Token.from_plaintext("t", ADMIN, ["admin", "admin"])
    assert token.digest == hashlib.sha256(ADMIN.encode()).digest() == token_digest(ADMIN)
    assert token.scopes == frozenset({"admin"})
    assert ADMIN not in repr(token)
    assert ADMIN not in json.dumps(book().to_json())


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Token("t", b"short", frozenset({"admin"})), "digest"),
        (lambda: Token("t", token_digest(ADMIN), frozenset()), "scopes"),
        (lambda: Token("no spaces", token_digest(ADMIN), frozenset({"admin"})), "name"),
        (lambda: Token.from_plaintext("t", "short", ["admin"]), "token"),
        (lambda: Token.from_plaintext("t", "has space 0123456789", ["admin"]), "token"),
        (lambda: TokenBook((Token.from_plaintext("a", ADMIN, ["admin"]),) * 2), "tokens[1]"),
        (
            lambda: TokenBook(
                (
                    Token.from_plaintext("a", ADMIN, ["admin"]),
                    Token.from_plaintext("b", ADMIN, ["decide"]),
                )
            ),
            "tokens[1]",
        ),
    ],
)
def test_invalid_tokens_name_the_field(build: Callable[[], object], field: str) -> None:
    with pytest.raises(ValidationError) as error:
        build()
    assert error.value.field == field


def test_json_round_trip() -> None:
    tokens = book(frozenset({"outcomes", "decide"}))
    data = json.loads(json.dumps(tokens.to_json()))
    assert data["open_scopes"] == ["decide", "outcomes"]
    assert data["tokens"][3]["scopes"] == ["decide", "outcomes", "admin"]
    assert TokenBook.from_json(data) == tokens


def test_from_json_takes_plaintext_or_digest() -> None:
    loaded = TokenBook.from_json(
        {
            "tokens": [
                {"name": "a", "token": ADMIN, "scopes": ["admin"]},
                {"name": "b", "sha256": token_digest(DECIDER).hex().upper(), "scopes": ["decide"]},
            ]
        }
    )
    assert loaded.open_scopes == frozenset()
    assert loaded.authorize(f"Bearer {ADMIN}", "admin") == "a"
    assert loaded.authorize(f"Bearer {DECIDER}", "decide") == "b"
    assert TokenBook.from_json({}) == TokenBook()


def entry(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"name": "a", "token": ADMIN, "scopes": ["admin"]}
    for key, value in changes.items():
        if value is ...:
            del item[key]
        else:
            item[key] = value
    return item


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([], "tokens"),
        ({"tokens": [], "users": []}, "users"),
        ({"tokens": {}}, "tokens"),
        ({"tokens": ["a"]}, "tokens[0]"),
        ({"tokens": [entry(), entry(name=...)]}, "tokens[1].name"),
        ({"tokens": [entry(scopes=...)]}, "tokens[0].scopes"),
        ({"tokens": [entry(token=...)]}, "tokens[0].token"),
        ({"tokens": [entry(sha256="00" * 32)]}, "tokens[0].token"),
        ({"tokens": [entry(token=..., sha256="zz" * 32)]}, "tokens[0].sha256"),
        ({"tokens": [entry(token=..., sha256="ab" * 31)]}, "tokens[0].sha256"),
        ({"tokens": [entry(token=..., sha256=5)]}, "tokens[0].sha256"),
        ({"tokens": [entry(token="short")]}, "tokens[0].token"),
        ({"tokens": [entry(token=12345678901234567890)]}, "tokens[0].token"),
        ({"tokens": [entry(scopes=["admin", "root"])]}, "tokens[0].scopes[1]"),
        ({"tokens": [entry(scopes="admin")]}, "tokens[0].scopes"),
        ({"tokens": [entry(scopes=[])]}, "tokens[0].scopes"),
        ({"tokens": [entry(name="a b")]}, "tokens[0].name"),
        ({"tokens": [entry(role="x")]}, "tokens[0].role"),
        ({"tokens": [entry(), entry(token=DECIDER)]}, "tokens[1]"),
        ({"open_scopes": ["decide", "read"]}, "open_scopes[1]"),
        ({"open_scopes": "decide"}, "open_scopes"),
    ],
)
def test_bad_json_names_the_field(data: object, field: str) -> None:
    with pytest.raises(ValidationError) as error:
        TokenBook.from_json(data)
    assert error.value.field == field


def test_from_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(book(frozenset({"decide"})).to_json()))
    assert TokenBook.from_file(path) == book(frozenset({"decide"}))
    with pytest.raises(NotFoundError):
        TokenBook.from_file(tmp_path / "missing.json")
    path.write_text("{tokens:")
    with pytest.raises(ValidationError) as error:
        TokenBook.from_file(path)
    assert error.value.field == "path"


def test_from_env() -> None:
    loaded = TokenBook.from_env(
        f" ci:{DECIDER}:decide, outcomes ; ops:{ADMIN}:admin ;", open_scopes=["outcomes"]
    )
    assert [t.name for t in loaded.tokens] == ["ci", "ops"]
    assert loaded.tokens[0].scopes == frozenset({"decide", "outcomes"})
    assert loaded.open_scopes == frozenset({"outcomes"})
    assert loaded.authorize(f"Bearer {DECIDER}", "decide") == "ci"
    assert loaded.authorize(f"Bearer {ADMIN}", "admin") == "ops"
    assert refused(lambda: loaded.authorize(f"Bearer {DECIDER}", "admin")).status == 403
    assert TokenBook.from_json(loaded.to_json()) == loaded
    # A token may hold ':' (name and scopes split at the first and last one).
    colon = TokenBook.from_env("x:abc:def:0123456789abcdef:decide")
    assert colon.authorize("Bearer abc:def:0123456789abcdef", "decide") == "x"


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("", "tokens"),
        (" ; ", "tokens"),
        (f"ci:{DECIDER}", "tokens[0]"),
        (f":{DECIDER}:decide", "tokens[0]"),
        ("ci::decide", "tokens[0]"),
        (f"ci:{DECIDER}:decide;ops:short:admin", "tokens[1].token"),
        (f"c i:{DECIDER}:decide", "tokens[0].name"),
        (f"ci:{DECIDER}:decide,write", "tokens[0].scopes[1]"),
        (f"ci:{DECIDER}:", "tokens[0].scopes"),
        (f"ci:{DECIDER}:decide;ci:{ADMIN}:admin", "tokens[1]"),
    ],
)
def test_bad_env_names_the_field(value: str, field: str) -> None:
    with pytest.raises(ValidationError) as error:
        TokenBook.from_env(value)
    assert error.value.field == field
