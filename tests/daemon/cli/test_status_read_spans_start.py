"""``carbond status ID`` of a job the ledger does not have, read while a daemon starts: a daemon
started during the command's read and checkpointed into the ledger it read without locks (no
daemon ran when it began: ``daemon/ledger/readonly.py``). The command fails with one line, and
prints none of what it read (its output is held until the ledger is closed, as for ``jobs``).

Two real processes on one real ledger: the command reads as the CLI does, a second process
writes and checkpoints as a starting daemon does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from daemon.cli import main, status_cmd
from daemon.cli.unread import UnreadLookup
from daemon.ledger import Ledger
from tests.daemon.helpers import job_line

ROOT = Path(__file__).resolve().parents[3]
CHANGED = "the daemon started and wrote the ledger while this command read it"

# A daemon starting on the ledger: it writes (a job of its own), then checkpoints its WAL
# into the file in place as it closes.
_DAEMON = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from daemon.ledger import Ledger
from tests.daemon.helpers import job_request
now = datetime(2026, 1, 2, tzinfo=UTC)
with Ledger.open(Path(sys.argv[1])) as ledger, ledger.transaction():
    ledger.add_jobs([(job_request("started", now), 1000, 1000, "q:1", now)])
"""


@pytest.mark.parametrize("line", ["unread", "rejected"])
def test_status_prints_nothing_when_a_daemon_checkpoints_during_its_read(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    line: str,
) -> None:
    """``status`` of a job only in the caller's queue file (not read by the daemon) or only
    among its rejected lines printed that ("submitted to ..., not read by the daemon yet")
    while the ledger was still open, then failed as it closed: half an answer, then an error
    saying not to trust it. Now it prints the error alone."""
    Ledger.open(tmp_path / "ledger.db").close()  # a ledger, no daemon running
    assert not (tmp_path / "ledger.db-wal").exists()
    if line == "unread":
        (tmp_path / "queue.jsonl").write_text(job_line(id="fresh"))
    else:
        (tmp_path / "rejected.jsonl").write_text("")
        monkeypatch.setattr(
            status_cmd, "rejected_naming", lambda *_: [{"file": "queue.jsonl", "line_no": 1,
                                                         "reason": "bad"}]
        )  # fmt: skip
    lookup, started = status_cmd._lookup, []

    def daemon_starts_then_unread(settings: Any, job_id: str) -> UnreadLookup:
        if not started:  # the read has begun (the lookup found no such job): a daemon starts
            subprocess.run([sys.executable, "-c", _DAEMON, str(tmp_path / "ledger.db")],
                           check=True, cwd=ROOT)  # fmt: skip
            started.append(True)
        return lookup(settings, job_id) if line == "unread" else UnreadLookup(None, None)

    monkeypatch.setattr(status_cmd, "_lookup", daemon_starts_then_unread)
    code = main(["status", "fresh", "--state-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert (code, out) == (1, "")  # was: "fresh: submitted to ..." (or "rejected ..."), then
    assert CHANGED in err and len(err.splitlines()) == 1
    capsys.readouterr()
    assert main(["status", "fresh", "--state-dir", str(tmp_path)]) == (
        0 if line == "unread" else 2
    )  # run again: the answer, from the ledger the daemon wrote
    assert "fresh" in capsys.readouterr().out
