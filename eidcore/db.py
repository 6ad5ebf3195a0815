"""A server's database — the issuer's, the order relay's: SQLite (one file, WAL; the
embedded default) or PostgreSQL (several processes on one database). The only importer
of psycopg, and only when a PostgreSQL URL is opened: the agent and the rp kit never load
it.

Both speak the same SQL, written once with ``?`` placeholders and a ``{lock}`` marker for
row locks; the PostgreSQL side turns those into ``%s`` and ``FOR UPDATE``. Every call is
blocking; the server runs them in threads. A transaction is one ``with db.transaction()``:
SQLite takes the write lock at its start (BEGIN IMMEDIATE), PostgreSQL locks the rows a
``{lock}`` query reads, so two processes never both count the same wrong try. Reads that
change nothing use ``db.read()``, which takes no write lock.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from eidcore.atomicfile import private_file

__all__ = ["AddColumn", "Database", "DatabaseError", "Transaction", "open_database"]

Row = tuple[Any, ...]
BUSY_TIMEOUT = 30.0  # seconds a SQLite writer waits for another process's transaction


@dataclass(frozen=True)
class AddColumn:
    """A schema step for a table that already exists in older databases: the column is
    added where it is missing (SQLite has no ``ADD COLUMN IF NOT EXISTS``). Names are the
    code's own, never input."""

    table: str
    column: str
    type: str

    def sqlite(self, tx: Transaction) -> None:
        names = {row[1] for row in tx.all(f"PRAGMA table_info({self.table})")}
        if self.column not in names:
            tx.run(f"ALTER TABLE {self.table} ADD COLUMN {self.column} {self.type}")

    def postgresql(self) -> str:
        return f"ALTER TABLE {self.table} ADD COLUMN IF NOT EXISTS {self.column} {self.type}"


Schema = Sequence[str | AddColumn]


class DatabaseError(Exception):
    """The database cannot be reached or refused the statement."""


class Transaction(Protocol):
    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...
    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...
    def run(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    def serialize(self, key: str) -> None:
        """Transactions that call this with the same ``key`` run one after another, for
        a rule about rows that may not exist yet (no row to lock): PostgreSQL's
        transaction-scoped advisory lock; SQLite's writers are serialized already."""


class Database(Protocol):
    kind: str  # "sqlite" or "postgresql"

    def transaction(self) -> contextlib.AbstractContextManager[Transaction]: ...
    def read(self) -> contextlib.AbstractContextManager[Transaction]: ...
    def close(self) -> None: ...


def open_database(url: str, schema: Schema) -> Database:
    """``sqlite:///path/to/file.db``, a bare path, or ``postgresql://...``; ``schema`` is
    run at open (``CREATE … IF NOT EXISTS`` statements, and ``AddColumn`` steps).

    Raises:
        DatabaseError: cannot be opened or the schema cannot be created.
    """
    if url.startswith(("postgresql://", "postgres://")):
        return _Postgres(url, schema)
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    return _Sqlite(Path(path), schema)


# -- SQLite --------------------------------------------------------------------------------


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row = self._conn.execute(sql.replace("{lock}", ""), tuple(params)).fetchone()
        return tuple(row) if row is not None else None

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        rows = self._conn.execute(sql.replace("{lock}", ""), tuple(params)).fetchall()
        return [tuple(r) for r in rows]

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._conn.execute(sql.replace("{lock}", ""), tuple(params)).rowcount

    def serialize(self, key: str) -> None:
        return None  # BEGIN IMMEDIATE: one writer at a time already


class _Sqlite:
    kind = "sqlite"

    def __init__(self, path: Path, schema: Schema) -> None:
        self._path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        # This process's writers queue here and wake the moment the one before commits;
        # contending inside SQLite instead, each loser sleeps in its busy handler (1, 2,
        # 5, 10… ms between tries): the relay's orders/s rose by ~18% with the queue.
        # Other processes on the same file still meet SQLite's lock and its handler.
        self._writer = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Names and personal numbers: owner-only wherever the URL points (SQLite would
            # create it under the umask; its journal files copy the database's mode).
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            private_file(path)
            with self.transaction() as tx:
                for statement in schema:
                    if isinstance(statement, AddColumn):
                        statement.sqlite(tx)
                    else:
                        tx.run(statement)
        except (sqlite3.Error, OSError) as exc:
            raise DatabaseError(f"SQLite {path}: {exc}") from None

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # one connection per thread; autocommit mode, transactions are explicit
            conn = sqlite3.connect(
                self._path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # what was answered survives a crash
            self._local.conn = conn
            with self._guard:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._writer, self._begin("BEGIN IMMEDIATE") as tx:
            yield tx

    def read(self) -> contextlib.AbstractContextManager[Transaction]:
        # a deferred BEGIN takes no write lock: readers never wait for each other in WAL
        # mode (an IMMEDIATE one made concurrent OCSP lookups sleep in SQLite's busy loop)
        return self._begin("BEGIN")

    @contextlib.contextmanager
    def _begin(self, statement: str) -> Iterator[Transaction]:
        conn = self._conn()
        try:
            conn.execute(statement)
        except sqlite3.Error as exc:
            raise DatabaseError(str(exc)) from None
        try:
            yield _SqliteTx(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise DatabaseError(str(exc)) from None

    def close(self) -> None:
        with self._guard:
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()


# -- PostgreSQL ----------------------------------------------------------------------------


def _pg_sql(sql: str) -> str:
    return sql.replace("?", "%s").replace("{lock}", " FOR UPDATE")


class _PgTx:
    def __init__(self, cursor: Any) -> None:
        self._cur = cursor

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        self._cur.execute(_pg_sql(sql), tuple(params))
        row = self._cur.fetchone()
        return tuple(row) if row is not None else None

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self._cur.execute(_pg_sql(sql), tuple(params))
        return [tuple(r) for r in self._cur.fetchall()]

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._cur.execute(_pg_sql(sql), tuple(params))
        return int(self._cur.rowcount)

    def serialize(self, key: str) -> None:
        self._cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))


class _Postgres:
    """Connections from psycopg_pool (the psycopg project's own pool): at most POOL per
    process; a connection that broke is checked and replaced before it is handed out."""

    kind = "postgresql"
    POOL = 8

    def __init__(self, url: str, schema: Schema) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self._psycopg = psycopg
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=self.POOL,
            open=False,
            timeout=30,
            kwargs={"connect_timeout": 10},
            check=ConnectionPool.check_connection,
        )
        try:
            self._pool.open(wait=True, timeout=15)  # the database is there, or say so
        except psycopg.Error as exc:
            self._pool.close()
            raise DatabaseError(f"PostgreSQL: {exc}") from None
        try:
            with self.transaction() as tx:
                # several issuer processes may start at once: one creates the schema
                tx.run("SELECT pg_advisory_xact_lock(24721)")
                for statement in schema:
                    if isinstance(statement, AddColumn):
                        tx.run(statement.postgresql())
                    else:
                        tx.run(statement)
        except DatabaseError:
            self._pool.close()
            raise

    def read(self) -> contextlib.AbstractContextManager[Transaction]:
        return self.transaction()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        try:
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
                yield _PgTx(cursor)
        except self._psycopg.Error as exc:  # PoolTimeout is one: no connection in 30 s
            raise DatabaseError(f"PostgreSQL: {exc}") from None

    def close(self) -> None:
        self._pool.close()
