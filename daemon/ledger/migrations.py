"""The ledger's migrations applied (:mod:`daemon.ledger.schema` lists them): those a ledger has
not had, in order, each in one transaction with its row in ``schema_migrations``; a ledger
newer than this carbond, or whose migration N is not this carbond's migration N, is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from daemon import killpoints
from daemon.ledger.errors import LedgerError
from daemon.ledger.schema import MIGRATIONS, SCHEMA_VERSION

__all__ = ["migrate", "refuse_foreign"]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def refuse_foreign(path: Path, done: dict[int, str]) -> None:
    """Refuse a ledger whose migration N is not this carbond's migration N (another build,
    a fork, a development branch that numbered its migrations otherwise): its tables are not
    the ones this carbond's later migrations and queries expect.

    Raises:
        LedgerError: naming the first migration that differs, both descriptions.
    """
    for version, description, _ in MIGRATIONS:
        if version in done and done[version] != description:
            raise LedgerError(
                f"{path}: migration {version} of this ledger is {done[version]!r}, not this "
                f"carbond's {description!r}: another build of carbond wrote it (a fork or a "
                "development branch); open it with that build, or start from a new state_dir"
            )


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Apply to the ledger ``db`` (the file at ``path``) every migration of
    :data:`~daemon.ledger.schema.MIGRATIONS` it has not had, each in its own transaction with
    its row in ``schema_migrations``.

    Raises:
        LedgerError: the ledger is newer than this carbond, another build wrote it
            (:func:`refuse_foreign`), or a migration failed (rolled back).
    """
    try:
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
            "description TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        done = dict(db.execute("SELECT version, description FROM schema_migrations").fetchall())
        if done and max(done) > SCHEMA_VERSION:
            raise LedgerError(
                f"{path}: schema version {max(done)} is newer than this carbond "
                f"({SCHEMA_VERSION}); upgrade carbond"
            )
        refuse_foreign(path, done)
        for version, description, script in MIGRATIONS:
            if version in done:
                continue
            db.executescript(
                "BEGIN IMMEDIATE;\n"
                + script
                + "\nINSERT INTO schema_migrations VALUES "
                + f"({version}, {_quote(description)}, strftime('%Y-%m-%dT%H:%M:%SZ'));\n"
                + f"PRAGMA user_version = {version};"
            )
            killpoints.reached("migration")
            db.execute("COMMIT")
    except sqlite3.Error as exc:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise LedgerError(f"{path}: migration failed: {exc}") from exc
