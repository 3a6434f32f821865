"""``rejected.jsonl`` is readable by every user: it never copies the text of a line from a queue
file others cannot read."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import structlog

from daemon.cli import main
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import job_line, make_service, spool_file
from tests.daemon.users import user_with_uid

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="spool files owned by other uids")

# uids without a daemon of their own: files owned by them (users made for them, with no
# other test's uid, which may expect no passwd entry: tests/daemon/users.py user_with_uid)
ALICE, BOB = 14242, 14343
SECRET = "hf_SECRET-token-in-the-env"


@pytest.fixture(autouse=True)
def _owners_have_passwd_entries() -> None:
    """Real submitters have one; a file of an owner without one is not read (its group is
    unknown): tests/daemon/queue/test_owner_lookup.py."""
    for uid in (ALICE, BOB):
        user_with_uid(uid)


def test_a_private_files_rejected_line_is_not_copied_for_everyone_to_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused line's first 4 KiB went to ``rejected.jsonl`` (0644) whatever file it came
    from, so a line of a user's private 0600 spool file (an ``env`` with a token, say) was
    readable by every user there. Its text is now left out (``"line": null``); the file, line
    number, reason and the id it named stay, for ``carbond jobs --state rejected`` and
    ``carbond status``. A line from a file anyone can read keeps its text."""
    bad = job_line(id="hers", env={"HF_TOKEN": SECRET}, requests=0)
    spool_file(tmp_path, ALICE, bad, 0o600)
    spool_file(tmp_path, BOB, job_line(id="his", requests=0), 0o644)
    clock = FakeClock()
    service = make_service(tmp_path, RecordingExecutor())
    service.start(clock())
    service.tick(clock())

    rejected = tmp_path / "rejected.jsonl"
    assert stat.S_IMODE(rejected.stat().st_mode) & 0o004  # every user reads their own lines
    assert SECRET not in rejected.read_text()
    assert main(["jobs", "--state", "rejected", "--state-dir", str(tmp_path), "--json"]) == 0
    rows = {r["uid"]: r for r in json.loads(capsys.readouterr().out)}
    hers, his = rows[ALICE], rows[BOB]
    assert (hers["file"], hers["line_no"], hers["job_id"]) == (f"queue.d/{ALICE}.jsonl", 1, "hers")
    assert "requests" in hers["reason"]
    assert hers["line"] is None
    assert his["line"] == job_line(id="his", requests=0).strip()


def test_a_private_files_rejection_reason_quotes_none_of_its_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the line's text left out, its reason still quoted it: an unknown model, GPU or
    region, a relative ``cwd``, a bad deadline, an unknown field's name went to the 0644
    ``rejected.jsonl`` and to the log for every user to read. For a line of a private file both
    now get a reason naming the field and the problem only; a line of a file everyone can read
    keeps the quote (its text is there anyway)."""
    word = "ProjectNightjar"
    bad = [
        job_line(model=word), job_line(gpu_types=[word]), job_line(regions=[word]),
        job_line(cwd=f"{word}/run"), job_line(deadline=word), job_line(precision=word),
        job_line(runtime=word), job_line(**{word: 1}),
    ]  # fmt: skip
    spool_file(tmp_path, ALICE, "".join(bad), 0o600)
    spool_file(tmp_path, BOB, job_line(model=word), 0o644)
    clock = FakeClock()
    service = make_service(tmp_path, RecordingExecutor())
    service.start(clock())
    with structlog.testing.capture_logs() as logs:
        service.tick(clock())

    assert main(["jobs", "--state", "rejected", "--state-dir", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    hers = [r for r in rows if r["uid"] == ALICE]
    assert [r["line_no"] for r in hers] == list(range(1, len(bad) + 1))
    fields = ["model", "gpu_types", "regions", "cwd", "deadline", "precision", "runtime"]
    for row, field in zip(hers, [*fields, "unknown field"], strict=True):
        assert field in row["reason"]
        assert word not in row["reason"]
    (his,) = [r for r in rows if r["uid"] == BOB]
    assert word in his["reason"]
    stored = [json.loads(t) for t in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert [r for r in stored if word in json.dumps(r, ensure_ascii=False)] == [his]
    refused = [e for e in logs if e["event"] == "queue_line_rejected"]
    assert len(refused) == len(bad) + 1
    assert [e for e in refused if word in e["reason"]] == [
        e for e in refused if e["file"] == f"queue.d/{BOB}.jsonl"
    ]


def test_a_private_lines_unexpected_failure_logs_its_type_and_place_not_its_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line that fails for a reason carbond did not foresee (a bug) is logged as
    ``queue_line_failed`` with the exception's message, which may quote the line: a private
    file's token reached the logs every user reads. For a private file the log now has the
    exception's type and where it was raised; a file everyone reads keeps the message."""
    from daemon.queue import reader as ingest

    parse = ingest.parse_line

    def buggy(raw: bytes, *args: object, **kwargs: object) -> object:
        if b"buggy" in raw:  # a bug whose message quotes what it choked on
            raise KeyError(f"cannot handle {raw.decode()!r}")
        return parse(raw, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ingest, "parse_line", buggy)
    spool_file(tmp_path, ALICE, job_line(id="buggy-hers", env={"HF_TOKEN": SECRET}), 0o600)
    spool_file(tmp_path, BOB, job_line(id="buggy-his", env={"HF_TOKEN": "public"}), 0o644)
    clock = FakeClock()
    service = make_service(tmp_path, RecordingExecutor())
    service.start(clock())
    with structlog.testing.capture_logs() as logs:
        service.tick(clock())

    failed = {e["file"]: e for e in logs if e["event"] == "queue_line_failed"}
    hers, his = failed[f"queue.d/{ALICE}.jsonl"], failed[f"queue.d/{BOB}.jsonl"]
    assert SECRET not in json.dumps(logs, default=str)
    assert hers["error"] == "KeyError" and hers["line_no"] == 1
    assert hers["where"].startswith("test_rejected_private.py:") and "(buggy)" in hers["where"]
    assert his["error"].startswith("KeyError: ") and "buggy-his" in his["error"]
    assert his["where"] == hers["where"]
    reasons = {
        r["uid"]: r["reason"]
        for r in (json.loads(t) for t in (tmp_path / "rejected.jsonl").read_text().splitlines())
    }
    assert reasons == {ALICE: "line 1: cannot be ingested (KeyError)",
                       BOB: "line 1: cannot be ingested (KeyError)"}  # fmt: skip
