"""TokenStore: the API tokens of `kestra-trio server`, stored hashed (never the token itself).

A token reads `kt_<id>_<secret>`: `id` (8 hex characters) names it in `server token list`
and `revoke`, `secret` is 32 random bytes (URL-safe base64). The table keeps the SHA-256 of
the whole token; checking a presented token is one indexed lookup of its hash, so its cost
does not depend on how much of it is right (no timing leak), and the token is shown only once.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import dataclass

from kestra_trio.observability.records import now_ms
from kestra_trio.storage.db import Database

TOKEN_PREFIX = "kt_"
#: a token's last use is written at most this often (a write per request would cost the writer)
LAST_USED_EVERY_MS = 60_000


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> tuple[str, str]:
    """(id, token): a fresh token and its public id."""
    token_id = secrets.token_hex(4)
    return token_id, f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True, slots=True)
class TokenRow:
    id: str
    name: str
    created_at: int
    last_used_at: int | None
    revoked_at: int | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class TokenCheck:
    """What a request's token amounts to."""

    #: a token was ever created (then every API request needs a valid one)
    required: bool
    #: the id of the valid token presented (None: none, wrong or revoked)
    token_id: str | None
    last_used_at: int | None = None


_COLUMNS = "id, name, CAST(created_at AS INTEGER), CAST(last_used_at AS INTEGER), CAST(revoked_at AS INTEGER)"


def _create(raw: sqlite3.Connection, token_id: str, name: str, digest: str, at: int) -> None:
    raw.execute(
        "INSERT INTO api_tokens (id, name, token_hash, created_at) VALUES (?,?,?,?)", (token_id, name, digest, at)
    )


def _list(raw: sqlite3.Connection) -> list[TokenRow]:
    return [TokenRow(*row) for row in raw.execute(f"SELECT {_COLUMNS} FROM api_tokens ORDER BY created_at, id")]


def _revoke(raw: sqlite3.Connection, token_id: str, at: int) -> bool | None:
    row = raw.execute("SELECT revoked_at FROM api_tokens WHERE id = ?", (token_id,)).fetchone()
    if row is None:
        return None
    if row[0] is not None:
        return False
    raw.execute("UPDATE api_tokens SET revoked_at = ? WHERE id = ?", (at, token_id))
    return True


def _any_active(raw: sqlite3.Connection) -> bool:
    return raw.execute("SELECT 1 FROM api_tokens WHERE revoked_at IS NULL LIMIT 1").fetchone() is not None


def _check(raw: sqlite3.Connection, digest: str | None) -> TokenCheck:
    # once a token was created the API needs one, also after every token was revoked: revoking
    # the last token locks the API (create a new one), it never reopens it
    required = raw.execute("SELECT 1 FROM api_tokens LIMIT 1").fetchone() is not None
    if digest is None or not required:
        return TokenCheck(required, None)
    row = raw.execute(
        "SELECT id, CAST(last_used_at AS INTEGER) FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL",
        (digest,),
    ).fetchone()
    return TokenCheck(True, None) if row is None else TokenCheck(True, row[0], row[1])


def _touch(raw: sqlite3.Connection, token_id: str, at: int) -> None:
    raw.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (at, token_id))


class TokenStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, name: str) -> tuple[str, str]:
        """A new token named `name`: (id, token). The token is not stored: show it now or never."""
        for _ in range(5):  # an id collision (8 hex characters) is rare: draw again
            token_id, token = new_token()
            try:
                await self.db.write(_create, token_id, name, token_hash(token), now_ms())
            except sqlite3.IntegrityError:
                continue
            return token_id, token
        raise RuntimeError("cannot draw a unique token id")

    async def list(self) -> list[TokenRow]:
        return await self.db.run(_list)

    async def revoke(self, token_id: str) -> bool | None:
        """True: revoked now; False: it already was; None: no such token."""
        return await self.db.write(_revoke, token_id, now_ms())

    async def any_active(self) -> bool:
        return await self.db.run(_any_active)

    async def check(self, token: str | None) -> TokenCheck:
        """Whether tokens are required and which valid token (if any) `token` is; its last use
        is recorded (at most once a minute)."""
        result = await self.db.run(_check, None if token is None else token_hash(token))
        if result.token_id is not None:
            at = now_ms()
            if result.last_used_at is None or at - result.last_used_at >= LAST_USED_EVERY_MS:
                await self.db.write(_touch, result.token_id, at)
        return result
