"""Queue files: exactly-once ingestion, partial lines, rejections, attribution, compaction."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.ledger import Ledger, LedgerError
from daemon.queue import (
    QUEUE_NAME,
    RETIRED_DIR,
    SPOOL_DIR,
    append_line,
    append_submission,
    submit_target,
)
from daemon.queue.files import MissingStateDirError
from daemon.queue.ingest import Queue
from tests.daemon.helpers import append, job_line
from tests.daemon.queue.conftest import rejections
from tests.daemon.users import user_with_uid

NOW = datetime(2024, 6, 1, tzinfo=UTC)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown files to others")


def test_complete_lines_once_partial_line_later(queue: Queue, ledger: Ledger) -> None:
    append(queue.path, job_line(id="a") + job_line(id="b") + '{"model": "llama-1b", "comm')
    assert queue.ingest(NOW).accepted == ("a", "b")
    assert queue.ingest(NOW).accepted == ()
    append(queue.path, 'and": ["true"], "id": "c"}\n')
    assert queue.ingest(NOW).accepted == ("c",)
    assert queue.ingest(NOW).accepted == ()
    assert [j.job_id for j in ledger.jobs()] == ["a", "b", "c"]
    record = ledger.queue_files()[QUEUE_NAME]
    assert (record.byte_offset, record.line_no) == (queue.path.stat().st_size, 3)
    assert ledger.job("c").source == f"{QUEUE_NAME}:3"


def test_failed_commit_moves_neither_offset_nor_jobs(queue: Queue, ledger: Ledger) -> None:
    append(queue.path, job_line(id="a") + job_line(id="b"))
    real = ledger.set_queue_file

    def crash(*args: object, **kw: object) -> None:
        raise LedgerError("power cut")

    ledger.set_queue_file = crash  # type: ignore[method-assign]
    with pytest.raises(LedgerError):
        queue.ingest(NOW)
    assert ledger.jobs() == []
    ledger.set_queue_file = real  # type: ignore[method-assign]
    assert queue.ingest(NOW).accepted == ("a", "b")


def test_bad_lines_are_rejected_with_line_and_reason(queue: Queue, ledger: Ledger) -> None:
    append(queue.path, "garbage\n" + job_line(batch_size=0) + "\n" + job_line(id="ok"))
    result = queue.ingest(NOW)
    assert (result.accepted, result.rejected) == (("ok",), 2)
    rejected = rejections(queue.state_dir)
    assert [(r["line_no"], r["file"]) for r in rejected] == [(1, QUEUE_NAME), (2, QUEUE_NAME)]
    assert "line 1: not JSON" in str(rejected[0]["reason"])
    assert "line 2: field 'batch_size'" in str(rejected[1]["reason"])
    assert rejected[0]["line"] == "garbage"


def test_a_tensor_parallel_size_the_heads_do_not_split_over_is_rejected_by_name(
    queue: Queue, ledger: Ledger
) -> None:
    append(queue.path, job_line(id="tp3", model="llama-3.1-8b", tensor_parallel=3))
    assert queue.ingest(NOW).rejected == 1
    [record] = rejections(queue.state_dir)
    assert record["job_id"] == "tp3"
    assert "line 1: field 'tensor_parallel': llama-3.1-8b's 32 attention heads" in str(
        record["reason"]
    )
    assert ledger.jobs() == []


def test_a_lone_surrogate_in_a_command_is_rejected_at_ingestion(
    queue: Queue, ledger: Ledger
) -> None:
    """``"\\udcff"`` in a program not found was accepted and run: the daemon then failed
    writing the run's end ("command not found: ...") to SQLite at every reconcile, for every
    job, and could not restart."""
    append(queue.path, job_line(id="bad", command=["/nonexistent\udcff"]) + job_line(id="ok"))
    result = queue.ingest(NOW)
    assert (result.accepted, result.rejected) == (("ok",), 1)
    [record] = rejections(queue.state_dir)
    assert record["job_id"] == "bad"
    assert "line 1: field 'command': item 0 is not Unicode text" in str(record["reason"])


def test_client_ids_are_deduplicated(queue: Queue, ledger: Ledger) -> None:
    append(queue.path, job_line(id="same") + job_line(id="same", requests=9))
    result = queue.ingest(NOW)
    append(queue.path, job_line(id="same"))
    again = queue.ingest(NOW)
    assert (result.accepted, result.duplicates, again.duplicates) == (("same",), 1, 1)
    assert ledger.job("same").request.requests == 4


def test_lines_are_attributed_to_the_file_owner(queue: Queue, ledger: Ledger) -> None:
    append(queue.path, job_line(id="mine", user="root") + job_line())
    queue.ingest(NOW)
    owner = queue.path.stat().st_uid
    assert {job.uid for job in ledger.jobs()} == {owner}


def test_a_file_others_can_write_cannot_vouch_for_its_lines(queue: Queue, ledger: Ledger) -> None:
    os.chmod(queue.path, 0o666)
    append(queue.path, job_line(id="sneaky"))
    assert queue.ingest(NOW).rejected == 1
    assert ledger.jobs() == []
    assert "writable by other users" in str(rejections(queue.state_dir)[0]["reason"])


def test_spool_files_that_could_lie_about_their_owner_are_refused(
    queue: Queue, ledger: Ledger
) -> None:
    spool = queue.state_dir / SPOOL_DIR / f"{os.getuid()}.jsonl"
    append(spool, job_line(id="x"))
    os.link(spool, queue.state_dir / "elsewhere.jsonl")
    assert queue.ingest(NOW).rejected == 1
    assert ledger.jobs() == []
    assert "hard links" in str(rejections(queue.state_dir)[0]["reason"])
    # a spool file named for another uid: tests/daemon/queue/test_hostile_lines.py


@needs_root
def test_spool_files_are_attributed_to_their_owner(queue: Queue, ledger: Ledger) -> None:
    user_with_uid(14242)  # a real submitter (an owner without one is not read)
    spool = queue.state_dir / SPOOL_DIR / "14242.jsonl"
    append(spool, job_line(id="alice-1"))
    os.chown(spool, 14242, 14242)
    append(queue.path, job_line(id="root-1"))
    queue.ingest(NOW)
    assert ledger.job("alice-1").uid == 14242
    assert ledger.job("root-1").uid == 0
    # alice may not take over root's id, nor cancel root's job; she may cancel her own.
    append(spool, job_line(id="root-1") + '{"cancel": "root-1"}\n{"cancel": "alice-1"}\n')
    result = queue.ingest(NOW)
    assert (result.rejected, result.cancels) == (2, ("alice-1",))
    reasons = [str(r["reason"]) for r in rejections(queue.state_dir)]
    assert "already used by another user" in reasons[0]
    assert "is not yours" in reasons[1]
    assert ledger.job("alice-1").cancel_requested_at == NOW


def test_submit_target_uses_the_spool_for_non_owners(tmp_path: Path) -> None:
    assert submit_target(tmp_path, tmp_path.stat().st_uid) == tmp_path / QUEUE_NAME
    assert submit_target(tmp_path, 4242) == tmp_path / SPOOL_DIR / "4242.jsonl"


def test_a_spool_file_without_its_queue_d_is_a_missing_state_dir(tmp_path: Path) -> None:
    """Before any daemon set up the state dir there is no ``queue.d``: a non-owner's submit
    is told so (bad input, as a missing state dir), not an open's ``[Errno 2]``."""
    with pytest.raises(MissingStateDirError) as info:
        append_submission(tmp_path, 4242, {"cancel": "j1"})
    assert str(info.value) == (
        f"{tmp_path / SPOOL_DIR}: no such directory: no daemon has set up {tmp_path} yet "
        "(`carbond run` creates queue.d at its start, the unit's tmpfiles at install); nothing "
        "appended"
    )
    assert list(tmp_path.iterdir()) == []


def test_the_spool_file_mode_docs_daemon_md_gives_is_the_one_submit_creates(
    tmp_path: Path,
) -> None:
    """docs/daemon.md called a user's spool file "your 0600 `queue.d/<uid>.jsonl`", while
    `carbond submit` creates it 0644 under the usual umask: readable by every user, as the
    "Who sees and touches a job" section says of the queue files. It states the mode made."""
    text = (Path(__file__).resolve().parents[3] / "docs" / "daemon.md").read_text()
    found = re.search(r"`carbond\s+submit` creates it (0[0-7]{3}) under the usual umask of "
                      r"(0[0-7]+)", text)  # fmt: skip
    assert found is not None, "docs/daemon.md no longer says which mode submit gives it"
    spool = tmp_path / SPOOL_DIR
    spool.mkdir()
    old = os.umask(int(found.group(2), 8))
    try:
        append_line(spool / f"{os.geteuid()}.jsonl", {"cancel": "j1"}, uid=os.geteuid())
    finally:
        os.umask(old)
    mode = (spool / f"{os.geteuid()}.jsonl").stat().st_mode & 0o777
    assert f"{mode:04o}" == found.group(1)


def test_the_private_spool_file_docs_operations_md_gives_is_the_one_submit_creates(
    tmp_path: Path,
) -> None:
    """README and docs/operations.md said `[ledger] private = true` keeps other users from
    reading every job's argv, while the queue files, 0644 as `carbond submit` creates them,
    hold every job's line until compaction; then they gave a umask workaround. With a private
    ledger submit now creates the spool file private itself: the mode the page names, under
    the usual umask, kept by later appends."""
    root = Path(__file__).resolve().parents[3]
    text = (root / "docs" / "operations.md").read_text()
    found = re.search(r"with `private = true`, `carbond\s+submit` and `cancel` \(which read the "
                      r"same config as the daemon\) create the caller's spool file\s+"
                      r"(0[0-7]{3})", text)  # fmt: skip
    assert found is not None, "docs/operations.md no longer says how private spool files are made"
    readme = (root / "README.md").read_text()
    assert f"`carbond submit` and `cancel` create a user's spool file {found.group(1)}" in readme
    (tmp_path / QUEUE_NAME).write_text("")  # not the caller's own private file: the spool
    (tmp_path / QUEUE_NAME).chmod(0o664)
    (tmp_path / SPOOL_DIR).mkdir()
    old = os.umask(0o022)
    try:
        path = append_submission(tmp_path, os.geteuid(), {"cancel": "j1"}, private=True)
        append_submission(tmp_path, os.geteuid(), {"cancel": "j2"}, private=False)
    finally:
        os.umask(old)
    assert path == tmp_path / SPOOL_DIR / f"{os.geteuid()}.jsonl"
    assert f"{path.stat().st_mode & 0o777:04o}" == found.group(1)
    assert len(path.read_text().splitlines()) == 2


def test_compaction_retires_the_file_and_keeps_reading_it(tmp_path: Path, ledger: Ledger) -> None:
    queue = Queue(tmp_path, ledger, compact_min_bytes=1, retired_grace_s=60)
    queue.prepare()
    append(queue.path, job_line(id="a"))
    assert queue.ingest(NOW).accepted == ("a",)
    assert queue.path.stat().st_size == 0  # compacted: a fresh empty file
    [retired] = (tmp_path / RETIRED_DIR).iterdir()
    # A writer that opened the old file before the rename still appends to it.
    append(retired, job_line(id="late"))
    append(queue.path, job_line(id="b"))
    assert sorted(queue.ingest(NOW + timedelta(seconds=1)).accepted) == ["b", "late"]
    assert retired.exists()
    queue.ingest(NOW + timedelta(seconds=61))
    assert not retired.exists()
    assert queue.ingest(NOW + timedelta(seconds=62)).accepted == ()
    assert [j.job_id for j in ledger.jobs()] == ["a", "b", "late"]


@pytest.mark.parametrize("renamed", [True, False])
def test_an_interrupted_compaction_is_finished_or_undone(
    tmp_path: Path, ledger: Ledger, renamed: bool
) -> None:
    queue = Queue(tmp_path, ledger, compact_min_bytes=10**9)
    queue.prepare()
    append(queue.path, job_line(id="a"))
    queue.ingest(NOW)
    record = ledger.queue_files()[QUEUE_NAME]
    dst = f"{RETIRED_DIR}/{QUEUE_NAME}.crashed"
    with ledger.transaction():
        ledger.begin_compaction(QUEUE_NAME, dst, record.inode or 0, record.byte_offset,
                                record.line_no, NOW)  # fmt: skip
    if renamed:  # the daemon died right after the rename, before linking a new file
        os.rename(queue.path, tmp_path / dst)
    append(queue.path, job_line(id="b"))
    assert queue.ingest(NOW).accepted == ("b",)
    assert ledger.compactions() == []
    assert [j.job_id for j in ledger.jobs()] == ["a", "b"]


def test_compaction_under_concurrent_appenders_loses_nothing(
    tmp_path: Path, ledger: Ledger
) -> None:
    """Writers keep appending until the ingester has compacted at least twice mid-stream, so the
    test does not depend on how fast this machine is; then every line must be in the ledger once."""
    queue = Queue(tmp_path, ledger, compact_min_bytes=300, retired_grace_s=0.5)
    queue.prepare()
    min_per_writer, writers = 40, 4
    written = [0] * writers
    stop = threading.Event()

    def write(w: int) -> None:
        i = 0
        while i < min_per_writer or not stop.is_set():
            job_id = f"w{w}-{i}"
            if w % 2:  # `carbond submit`: flock + inode check
                append_line(queue.path, json.loads(job_line(id=job_id)))
            else:  # a raw `>>` append of a whole line
                append(queue.path, job_line(id=job_id))
            i += 1
            written[w] = i
            time.sleep(0.002 if i % 10 else 0.05)  # pauses let the ingester catch up and compact

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    retired: set[str] = set()
    deadline = time.monotonic() + 60
    while any(t.is_alive() for t in threads):
        queue.ingest(datetime.now(UTC))
        retired.update(p.name for p in (tmp_path / RETIRED_DIR).iterdir())
        if len(retired) >= 2 or time.monotonic() > deadline:
            stop.set()
    for thread in threads:
        thread.join()
    later = datetime.now(UTC) + timedelta(seconds=5)
    queue.ingest(later)
    queue.ingest(later + timedelta(seconds=5))
    assert len(retired) >= 2, "the test must compact while writers append"
    ids = [job.job_id for job in ledger.jobs()]
    assert len(ids) == len(set(ids)) == sum(written)
    assert rejections(tmp_path) == []
    assert list((tmp_path / RETIRED_DIR).iterdir()) == []
    assert ledger.queue_files().keys() <= {QUEUE_NAME}


def test_pending_bytes_counts_what_is_not_ingested_yet(queue: Queue) -> None:
    line = job_line(id="a")
    append(queue.path, line + '{"partial": ')
    assert queue.pending_bytes() == len(line) + len('{"partial": ')
    queue.ingest(NOW)
    assert queue.pending_bytes() == len('{"partial": ')
