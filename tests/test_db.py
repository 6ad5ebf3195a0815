"""The SQLite store under threads, as the relay and the issuer use it: writers in one
process queue on the process's own lock instead of polling SQLite's, lose nothing, and
a writer that fails lets the next one in."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from eidcore import db
from eidcore.db import DatabaseError, open_database

SCHEMA = ("CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, n INTEGER)",)


def _database(tmp_path: Path) -> db.Database:
    database = open_database(f"sqlite:///{tmp_path / 'd.db'}", SCHEMA)
    with database.transaction() as tx:
        tx.run("INSERT INTO counter VALUES (1, 0)")
    return database


def _count(database: db.Database) -> int:
    with database.read() as tx:
        row = tx.one("SELECT n FROM counter WHERE id = 1")
    assert row is not None
    return int(row[0])


def test_writers_in_one_process_never_meet_sqlites_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no busy wait at all, a second writer would fail at once with "database is
    locked" while the first holds its transaction: it waits for it instead."""
    monkeypatch.setattr(db, "BUSY_TIMEOUT", 0.0)
    database = _database(tmp_path)
    holding, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def first() -> None:
        with database.transaction() as tx:
            tx.run("UPDATE counter SET n = n + 1 WHERE id = 1")
            holding.set()
            release.wait(10)

    def second() -> None:
        try:
            with database.transaction() as tx:
                tx.run("UPDATE counter SET n = n * 10 WHERE id = 1")
        except DatabaseError as exc:
            failures.append(exc)

    a = threading.Thread(target=first)
    a.start()
    assert holding.wait(10)
    b = threading.Thread(target=second)
    b.start()
    b.join(0.2)  # without the queue it has failed by now
    assert b.is_alive() and not failures
    release.set()
    a.join(10)
    b.join(10)
    assert not failures
    assert _count(database) == 10  # in order: +1, then ×10
    database.close()


def test_no_update_is_lost_among_threads(tmp_path: Path) -> None:
    database = _database(tmp_path)

    def bump() -> None:
        for _ in range(25):
            with database.transaction() as tx:
                row = tx.one("SELECT n FROM counter WHERE id = 1")
                assert row is not None
                tx.run("UPDATE counter SET n = ? WHERE id = 1", (row[0] + 1,))

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert _count(database) == 200
    database.close()


def test_a_writer_that_fails_rolls_back_and_lets_the_next_in(tmp_path: Path) -> None:
    database = _database(tmp_path)

    class Refused(Exception):
        pass

    with pytest.raises(Refused), database.transaction() as tx:
        tx.run("UPDATE counter SET n = 99 WHERE id = 1")
        raise Refused
    done = threading.Event()

    def next_writer() -> None:
        with database.transaction() as tx:
            tx.run("UPDATE counter SET n = n + 1 WHERE id = 1")
        done.set()

    threading.Thread(target=next_writer).start()
    assert done.wait(10)
    assert _count(database) == 1
    database.close()
