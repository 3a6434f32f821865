"""``carbond jobs`` and ``carbond export TABLE -`` into a pager: the ledger's read ends before
stdout is written (``held_stdout``, as ``carbond report``), so a reader that is slow (``less``
left open) never holds back the daemon's WAL checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import append, job_line, make_service
from tests.daemon.pager import output_under_a_writing_daemon

JOBS = 600  # each command's output well past a pipe's 64 KiB and stdout's buffer


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state dir whose ledger holds :data:`JOBS` queued jobs, and an empty config."""
    root = tmp_path_factory.mktemp("pager")
    service = make_service(root, RecordingExecutor(auto_finish=False))
    service.start(FakeClock()())
    append(service.queue.path, "".join(job_line(id=f"job-{k:04d}") for k in range(JOBS)))
    service.ingest(FakeClock()())
    service.ledger.close()
    (root / "carbond.toml").write_text("")
    return root


@pytest.mark.parametrize(
    ("argv", "first", "count"),
    [
        (("jobs", "--json"), b"[", b'"job_id": '),
        (("jobs", "--limit", str(JOBS)), b"", b"\n| job-"),  # the table, as piped: ASCII
        (("export", "jobs", "-"), b"j", b"\njob-"),
        (("export", "jobs", "-", "--format", "json"), b"[", b'"job_id": '),
    ],
    ids=["jobs-json", "jobs-table", "export-csv", "export-json"],
)
def test_output_nobody_reads_yet_does_not_hold_the_ledger_open(
    state: Path, argv: tuple[str, ...], first: bytes, count: bytes
) -> None:
    """``jobs --json`` wrote each job to stdout as it read it from an open cursor, and
    ``export jobs -`` each row: piped into a pager that sat on its first page, the command
    blocked on the full pipe inside a read transaction, which kept the daemon's
    ``wal_checkpoint`` from resetting the WAL (it grew) for as long as the pager stayed open.
    Now the output is read whole and the ledger closed before the first byte is written."""
    output = output_under_a_writing_daemon(state, argv, first)
    assert output.count(count) == JOBS  # every job
