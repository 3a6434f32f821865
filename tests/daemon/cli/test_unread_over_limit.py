"""Root's ``carbond jobs`` and ``status`` of spool files beyond ``queue.max_files_per_user``:
a pass reads at most that many of one owner's files (:mod:`daemon.queue.spool`), so the rest
are read at a later pass, after every file of the passes before: their lines are listed there,
as held for that reason, as the daemon will read them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.cli.cli_run import run_cli
from tests.daemon.helpers import job_line, make_service
from tests.daemon.users import user_with_uid

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="root lists every user's files")

ALICE, BOB = 14242, 14343  # as tests/daemon/cli/test_cancel_unread.py's
LIMIT = 2
HELD = "held: over queue.max_files_per_user"


@pytest.fixture(autouse=True)
def _owners_have_passwd_entries() -> None:
    """Real submitters have one; a file of an owner without one is held for that instead."""
    for uid in (ALICE, BOB):
        user_with_uid(uid)


def _spool_file(state: Path, name: str, uid: int, text: str) -> Path:
    path = state / "queue.d" / name
    path.write_text(text)
    os.chown(path, uid, uid)
    path.chmod(0o644)
    return path


def test_roots_view_lists_a_file_over_the_limit_at_the_pass_that_reads_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alice has three spool files and the limit is two: the first pass reads her
    ``14242.jsonl`` (her own name first) and ``14242.1.jsonl``, with Bob's ``14343.jsonl``;
    her ``14242.2.jsonl`` waits for the second pass. Root's ``jobs`` took every file by name,
    so ``14242.2.jsonl``'s ``x`` took the id before Bob's (the daemon takes Bob's and rejects
    hers) and the cancel of ``late`` in ``14242.jsonl`` counted though the daemon reads it
    before ``late``'s line (it rejects it: unknown job). Now ``jobs`` lists Bob's ``x`` and
    then ``late``, held for the limit and not cancelled; ``status`` says when it is read; and
    the daemon's ledger agrees, pass by pass."""
    monkeypatch.setenv("CARBOND_QUEUE__MAX_FILES_PER_USER", str(LIMIT))
    clock = FakeClock()
    service = make_service(tmp_path, RecordingExecutor(auto_finish=False),
                           max_files_per_user=LIMIT)  # fmt: skip
    service.start(clock())
    service.close()  # the daemon is down from here on
    service.ledger.close()
    _spool_file(tmp_path, f"{ALICE}.jsonl", ALICE, job_line(id="a0") + '{"cancel": "late"}\n')
    _spool_file(tmp_path, f"{ALICE}.1.jsonl", ALICE, job_line(id="a1"))
    late = _spool_file(tmp_path, f"{ALICE}.2.jsonl", ALICE,
                       job_line(id="x", name="alices x") + job_line(id="late"))  # fmt: skip
    bobs = _spool_file(tmp_path, f"{BOB}.jsonl", BOB, job_line(id="x", name="bobs x"))

    code, out, err = run_cli(capsys, "jobs", "--state-dir", str(tmp_path), "--json")
    assert code == 0, err
    rows = {row["job_id"]: row for row in json.loads(out)}
    listed = [(r["job_id"], r["uid"], Path(r["queue_file"]).name) for r in json.loads(out)]
    assert listed == [("a1", ALICE, f"{ALICE}.1.jsonl"), ("a0", ALICE, f"{ALICE}.jsonl"),
                      ("x", BOB, bobs.name), ("late", ALICE, late.name)]  # fmt: skip
    assert [rows[j]["held"] for j in ("a1", "a0", "x")] == [None, None, None]
    assert rows["late"]["held"].startswith(HELD)
    assert rows["late"]["held"].startswith(
        f"{HELD} ({LIMIT}): queue.d holds 3 files of uid {ALICE}"
    )
    assert rows["late"]["held"].endswith("at its pass 2 from now, after the others")
    assert rows["late"]["cancel_requested"] is False
    code, out, err = run_cli(capsys, "jobs", "--state-dir", str(tmp_path))
    assert code == 0, err
    [shown] = [line for line in out.splitlines() if line.startswith("| late ")]
    assert f"| submitted ({HELD}) |" in shown

    code, out, err = run_cli(capsys, "status", "late", "--state-dir", str(tmp_path))
    assert code == 0, err
    assert (
        out.startswith(f"late: submitted to {late} (")
        and f"not read by the daemon yet: {HELD}" in out
    )
    code, out, err = run_cli(capsys, "status", "x", "--state-dir", str(tmp_path), "--json")
    assert code == 0, err
    assert (json.loads(out)["queue_file"], json.loads(out)["held"]) == (str(bobs), None)
    code, out, err = run_cli(capsys, "cancel", "a1", "--state-dir", str(tmp_path), "--json")
    assert (code, json.loads(out)["held"]) == (0, None), err  # read at the next pass
    # its cancel goes after its line: it takes effect at the pass that reads that file
    code, out, err = run_cli(capsys, "cancel", "late", "--state-dir", str(tmp_path))
    assert code == 0, err
    assert out.startswith(f"cancel requested for late (not read by the daemon yet: {HELD} (")
    assert "at its pass 2 from now" in out and "it takes effect when the daemon reads" in out

    service = make_service(tmp_path, RecordingExecutor(auto_finish=False),
                           max_files_per_user=LIMIT)  # fmt: skip
    service.start(clock())
    first = service.ingest(clock())
    clock.advance(2)
    second = service.ingest(clock())
    jobs = {job.job_id: job for job in service.ledger.iter_jobs([])}
    service.close()
    assert sorted(first.accepted) == ["a0", "a1", "x"] and second.accepted == ("late",)
    assert (first.cancels, second.cancels) == (("a1",), ("late",))
    assert (jobs["x"].uid, jobs["x"].name) == (BOB, "bobs x")
    assert jobs["a1"].cancel_requested_at is not None
    # the first cancel line, read before its job's, was rejected; root's, after it, is not
    assert jobs["late"].cancel_requested_at is not None
