"""The ledger's share of a replay: the CPU time inside SQLite, and the rate it alone allows.

``python -m bench.ledger_share --jobs 10000 --days 0.7 --policy run-now,carbon-window`` replays
the synthetic workload of :mod:`bench.bench_replay` (its arguments), each policy on its own,
with the replay ledger's SQLite connection wrapped: ``time.process_time()`` around every
``execute`` and ``executemany`` (the statement parsed, its rows written or its first row read:
B-trees, indexes, triggers, foreign keys, the WAL). It prints, per policy, the replay's CPU
time, the part inside those calls, statements and rows per job by kind, and **SQLite's own
ceiling**: jobs / SQLite seconds, the rate no replay writing these rows through this ledger can
beat, whatever its Python costs. Rows of a ``SELECT`` after its first are read outside the
timed calls, so the SQLite time is a slight underestimate and the ceiling an upper bound.

The same decisions and rows: the connection is only wrapped, for these runs.
"""

from __future__ import annotations

import re
import sqlite3
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import bench_replay
from daemon.ledger import Ledger

__all__ = ["SqliteTime", "main", "timed_ledgers"]

_KIND = re.compile(
    r"^\s*(INSERT(?:\s+OR\s+\w+)?\s+INTO|UPDATE|DELETE\s+FROM|SELECT\b.*?\bFROM|\w+)\s*(\w*)",
    re.IGNORECASE | re.DOTALL,
)


def kind_of(sql: str) -> str:
    """``"INSERT INTO runs"``, ``"UPDATE jobs"``, ``"SELECT jobs"``, ``"COMMIT"``, ..."""
    match = _KIND.match(sql)
    if match is None:
        return sql.strip().split(None, 1)[0].upper() if sql.strip() else "?"
    verb, table = match.group(1).upper(), match.group(2)
    if verb.startswith("SELECT"):
        verb = "SELECT"
    verb = " ".join(verb.split())
    return f"{verb} {table}" if table and verb not in {"BEGIN", "COMMIT", "ROLLBACK"} else verb


class SqliteTime:
    """CPU seconds, statements and rows inside a connection's calls, per statement kind."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)  # Counter counts ints only
        self.statements: Counter[str] = Counter()
        self.rows: Counter[str] = Counter()

    @property
    def total_s(self) -> float:
        return sum(self.seconds.values())


class _TimedConnection:
    """A :class:`sqlite3.Connection` whose ``execute`` and ``executemany`` are timed."""

    def __init__(self, db: sqlite3.Connection, spent: SqliteTime) -> None:
        self._db = db
        self._spent = spent

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        t0 = time.process_time()
        try:
            return self._db.execute(sql, params)
        finally:
            self._count(sql, 1, time.process_time() - t0)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> sqlite3.Cursor:
        rows = list(rows)  # counted; built before the clock starts
        t0 = time.process_time()
        try:
            return self._db.executemany(sql, rows)
        finally:
            self._count(sql, len(rows), time.process_time() - t0)

    def _count(self, sql: str, rows: int, seconds: float) -> None:
        kind = kind_of(sql)
        self._spent.seconds[kind] += seconds
        self._spent.statements[kind] += 1
        self._spent.rows[kind] += rows

    def __getattr__(self, name: str) -> Any:  # in_transaction, close, executescript, ...
        return getattr(self._db, name)


@contextmanager
def timed_ledgers() -> Iterator[SqliteTime]:
    """Every :class:`Ledger` opened inside the block on a timed connection."""
    spent = SqliteTime()
    own = Ledger.__dict__.get("open")  # None: inherited, found on a base class again after
    original = Ledger.open

    def open_timed(
        cls: type[Ledger], path: Path, *, durable: bool = True, private: bool = False
    ) -> Ledger:
        ledger = original(path, durable=durable, private=private)
        ledger._db = _TimedConnection(ledger._db, spent)  # type: ignore[assignment]
        return ledger

    Ledger.open = classmethod(open_timed)  # type: ignore[method-assign,assignment]
    try:
        yield spent
    finally:
        if own is None:
            del Ledger.open
        else:
            Ledger.open = own  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> list[tuple[str, float, float, int]]:
    """Print and return, per policy, (label, replay CPU seconds, SQLite seconds, jobs)."""
    args = list(argv or [])
    policies = "run-now,carbon-window"
    if "--policy" in args:
        at = args.index("--policy")
        policies = args[at + 1]
        del args[at : at + 2]
    out = []
    for policy in policies.split(","):
        with timed_ledgers() as spent:
            ((label, elapsed, jobs),) = bench_replay.main([*args, "--policy", policy])
        sqlite_s = spent.total_s
        python_us = (elapsed - sqlite_s) / jobs * 1e6
        print(f"  {label}: SQLite {sqlite_s:.2f} s of {elapsed:.2f} s ({sqlite_s / elapsed:.0%}), "
              f"{sum(spent.statements.values()) / jobs:.1f} statements and "
              f"{sum(spent.rows.values()) / jobs:.1f} rows a job; SQLite alone allows "
              f"{jobs / sqlite_s:,.0f} jobs/s, the rest is {python_us:.0f} us a job")  # fmt: skip
        for kind, seconds in sorted(spent.seconds.items(), key=lambda kv: kv[1], reverse=True)[:8]:
            print(f"    {kind:<32} {seconds:6.2f} s  {spent.statements[kind] / jobs:5.2f} "
                  f"statements, {spent.rows[kind] / jobs:5.2f} rows a job")  # fmt: skip
        out.append((label, elapsed, sqlite_s, jobs))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
