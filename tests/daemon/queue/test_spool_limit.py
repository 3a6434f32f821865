"""A user's many spool files cannot slow every pass for everyone: each pass reads at most
``queue.max_files_per_user`` of one owner's files, tells the owner once, and loses no line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import structlog

from daemon.ledger import Ledger
from daemon.queue.files import spool_name_problem
from daemon.queue.ingest import Queue
from daemon.queue.spool import spool_passes
from daemon.testing import FakeClock
from tests.daemon.helpers import job_line
from tests.daemon.queue.conftest import rejections
from tests.daemon.users import user_with_uid

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="spool files owned by other uids")

ALICE, BOB = 14242, 14343  # users made for them: tests/daemon/users.py user_with_uid
LIMIT = 4


@pytest.fixture(autouse=True)
def _owners_have_passwd_entries() -> None:
    """Real submitters have one; a file of an owner without one is not read (its group is
    unknown): tests/daemon/queue/test_owner_lookup.py."""
    for uid in (ALICE, BOB):
        user_with_uid(uid)


def _spool_file(state: Path, name: str, uid: int, text: str) -> None:
    spool = state / "queue.d"
    path = spool / name
    path.write_text(text)
    os.chown(path, uid, uid)
    path.chmod(0o600)


def test_a_pass_reads_at_most_the_limit_of_one_users_spool_files(
    tmp_path: Path, ledger: Ledger
) -> None:
    """Anyone may create files in queue.d and every pass opened and read each of them, so one
    user with thousands of files made every pass slow for every user. Now a pass reads at most
    ``max_files_per_user`` of an owner's files (those with new lines first, their
    ``<uid>.jsonl`` first of these); the owner is told once, in the log and in
    ``rejected.jsonl``; later passes read the rest, so no line is lost, and another user's
    file is read at once."""
    queue = Queue(tmp_path, ledger, compact_min_bytes=10**9, max_files_per_user=LIMIT)
    queue.prepare()
    _spool_file(tmp_path, f"{ALICE}.jsonl", ALICE, job_line(id="own"))
    flood = 30
    for n in range(flood):
        _spool_file(tmp_path, f"{ALICE}.{n:04x}.jsonl", ALICE, job_line(id=f"a{n}"))
    _spool_file(tmp_path, f"{BOB}.jsonl", BOB, job_line(id="bob"))
    clock = FakeClock()

    with structlog.testing.capture_logs() as logs:
        first = queue.ingest(clock())
    assert "bob" in first.accepted and "own" in first.accepted
    assert len([j for j in first.accepted if j != "bob"]) == LIMIT
    (notice,) = rejections(tmp_path)
    assert notice["uid"] == ALICE
    assert "max_files_per_user" in str(notice["reason"])
    assert [e["uid"] for e in logs if e["event"] == "queue_files_over_limit"] == [ALICE]

    accepted = set(first.accepted)
    for _ in range(flood // LIMIT + 1):
        clock.advance(2)
        with structlog.testing.capture_logs() as logs:
            result = queue.ingest(clock())
        assert len(result.accepted) <= LIMIT
        accepted |= set(result.accepted)
        assert not [e for e in logs if e["event"] == "queue_files_over_limit"]
    assert accepted == {"own", "bob", *(f"a{n}" for n in range(flood))}
    assert len(rejections(tmp_path)) == 1  # told once


@pytest.mark.parametrize(
    ("limit", "expected"),
    [(2, {"": 1, ".1": 1, ".2": 2, ".3": 3}), (1, {"": 1, ".1": None, ".2": None, ".3": None})],
)
def test_spool_passes_foretells_the_pass_that_first_reads_each_file(
    tmp_path: Path, ledger: Ledger, limit: int, expected: dict[str, int | None]
) -> None:
    """``carbond jobs`` and ``status`` show when the daemon reads a spool file over the limit
    (:func:`spool_passes`); the daemon's own passes must agree. Alice's ``14242.jsonl`` ends
    with an unfinished line: once read it still has bytes not ingested, so it keeps its place
    first in line and one of her slots at every pass; with a limit of one it takes them all
    and her other files wait (for that line's newline)."""
    queue = Queue(tmp_path, ledger, compact_min_bytes=10**9, max_files_per_user=limit)
    queue.prepare()
    _spool_file(tmp_path, f"{ALICE}.jsonl", ALICE, job_line(id="own") + '{"model": "llama')
    for n in (1, 2, 3):
        _spool_file(tmp_path, f"{ALICE}.{n}.jsonl", ALICE, job_line(id=f"a{n}"))
    _spool_file(tmp_path, f"{BOB}.jsonl", BOB, job_line(id="bob"))
    foretold = spool_passes(tmp_path, ledger.queue_files(), limit, 65_536)
    assert foretold.first == {
        **{f"queue.d/{ALICE}{suffix}.jsonl": n for suffix, n in expected.items()},
        f"queue.d/{BOB}.jsonl": 1,
    }
    assert foretold.files == {ALICE: 4, BOB: 1}
    jobs = {"own": "", "a1": ".1", "a2": ".2", "a3": ".3"}
    read: dict[str, int | None] = dict.fromkeys(expected)
    clock = FakeClock()
    for number in range(1, 5):
        for job_id in queue.ingest(clock()).accepted:
            if job_id in jobs:
                read[jobs[job_id]] = number
        clock.advance(2)
    assert read == expected


@pytest.mark.parametrize("name", ["1000.jsonl\n", "1000.ab.jsonl\n"])
def test_a_spool_name_with_a_final_newline_is_no_spool_file(name: str) -> None:
    """``re.match``'s ``$`` also matches before a final newline: ``queue.d/1000.jsonl\\n``
    was read as uid 1000's spool file, a second one beside ``1000.jsonl``."""
    assert spool_name_problem(f"queue.d/{name}", 1000) is not None
    assert spool_name_problem(f"queue.d/{name.rstrip()}", 1000) is None
