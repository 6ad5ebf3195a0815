"""The provider's state in its database (``eidcore.db``: SQLite, or PostgreSQL shared by
several provider processes behind a load balancer): signing keys, logins in progress,
authorization codes and access tokens. Secrets are kept as SHA-256 only (login ids,
browser cookies, return values, codes, tokens): a copy of the database logs nobody in.
Blocking; the server runs each call in a thread. A code is redeemed in one transaction
that locks its row, so two processes never both redeem it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from eidcore.db import Database, Row
from eidcore.db import open_database as _open
from oidc import jose

__all__ = ["Code", "Login", "OidcStore", "Redeemed", "digest"]

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS oidc_keys (
        kid TEXT PRIMARY KEY,
        alg TEXT NOT NULL,
        pem TEXT NOT NULL,
        created TEXT NOT NULL,
        retired TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS oidc_logins (
        id_hash TEXT PRIMARY KEY,
        browser_hash TEXT NOT NULL,
        request TEXT NOT NULL,
        created TEXT NOT NULL,
        order_ref TEXT,
        return_hash TEXT,
        returned INTEGER NOT NULL,
        phase TEXT NOT NULL,
        hint TEXT,
        result TEXT,
        autostart TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS oidc_logins_by_return ON oidc_logins (return_hash)",
    "CREATE INDEX IF NOT EXISTS oidc_logins_by_created ON oidc_logins (created)",
    """CREATE TABLE IF NOT EXISTS oidc_codes (
        code_hash TEXT PRIMARY KEY,
        client_id TEXT NOT NULL,
        grant_data TEXT NOT NULL,
        created TEXT NOT NULL,
        used INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS oidc_tokens (
        token_hash TEXT PRIMARY KEY,
        code_hash TEXT NOT NULL,
        client_id TEXT NOT NULL,
        grant_data TEXT NOT NULL,
        expires TEXT NOT NULL,
        revoked INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS oidc_tokens_by_code ON oidc_tokens (code_hash)",
    """CREATE TABLE IF NOT EXISTS oidc_assertions (
        jti_hash TEXT PRIMARY KEY,
        expires TEXT NOT NULL
    )""",
)

KEEP = dt.timedelta(hours=1)  # finished logins and spent codes are kept this long


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _t(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat()


def _dt(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@dataclass(frozen=True)
class Login:
    """A login page's state: the authorize request, the relay's order, whether this
    browser came back through the return URL, and the verified result."""

    id_hash: str
    browser_hash: str
    request: str  # rules.AuthRequest as JSON
    created: dt.datetime
    order_ref: str | None
    return_hash: str | None
    returned: bool
    phase: str  # new, started, complete, failed, done
    hint: str | None
    result: Mapping[str, object] | None
    # the order's autostart token, for the page's link while the order runs: it lets an
    # agent fetch the order, never finish a login (that needs this browser's return)
    autostart: str | None = None


def _login(row: Row) -> Login:
    return Login(
        row[0],
        row[1],
        row[2],
        _dt(row[3]),
        row[4],
        row[5],
        bool(row[6]),
        row[7],
        row[8],
        json.loads(row[9]) if row[9] else None,
        row[10],
    )


# the code's own column names: the f-strings below hold no input (S608)
_LOGIN = (
    "id_hash, browser_hash, request, created, order_ref, return_hash, returned, phase, "
    "hint, result, autostart"
)


@dataclass(frozen=True)
class Code:
    client_id: str
    grant: Mapping[str, object]  # what the token endpoint issues from
    created: dt.datetime


@dataclass(frozen=True)
class Redeemed:
    """A code's redemption: its grant, or ``replayed`` (it was redeemed before: every
    token issued from it is revoked now, RFC 6749 4.1.2)."""

    code: Code | None
    replayed: bool = False


class OidcStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    @classmethod
    def open(cls, url: str) -> OidcStore:
        """Raises: eidcore.db.DatabaseError."""
        return cls(_open(url, SCHEMA))

    def close(self) -> None:
        self._db.close()

    # -- keys ------------------------------------------------------------------------------

    def signing_keys(self) -> list[jose.SigningKey]:
        with self._db.read() as tx:
            rows = tx.all("SELECT kid, alg, pem, created, retired FROM oidc_keys ORDER BY created")
        return [
            jose.SigningKey(r[0], r[1], r[2].encode(), _dt(r[3]), _dt(r[4]) if r[4] else None)
            for r in rows
        ]

    def add_key(self, key: jose.SigningKey, *, retire_others: bool) -> None:
        """A new signing key; ``retire_others``: the current ones of its algorithm stop
        signing now (they stay in the JWKS until their tokens have expired)."""
        with self._db.transaction() as tx:
            tx.serialize("oidc-keys")
            if retire_others:
                tx.run(
                    "UPDATE oidc_keys SET retired = ? WHERE alg = ? AND retired IS NULL",
                    (_t(key.created), key.alg),
                )
            tx.run(
                "INSERT INTO oidc_keys (kid, alg, pem, created, retired) VALUES (?, ?, ?, ?, ?)",
                (key.kid, key.alg, key.pem.decode(), _t(key.created), None),
            )

    def ensure_key(self, alg: str, make: jose.SigningKey) -> None:
        """``make`` becomes the key for ``alg`` unless one signs already (first start,
        by whichever process gets there first)."""
        with self._db.transaction() as tx:
            tx.serialize("oidc-keys")
            row = tx.one("SELECT kid FROM oidc_keys WHERE alg = ? AND retired IS NULL", (alg,))
            if row is None:
                tx.run(
                    "INSERT INTO oidc_keys (kid, alg, pem, created, retired) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (make.kid, make.alg, make.pem.decode(), _t(make.created), None),
                )

    def drop_keys_retired_before(self, when: dt.datetime) -> int:
        with self._db.transaction() as tx:
            return tx.run(
                "DELETE FROM oidc_keys WHERE retired IS NOT NULL AND retired < ?", (_t(when),)
            )

    # -- logins ----------------------------------------------------------------------------

    def new_login(self, id_hash: str, browser_hash: str, request: str, now: dt.datetime) -> None:
        with self._db.transaction() as tx:
            tx.run(
                f"INSERT INTO oidc_logins ({_LOGIN}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                (id_hash, browser_hash, request, _t(now), None, None, 0, "new", None, None, None),
            )

    def login(self, id_hash: str) -> Login | None:
        with self._db.read() as tx:
            row = tx.one(f"SELECT {_LOGIN} FROM oidc_logins WHERE id_hash = ?", (id_hash,))  # noqa: S608
        return _login(row) if row else None

    def started(self, id_hash: str, order_ref: str, return_hash: str, autostart: str) -> bool:
        """The relay's order for a new login (a login starts one order only)."""
        with self._db.transaction() as tx:
            return (
                tx.run(
                    "UPDATE oidc_logins SET order_ref = ?, return_hash = ?, autostart = ?, "
                    "phase = 'started' WHERE id_hash = ? AND phase = 'new'",
                    (order_ref, return_hash, autostart, id_hash),
                )
                == 1
            )

    def update(
        self,
        id_hash: str,
        *,
        phase: str,
        hint: str | None,
        result: Mapping[str, object] | None = None,
    ) -> None:
        """The relay's word on a login's order, or the person's cancel (done and failed
        logins never change; a failed one forgets its link)."""
        with self._db.transaction() as tx:
            tx.run(
                "UPDATE oidc_logins SET phase = ?, hint = ?, result = COALESCE(?, result), "
                "autostart = CASE WHEN ? THEN autostart ELSE NULL END "
                "WHERE id_hash = ? AND phase IN ('new', 'started', 'complete')",
                (phase, hint, json.dumps(result) if result else None, phase == "started", id_hash),
            )

    def returned(self, return_hash: str, browser_hash: str) -> Login | None:
        """A browser came back through a return URL. The value is spent whoever brings
        it; the login is marked returned only for its own browser. None: unknown or spent."""
        with self._db.transaction() as tx:
            row = tx.one(
                f"SELECT {_LOGIN} FROM oidc_logins WHERE return_hash = ? {{lock}}",  # noqa: S608
                (return_hash,),
            )
            if row is None:
                return None
            login = _login(row)
            own = login.browser_hash == browser_hash
            tx.run(
                "UPDATE oidc_logins SET return_hash = NULL, returned = ?, "
                "phase = CASE WHEN ? THEN phase ELSE 'failed' END, "
                "hint = CASE WHEN ? THEN hint ELSE 'otherBrowser' END WHERE id_hash = ?",
                (1 if own else 0, own, own, login.id_hash),
            )
        return login if own else None

    def finish(
        self,
        id_hash: str,
        code_hash: str,
        client_id: str,
        grant: Mapping[str, object],
        now: dt.datetime,
    ) -> bool:
        """A complete login becomes an authorization code, once."""
        with self._db.transaction() as tx:
            done = tx.run(
                "UPDATE oidc_logins SET phase = 'done', autostart = NULL "
                "WHERE id_hash = ? AND phase = 'complete' AND returned = 1",
                (id_hash,),
            )
            if done != 1:
                return False
            tx.run(
                "INSERT INTO oidc_codes (code_hash, client_id, grant_data, created, used) "
                "VALUES (?, ?, ?, ?, 0)",
                (code_hash, client_id, json.dumps(grant), _t(now)),
            )
        return True

    # -- codes and tokens ------------------------------------------------------------------

    def redeem(self, code_hash: str, client_id: str) -> Redeemed:
        """The code's grant, once; a second redemption revokes what the first issued."""
        with self._db.transaction() as tx:
            row = tx.one(
                "SELECT client_id, grant_data, created, used FROM oidc_codes "
                "WHERE code_hash = ? {lock}",
                (code_hash,),
            )
            if row is None or row[0] != client_id:
                return Redeemed(None)
            if row[3]:
                tx.run("UPDATE oidc_tokens SET revoked = 1 WHERE code_hash = ?", (code_hash,))
                return Redeemed(None, replayed=True)
            tx.run("UPDATE oidc_codes SET used = 1 WHERE code_hash = ?", (code_hash,))
        return Redeemed(Code(row[0], json.loads(row[1]), _dt(row[2])))

    def add_token(
        self,
        token_hash: str,
        code_hash: str,
        client_id: str,
        grant: Mapping[str, object],
        expires: dt.datetime,
    ) -> None:
        with self._db.transaction() as tx:
            tx.run(
                "INSERT INTO oidc_tokens (token_hash, code_hash, client_id, grant_data, "
                "expires, revoked) VALUES (?, ?, ?, ?, ?, 0)",
                (token_hash, code_hash, client_id, json.dumps(grant), _t(expires)),
            )

    def token(self, token_hash: str, now: dt.datetime) -> Mapping[str, object] | None:
        """The grant of a live access token."""
        with self._db.read() as tx:
            row = tx.one(
                "SELECT grant_data, expires, revoked FROM oidc_tokens WHERE token_hash = ?",
                (token_hash,),
            )
        if row is None or row[2] or _dt(row[1]) <= now:
            return None
        grant: Mapping[str, object] = json.loads(row[0])
        return grant

    def assertion_seen(self, jti: str, expires: dt.datetime, now: dt.datetime) -> bool:
        """Whether a client assertion's ``jti`` was used before (then it is refused);
        records it until it expires."""
        with self._db.transaction() as tx:
            tx.run("DELETE FROM oidc_assertions WHERE expires < ?", (_t(now),))
            seen = tx.one("SELECT 1 FROM oidc_assertions WHERE jti_hash = ? {lock}", (digest(jti),))
            if seen is None:
                tx.run(
                    "INSERT INTO oidc_assertions (jti_hash, expires) VALUES (?, ?)",
                    (digest(jti), _t(expires)),
                )
        return seen is not None

    def sweep(self, now: dt.datetime) -> None:
        """Forget what is over: logins, codes and tokens past their use."""
        cutoff = _t(now - KEEP)
        with self._db.transaction() as tx:
            tx.run("DELETE FROM oidc_logins WHERE created < ?", (cutoff,))
            tx.run("DELETE FROM oidc_codes WHERE created < ?", (cutoff,))
            tx.run("DELETE FROM oidc_tokens WHERE expires < ?", (cutoff,))
