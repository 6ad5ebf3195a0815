"""The relay's orders in its database (``eidcore.db``: SQLite, or PostgreSQL for several
relay processes). Blocking; the server runs each call in a thread. Every change is one
transaction that reads the row with a lock, applies a pure rule and writes the row back,
so two processes never both hand out one autostart token."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Collection
from dataclasses import replace

from eidcore.db import AddColumn, Database, Row, Transaction
from eidcore.db import open_database as _open
from eidcore.signeddata import OrderKind
from relay.rules import KEEP_FINISHED, Phase, RelayOrder, current, token_hash

__all__ = ["OrderStore"]

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS relay_orders (
        ref TEXT PRIMARY KEY,
        party TEXT NOT NULL,
        kind TEXT NOT NULL,
        nonce TEXT NOT NULL,
        token_hash TEXT,
        created TEXT NOT NULL,
        end_user_ip TEXT NOT NULL,
        phase TEXT NOT NULL,
        visible TEXT,
        visible_format TEXT NOT NULL,
        non_visible TEXT,
        return_url TEXT,
        personal_number TEXT,
        token_kinds TEXT NOT NULL,
        agent_hash TEXT,
        finished TEXT,
        completion TEXT
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS relay_orders_by_token ON relay_orders (token_hash)",
    "CREATE INDEX IF NOT EXISTS relay_orders_by_created ON relay_orders (created)",
    AddColumn("relay_orders", "call_initiator", "TEXT"),  # phone orders (issue #29)
    AddColumn("relay_orders", "pin_pad", "INTEGER"),  # cardReader class2
    "CREATE INDEX IF NOT EXISTS relay_orders_by_person ON relay_orders (personal_number)",
    """CREATE TABLE IF NOT EXISTS relay_challenges (
        challenge_hash TEXT PRIMARY KEY,
        expires TEXT NOT NULL
    )""",
)

_COLUMNS = (
    "ref, party, kind, nonce, token_hash, created, end_user_ip, phase, visible, "
    "visible_format, non_visible, return_url, personal_number, token_kinds, "
    "agent_hash, finished, completion, call_initiator, pin_pad"
)


def _t(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value is not None else None


def _row(order: RelayOrder) -> tuple[object, ...]:
    return (
        order.ref,
        order.party,
        order.kind.value,
        base64.b64encode(order.nonce).decode(),
        order.token_hash,
        _t(order.created),
        order.end_user_ip,
        order.phase.name,
        order.visible,
        order.visible_format,
        None if order.non_visible is None else base64.b64encode(order.non_visible).decode(),
        order.return_url,
        order.personal_number,
        ",".join(order.token_kinds),
        order.agent_hash,
        _t(order.finished),
        order.completion,
        order.call_initiator,
        1 if order.pin_pad else 0,
    )


def _order(row: Row) -> RelayOrder:
    (
        ref,
        party,
        kind,
        nonce,
        token,
        created,
        ip,
        phase,
        visible,
        fmt,
        non_visible,
        url,
        pnr,
        kinds,
        agent,
        finished,
        completion,
        call_initiator,
        pin_pad,
    ) = row
    return RelayOrder(
        ref=ref,
        party=party,
        kind=OrderKind(kind),
        nonce=base64.b64decode(nonce),
        token_hash=token,
        created=dt.datetime.fromisoformat(created),
        end_user_ip=ip,
        phase=Phase[phase],
        visible=visible,
        visible_format=fmt,
        non_visible=None if non_visible is None else base64.b64decode(non_visible),
        return_url=url,
        personal_number=pnr,
        token_kinds=tuple(k for k in kinds.split(",") if k),
        agent_hash=agent,
        finished=None if finished is None else dt.datetime.fromisoformat(finished),
        completion=completion,
        call_initiator=call_initiator,
        pin_pad=bool(pin_pad),
    )


class OrderStore:
    def __init__(self, url: str) -> None:
        """Raises: DatabaseError."""
        self._db: Database = _open(url, SCHEMA)

    @property
    def kind(self) -> str:
        return self._db.kind

    def close(self) -> None:
        self._db.close()

    def add(self, order: RelayOrder) -> None:
        marks = ", ".join("?" * len(_row(order)))
        with self._db.transaction() as tx:
            tx.run(f"INSERT INTO relay_orders ({_COLUMNS}) VALUES ({marks})", _row(order))  # noqa: S608

    def add_alone(
        self, order: RelayOrder, cancel: Callable[[RelayOrder], RelayOrder], now: dt.datetime
    ) -> list[str]:
        """Add ``order`` unless its party has an order pending for the same personal
        number: then that one is cancelled (``cancel``), its refs are returned and
        ``order`` is not added (BankID's ``alreadyInProgress``). One transaction,
        serialized per party and person: two starts at once, on two processes, cannot
        both pass (there is no row to lock yet)."""
        with self._db.transaction() as tx:
            if order.personal_number is not None:
                tx.serialize(f"relay-person\n{order.party}\n{order.personal_number}")
                rows = tx.all(
                    f"SELECT {_COLUMNS} FROM relay_orders "  # noqa: S608
                    "WHERE party = ? AND personal_number = ?{lock}",
                    (order.party, order.personal_number),
                )
                busy = [o for o in map(_order, rows) if current(o, now).phase.pending]
                if busy:
                    for other in busy:
                        self._write(tx, other, cancel, now)
                    return [o.ref for o in busy]
            marks = ", ".join("?" * len(_row(order)))
            tx.run(f"INSERT INTO relay_orders ({_COLUMNS}) VALUES ({marks})", _row(order))  # noqa: S608
            return []

    def get(self, ref: str, now: dt.datetime) -> RelayOrder | None:
        with self._db.read() as tx:
            row = tx.one(f"SELECT {_COLUMNS} FROM relay_orders WHERE ref = ?", (ref,))  # noqa: S608
        return None if row is None else current(_order(row), now)

    def ended_among(self, refs: Collection[str], now: dt.datetime) -> set[str]:
        """Which of ``refs`` are no longer pending at ``now`` (ended, by time too, or
        gone): one read per 500, for the agents' channels this process holds."""
        ended, refs = set(refs), list(refs)
        for at in range(0, len(refs), 500):
            part = refs[at : at + 500]
            marks = ", ".join("?" * len(part))
            with self._db.read() as tx:
                rows = tx.all(
                    f"SELECT {_COLUMNS} FROM relay_orders WHERE ref IN ({marks})",  # noqa: S608
                    tuple(part),
                )
            ended -= {o.ref for o in (current(_order(r), now) for r in rows) if o.phase.pending}
        return ended

    def by_token(
        self, token_hash: str, change: Callable[[RelayOrder], RelayOrder], now: dt.datetime
    ) -> RelayOrder | None:
        """The order this token starts, after ``change`` (which raises to refuse): in one
        locked transaction, so one token starts one agent's order, once."""
        with self._db.transaction() as tx:
            row = tx.one(
                f"SELECT {_COLUMNS} FROM relay_orders WHERE token_hash = ?{{lock}}",  # noqa: S608
                (token_hash,),
            )
            if row is None:
                return None
            return self._write(tx, _order(row), change, now)

    def change(
        self, ref: str, change: Callable[[RelayOrder], RelayOrder], now: dt.datetime
    ) -> RelayOrder | None:
        """The order after ``change`` (which raises to refuse; nothing is then written)."""
        with self._db.transaction() as tx:
            row = tx.one(f"SELECT {_COLUMNS} FROM relay_orders WHERE ref = ?{{lock}}", (ref,))  # noqa: S608
            if row is None:
                return None
            return self._write(tx, _order(row), change, now)

    def sweep(self, now: dt.datetime) -> int:
        """Forget orders older than their life and the time a result stays collectable,
        and challenges no longer good."""
        cutoff = now - KEEP_FINISHED
        with self._db.transaction() as tx:
            tx.run("DELETE FROM relay_challenges WHERE expires < ?", (_t(now),))
            return tx.run("DELETE FROM relay_orders WHERE created < ?", (_t(cutoff),))

    def add_challenge(self, challenge_hash: str, expires: dt.datetime) -> None:
        with self._db.transaction() as tx:
            tx.run(
                "INSERT INTO relay_challenges (challenge_hash, expires) VALUES (?, ?)",
                (challenge_hash, _t(expires)),
            )

    def take_challenge(self, challenge_hash: str, now: dt.datetime) -> bool:
        """Whether the challenge was issued and is still good; either way it is gone."""
        with self._db.transaction() as tx:
            row = tx.one(
                "SELECT expires FROM relay_challenges WHERE challenge_hash = ?{lock}",
                (challenge_hash,),
            )
            if row is None:
                return False
            tx.run("DELETE FROM relay_challenges WHERE challenge_hash = ?", (challenge_hash,))
            return dt.datetime.fromisoformat(row[0]) > now

    def waiting_for(
        self, numbers: Collection[str], new_token: Callable[[], str], now: dt.datetime
    ) -> list[tuple[RelayOrder, str]]:
        """The phone orders waiting for these personal numbers, each with a new autostart
        token (the one before, if any, starts nothing now): one locked transaction."""
        if not numbers:
            return []
        marks = ", ".join("?" * len(numbers))
        found = []
        with self._db.transaction() as tx:
            rows = tx.all(
                f"SELECT {_COLUMNS} FROM relay_orders "  # noqa: S608
                f"WHERE call_initiator IS NOT NULL AND personal_number IN ({marks}){{lock}}",
                tuple(numbers),
            )
            for row in rows:
                order = _order(row)
                if current(order, now).phase is not Phase.OUTSTANDING:
                    continue
                token = new_token()

                def with_token(o: RelayOrder, digest: str = token_hash(token)) -> RelayOrder:
                    return replace(o, token_hash=digest)

                found.append((self._write(tx, order, with_token, now), token))
        return found

    @staticmethod
    def _write(
        tx: Transaction,
        before: RelayOrder,
        change: Callable[[RelayOrder], RelayOrder],
        now: dt.datetime,
    ) -> RelayOrder:
        after = change(current(before, now))
        if after.phase.pending is False and after.token_hash is not None:
            after = replace(after, token_hash=None)  # an ended order's token starts nothing
        if after != before:
            sets = ", ".join(f"{c} = ?" for c in _COLUMNS.split(", ")[1:])
            tx.run(f"UPDATE relay_orders SET {sets} WHERE ref = ?", (*_row(after)[1:], after.ref))  # noqa: S608
        return after
