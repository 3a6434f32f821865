"""A ``carbond`` command piped into a pager that sits on its first page while the daemon goes
on writing: shared by the tests that its ledger read ends before its output is written (the
``jobs`` and ``export`` commands', ``report``'s)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["output_under_a_writing_daemon"]

ROOT = Path(__file__).resolve().parents[2]


def output_under_a_writing_daemon(state: Path, argv: Sequence[str], first: bytes) -> bytes:
    """All of ``carbond ARGV --state-dir STATE --config STATE/carbond.toml``'s stdout, read as a
    pager would: its first byte (which must start with ``first``), then nothing until the
    daemon (another connection, WAL mode, no automatic checkpoints) has written a row and
    checkpointed with ``TRUNCATE``, which must not be blocked by a reader; then the rest.
    The command must exit 0. ``STATE/carbond.toml`` must exist."""
    daemon = sqlite3.connect(state / "ledger.db", isolation_level=None)  # the daemon's
    try:
        assert daemon.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
        daemon.execute("PRAGMA wal_autocheckpoint=0")
        daemon.execute("CREATE TABLE IF NOT EXISTS daemon_writes (n INTEGER)")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        command = subprocess.Popen(
            [sys.executable, "-m", "daemon", *argv, "--state-dir", str(state),
             "--config", str(state / "carbond.toml")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=state, bufsize=0,
        )  # fmt: skip
        try:
            assert command.stdout is not None
            head = command.stdout.read(1)  # the pager shows its first page, and waits
            assert head and head.startswith(first), command.communicate()[1]
            daemon.execute("INSERT INTO daemon_writes VALUES (1)")  # the daemon goes on
            daemon.execute("PRAGMA busy_timeout=200")
            busy, _, _ = daemon.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            assert busy == 0  # no reader left in the WAL
            rest, err = command.communicate(timeout=60)
            assert command.returncode == 0, err
        finally:
            if command.poll() is None:
                command.kill()
            command.communicate()  # closes its pipes
    finally:
        daemon.close()
    return bytes(head + rest)
