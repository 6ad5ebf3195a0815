"""The issuer's tables, on the kernel's database seam (``eidcore.db``: SQLite or
PostgreSQL, the same SQL written once)."""

from __future__ import annotations

from eidcore.db import Database, DatabaseError, Transaction
from eidcore.db import open_database as _open

__all__ = ["Database", "DatabaseError", "Transaction", "open_database"]

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS orders (
        id TEXT PRIMARY KEY,
        personal_number TEXT NOT NULL,
        name TEXT NOT NULL,
        code_hash TEXT NOT NULL,
        state TEXT NOT NULL,
        tries INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        secret_hash TEXT,
        key_ids TEXT,
        identification_pem TEXT,
        signature_pem TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS orders_by_person ON orders (personal_number, created_at)",
    """CREATE TABLE IF NOT EXISTS certificates (
        serial TEXT PRIMARY KEY,
        order_id TEXT NOT NULL,
        personal_number TEXT NOT NULL,
        purpose TEXT NOT NULL,
        not_before TEXT NOT NULL,
        not_after TEXT NOT NULL,
        revoked_at TEXT,
        reason TEXT,
        pem TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS certificates_by_person ON certificates (personal_number)",
)


def open_database(url: str) -> Database:
    """Raises: DatabaseError (cannot be opened, or the schema cannot be created)."""
    return _open(url, SCHEMA)
