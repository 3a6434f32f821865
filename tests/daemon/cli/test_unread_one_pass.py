"""``carbond status ID`` and ``cancel ID`` of an id the ledger does not have read the unread
queue lines once: the pass that looks for its job line also finds the line the daemon will
reject for it (:func:`daemon.cli.unread.unread_lookup`)."""

from __future__ import annotations

import os
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from daemon.queue import CancelRequest, JobRequest, LineRules
from tests.daemon.cli.cli_run import run_cli
from tests.daemon.helpers import job_line


@pytest.fixture
def judged(monkeypatch: pytest.MonkeyPatch) -> Counter[bytes]:
    """Every line the daemon's rules judge, counted."""
    seen: Counter[bytes] = Counter()
    judge = LineRules.judge

    def counting(self: LineRules, raw: bytes, now: datetime) -> JobRequest | CancelRequest | str:
        seen[raw] += 1
        return judge(self, raw, now)

    monkeypatch.setattr(LineRules, "judge", counting)
    return seen


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Every file opened with ``os.open`` (how the unread lines are read), counted by path."""
    seen: Counter[str] = Counter()
    real_open = os.open

    def counting(path: str | os.PathLike[str], flags: int, *args: int, **kw: int | None) -> int:
        seen[os.fspath(path)] += 1
        return real_open(path, flags, *args, **kw)  # type: ignore[arg-type]  # dir_fd: int | None

    monkeypatch.setattr(os, "open", counting)
    return seen


@pytest.mark.parametrize("command", ["status", "cancel"])
@pytest.mark.parametrize("job_id", ["bad", "nosuch"])
def test_an_unknown_ids_unread_lines_are_judged_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], judged: Counter[bytes],
    opened: Counter[str], command: str,
    job_id: str,
) -> None:  # fmt: skip
    """With the daemon down (no ledger yet), ``status``/``cancel`` of an id no line the daemon
    will accept has read every unread queue file twice: once for its job line
    (``unread_job_taken``), then again for a line it will reject (``will_be_rejected``),
    parsing ``bad``'s line twice. Each is judged once now, and the answer is the same: the
    doomed line named, or no such job (``status``, with no ledger yet: no ledger; exit 2
    either way)."""
    queue = tmp_path / "queue.jsonl"
    queue.write_text(
        job_line(id="ok")
        + job_line(id="bad", batch_size=0)  # the daemon rejects it
        + job_line(id="esc", name="a\\b")  # a backslash, no escape of either id
    )
    code, out, err = run_cli(capsys, command, job_id, "--state-dir", str(tmp_path))
    said = out + err
    assert code == 2, said
    if job_id == "bad":
        assert f"will never be queued: its line {queue}:2, not read yet" in said
    elif command == "cancel":
        assert "unknown job 'nosuch'" in said
    else:  # status of an id no queue line names, with no ledger yet: as before
        assert "no ledger" in said
    assert max(judged.values(), default=1) == 1, judged
    assert job_id == "nosuch" or judged, "bad's line is judged"
    assert opened[str(queue)] == 1, opened
