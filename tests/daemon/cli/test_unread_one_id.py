"""``carbond status ID``, ``cancel ID`` and ``submit --id``'s duplicate warning look for one id
in the unread queue lines (:func:`daemon.cli.unread.unread_job_taken`): they parse only the
lines that may name it, and answer as ``carbond jobs`` (every line parsed) does."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.cli.unread import _taken_jobs, unread_job_taken
from daemon.queue import JobRequest, LineRules
from daemon.queue.job_request import CancelRequest
from tests.daemon.helpers import job_line
from tests.daemon.users import user_with_uid

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="users' files: chown needs root")

NOW = datetime(2026, 12, 7, tzinfo=UTC)
ALICE, BOB = 14242, 14343  # as tests/daemon/cli/test_jobs_unread_users.py's
ESCAPED_A = '{"id": "\\u0061", "model": "llama-1b", "command": ["true"], "requests": 4}\n'
ESCAPED_KEY = '{"\\u0069d": "k", "model": "llama-1b", "command": ["true"], "requests": 4}\n'


@dataclass(frozen=True)
class _CountingRules(LineRules):
    """The daemon's rules, keeping every line they judged."""

    judged: list[bytes] = field(default_factory=list)

    def judge(self, raw: bytes, now: datetime) -> JobRequest | CancelRequest | str:
        self.judged.append(raw)
        return super().judge(raw, now)


def _queue_files(state: Path) -> None:
    """queue.jsonl (root's) and Alice's and Bob's spool files, with the ways a line may name
    an id: plainly, with an escape in the id or in its key, in a line the daemon rejects
    (too long, a bad field), a cancel before or after its job, the same id in several files,
    an unfinished last line, and an id that is only another field's text."""
    (state / "queue.d").mkdir()
    (state / "queue.jsonl").write_text(
        ESCAPED_A  # "a", spelled \u0061: the daemon takes it
        + job_line(id="a", name="second a")  # a duplicate: dropped
        + '{"cancel": "b"}\n'  # before b's line: cancels nothing
        + job_line(id="b")
        + job_line(id="d", command="true")  # rejected: a shell string
        + job_line(id="e", name="x" * 70_000)  # rejected: too long
        + job_line(name="n")  # no id: a new one when read
        + job_line(id="f", tags=["g"])  # "g" only as a tag
        + ESCAPED_KEY
        + job_line(id="c").rstrip("\n")  # unfinished: read once it ends
    )
    for uid, text in (
        (ALICE, job_line(id="c", name="alices c") + job_line(id="d") + '{"cancel": "\\u0062"}\n'
         + job_line(id="h") + '{"cancel": "h"}'),  # an unfinished cancel: none yet
        (BOB, job_line(id="b", name="bobs b") + '{"cancel": "d"}\n' + job_line(id="j")
         + '{"cancel": "j"}\n'),
    ):  # fmt: skip
        path = state / "queue.d" / f"{uid}.jsonl"
        path.write_text(text)
        os.chown(path, uid, uid)
        path.chmod(0o644)


@pytest.mark.parametrize("uid", [0, ALICE, BOB])
def test_one_ids_lookup_answers_as_the_full_listing(tmp_path: Path, uid: int) -> None:
    """For every id, the line the lookup of that id takes (its file, line, owner, cancel,
    whether it has ended) is the one the full listing (every line parsed, ``carbond jobs``'
    before it keeps the caller's) takes with that id: also one spelled with an escape."""
    for owner in (ALICE, BOB):
        user_with_uid(owner)
    _queue_files(tmp_path)
    rules = LineRules(max_line_bytes=65_536)
    listed = _taken_jobs(tmp_path, uid, NOW, rules)
    every = {job.request.job_id for job in _taken_jobs(tmp_path, 0, NOW, rules)}
    assert {"a", "b", "c", "h", "j", "k"} <= every  # the escaped "a" and "k" are jobs
    for job_id in sorted(every - {None} | {"d", "e", "g", "n", "z", "\\u0061", "A"}):
        found = unread_job_taken(tmp_path, job_id, uid, now=NOW, rules=rules)
        expected = next((job for job in listed if job.request.job_id == job_id), None)
        assert found == expected, job_id


def test_one_ids_lookup_parses_only_the_lines_that_may_name_it(tmp_path: Path) -> None:
    """``carbond status ID`` (also ``cancel``, ``submit --id``) parsed every unread line of
    every file with the daemon's parser: with 110,000 unread lines, ~2 s more than before it
    did so (3.4 s in all, not 1.3 s). A line that neither spells the id's JSON form nor has a
    backslash (an escape) cannot be its job, take its id or cancel it: it is not parsed."""
    for owner in (ALICE, BOB):
        user_with_uid(owner)
    _queue_files(tmp_path)
    rules = _CountingRules(max_line_bytes=65_536)
    found = unread_job_taken(tmp_path, "h", 0, now=NOW, rules=rules)
    assert found is not None and (found.uid, found.cancel) == (ALICE, False)
    assert rules.judged  # h's own line at least
    assert all(b'"h"' in raw or b"\\" in raw for raw in rules.judged), rules.judged
