"""Lines and files a hostile or unlucky user can leave in the queue: each ends ingested or
rejected with a reason, and nothing stops the lines and files around it (issue 13, 1 and 3-6)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog

from daemon.ledger import Ledger
from daemon.queue import QUEUE_NAME, RETIRED_DIR, SPOOL_DIR, QueueError, submit_target
from daemon.queue.ingest import Queue
from tests.daemon.helpers import append, job_line
from tests.daemon.queue.conftest import rejections

NOW = datetime(2024, 6, 1, tzinfo=UTC)

# Each raised past parse_line before: OverflowError (three deadlines), ValueError (an integer
# over Python's 4,300-digit limit), RecursionError (JSON nested 20,000 deep).
POISON = (
    job_line(deadline="+9999999d"),
    job_line(deadline="+99999999999d"),
    job_line(deadline="0001-01-01T00:00:00+14:00"),
    '{"model": "llama-1b", "command": ["true"], "requests": ' + "9" * 5000 + "}\n",
    '{"model": "llama-1b", "command": ' + "[" * 20_000 + "]" * 20_000 + "}\n",
)


@pytest.mark.parametrize("poison", POISON, ids=["+9999999d", "+99999999999d", "year 1 +14:00",
                                                 "5000 digits", "nested 20000"])  # fmt: skip
def test_a_poison_line_is_rejected_and_the_lines_after_it_and_other_files_go_on(
    queue: Queue, ledger: Ledger, poison: str
) -> None:
    append(queue.path, job_line(id="before") + poison + job_line(id="after"))
    spool = queue.state_dir / SPOOL_DIR / f"{os.getuid()}.jsonl"
    append(spool, job_line(id="other-file"))
    result = queue.ingest(NOW)
    assert set(result.accepted) == {"before", "after", "other-file"}
    [rejection] = rejections(queue.state_dir)
    assert (rejection["file"], rejection["line_no"]) == (QUEUE_NAME, 2)
    assert str(rejection["reason"]).startswith("line 2: ")
    assert queue.ingest(NOW) == type(result)()  # the offset moved: nothing is read again


def test_one_files_trouble_does_not_stop_the_next_file(queue: Queue, ledger: Ledger) -> None:
    (queue.state_dir / "rejected.jsonl").mkdir()  # recording queue.jsonl's bad line fails
    append(queue.path, "not json\n")
    append(queue.state_dir / SPOOL_DIR / f"{os.getuid()}.jsonl", job_line(id="next-file"))
    with pytest.raises(QueueError, match="cannot record rejected lines"):
        queue.ingest(NOW)  # reported, once every file has had its turn
    assert ledger.job("next-file").uid == os.getuid()
    assert QUEUE_NAME not in ledger.queue_files()  # its offset did not move: retried later


def test_a_spool_file_named_for_another_uid_is_ignored_and_reported(
    queue: Queue, ledger: Ledger
) -> None:
    other = os.getuid() + 1
    squatted = queue.state_dir / SPOOL_DIR / f"{other}.jsonl"
    append(squatted, job_line(id="squatter"))
    with structlog.testing.capture_logs() as logs:
        queue.ingest(NOW)
        queue.ingest(NOW)
    assert ledger.jobs() == []
    assert rejections(queue.state_dir) == []  # ignored, not read line by line
    reports = [e for e in logs if e["event"] == "queue_file_ignored"]
    assert len(reports) == 1  # once, not every pass
    assert f"named for uid {other}" in reports[0]["reason"]
    assert reports[0]["path"] == f"{SPOOL_DIR}/{other}.jsonl"
    assert queue.ignored_files() == {f"{SPOOL_DIR}/{other}.jsonl": reports[0]["reason"]}


def test_fifos_directories_and_symlinks_in_the_spool_are_reported_once_not_every_pass(
    queue: Queue, ledger: Ledger
) -> None:
    spool = queue.state_dir / SPOOL_DIR
    me = os.getuid()
    os.mkfifo(spool / f"{me}.aa.jsonl")
    (spool / f"{me}.bb.jsonl").mkdir()
    (spool / f"{me}.cc.jsonl").symlink_to(queue.path)
    append(spool / f"{me}.jsonl", job_line(id="mine"))
    with structlog.testing.capture_logs() as logs:
        assert queue.ingest(NOW).accepted == ("mine",)
        queue.ingest(NOW)
        queue.ingest(NOW)
    reports = sorted((e["event"], e["path"]) for e in logs if e["event"].startswith("queue_"))
    # named relative to the state dir, as every other queue event names its file (until
    # 2026-12-07 these two logged an absolute path, queue_file_ignored a relative one)
    assert reports == [("queue_file_not_regular", f"{SPOOL_DIR}/{me}.aa.jsonl"),
                       ("queue_file_not_regular", f"{SPOOL_DIR}/{me}.bb.jsonl"),
                       ("queue_file_unreadable", f"{SPOOL_DIR}/{me}.cc.jsonl"),
                       ("queue_ingested", f"{SPOOL_DIR}/{me}.jsonl")]  # fmt: skip
    (spool / f"{me}.bb.jsonl").rmdir()  # replaced by a file: read, and reported again if
    append(spool / f"{me}.bb.jsonl", job_line(id="now-a-file"))  # it turns bad once more
    assert queue.ingest(NOW).accepted == ("now-a-file",)
    os.unlink(spool / f"{me}.bb.jsonl")
    (spool / f"{me}.bb.jsonl").mkdir()
    with structlog.testing.capture_logs() as logs:
        queue.ingest(NOW)
    assert [e["event"] for e in logs] == ["queue_file_not_regular"]


def test_submit_goes_around_a_spool_file_another_user_planted(tmp_path: Path) -> None:
    """User A (here: this uid) created queue.d/<uid of B>.jsonl; B's submit must still land."""
    (tmp_path / SPOOL_DIR).mkdir()
    me = os.getuid()
    victim = me + 1
    planted = tmp_path / SPOOL_DIR / f"{victim}.jsonl"
    planted.write_text("")
    target = submit_target(tmp_path, victim)
    assert target != planted
    assert target.parent == tmp_path / SPOOL_DIR
    assert target.name.startswith(f"{victim}.") and target.name.endswith(".jsonl")
    # a symlink planted in the same place is gone around the same way
    planted.unlink()
    planted.symlink_to(tmp_path / "elsewhere")
    assert submit_target(tmp_path, victim) != planted


def test_a_users_second_spool_file_is_attributed_to_them(queue: Queue, ledger: Ledger) -> None:
    spool = queue.state_dir / SPOOL_DIR / f"{os.getuid()}.a1b2c3d4.jsonl"
    append(spool, job_line(id="mine"))
    assert queue.ingest(NOW).accepted == ("mine",)
    assert ledger.job("mine").uid == os.getuid()


def test_a_submit_after_a_partial_line_starts_on_a_fresh_line(
    queue: Queue, ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    from daemon.cli import main

    append(queue.path, '{"id": "cut-off", "model": "llama-1b", "comm')  # a writer that died
    code = main(["submit", "--state-dir", str(queue.state_dir), "--id", "whole",
                 "--model", "llama-1b", "--", "true"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    result = queue.ingest(NOW)
    assert result.accepted == ("whole",)
    [rejection] = rejections(queue.state_dir)
    assert rejection["line"] == '{"id": "cut-off", "model": "llama-1b", "comm'


def _limit_file_size(size: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return apply


def test_a_submit_cut_short_by_a_full_disk_leaves_no_partial_line(
    queue: Queue, ledger: Ledger
) -> None:
    """A real short write: RLIMIT_FSIZE makes the kernel stop the append part-way (EFBIG),
    as a full disk does (ENOSPC)."""
    append(queue.path, job_line(id="first"))
    submit = [sys.executable, "-m", "daemon", "submit", "--state-dir", str(queue.state_dir),
              "--model", "llama-1b", "--id"]  # fmt: skip
    limit = queue.path.stat().st_size + 40
    cut = subprocess.run([*submit, "cut", "--", "true"], capture_output=True, text=True,
                         check=False, preexec_fn=_limit_file_size(limit))  # fmt: skip
    assert cut.returncode == 1
    assert "cannot append" in cut.stderr
    assert cut.stderr.count("\n") == 1
    assert queue.path.read_bytes().endswith(b"\n")
    ok = subprocess.run([*submit, "next", "--", "true"], capture_output=True, text=True,
                        check=False)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    result = queue.ingest(NOW)
    assert (result.accepted, result.rejected) == (("first", "next"), 0)


_INGEST_WITH_FILE_SIZE_LIMIT = """
import resource, sys
from datetime import UTC, datetime
from pathlib import Path
from daemon.ledger import Ledger
from daemon.queue.ingest import Queue
state = Path(sys.argv[1])
with Ledger.open(state / "ledger.db") as ledger:
    limit = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    Queue(state, ledger, compact_min_bytes=10**9).ingest(datetime.now(UTC))
"""


def test_a_rejection_cut_short_by_a_full_disk_does_not_make_its_retry_unreadable(
    queue: Queue, ledger: Ledger
) -> None:
    """A real short write of rejected.jsonl (EFBIG, as ENOSPC): the chunk is rolled back and
    its rejections are written again on the next pass; they must not be glued to the torn
    record, which makes both one unreadable line (and the rejection invisible to its user)."""
    append(queue.path, job_line(id="bad", command="not a list"))
    cut = subprocess.run([sys.executable, "-c", _INGEST_WITH_FILE_SIZE_LIMIT,
                          str(queue.state_dir), "60"], capture_output=True, text=True,
                         check=False)  # fmt: skip
    assert cut.returncode == 1
    assert "cannot record rejected lines" in cut.stderr
    assert queue.ingest(NOW).rejected == 1
    [rejection] = rejections(queue.state_dir)
    assert rejection["job_id"] == "bad"


def test_truncated_and_quickly_refilled_queue_is_read_from_the_start(
    queue: Queue, ledger: Ledger
) -> None:
    append(queue.path, job_line(id="a") + job_line(id="b") + job_line(id="c"))
    assert len(queue.ingest(NOW).accepted) == 3
    os.truncate(queue.path, 0)  # same inode, refilled past the old offset before the next pass
    append(queue.path, job_line(id="d", name="x" * 40) + job_line(id="e", name="y" * 40)
           + job_line(id="f", name="z" * 40))  # fmt: skip
    assert queue.path.stat().st_size > ledger.queue_files()[QUEUE_NAME].byte_offset
    result = queue.ingest(NOW)
    assert (result.accepted, result.rejected) == (("d", "e", "f"), 0)


def test_an_over_long_unfinished_line_is_rejected_once_and_not_read_again(
    tmp_path: Path, ledger: Ledger
) -> None:
    queue = Queue(tmp_path, ledger, max_line_bytes=4096, compact_min_bytes=10**9)
    queue.prepare()
    append(queue.path, job_line(id="a") + "x" * 100_000)  # no newline yet
    first = queue.ingest(NOW)
    assert (first.accepted, first.rejected) == (("a",), 1)
    assert ledger.queue_files()[QUEUE_NAME].byte_offset == queue.path.stat().st_size
    append(queue.path, "x" * 100_000)
    assert queue.ingest(NOW).rejected == 0  # still the same line: skipped, not re-read
    assert ledger.queue_files()[QUEUE_NAME].byte_offset == queue.path.stat().st_size
    append(queue.path, "tail of the long line\n" + job_line(id="b"))
    last = queue.ingest(NOW)
    assert (last.accepted, last.rejected) == (("b",), 0)
    [rejection] = rejections(tmp_path)
    assert "longer than 4096 bytes" in str(rejection["reason"])
    assert rejection["line_no"] == 2
    assert ledger.job("b").source == f"{QUEUE_NAME}:3"


def test_a_lock_someone_holds_on_a_queue_file_defers_compaction_and_stalls_nothing(
    tmp_path: Path, ledger: Ledger
) -> None:
    """Anyone who can read a queue file can ``flock`` it for ever: compaction must not wait."""
    queue = Queue(tmp_path, ledger, compact_min_bytes=1)
    queue.prepare()
    spool = tmp_path / SPOOL_DIR / f"{os.getuid()}.jsonl"
    append(spool, job_line(id="locked"))
    append(queue.path, job_line(id="main"))
    fd = os.open(spool, os.O_RDONLY)  # another open file: its lock conflicts with the daemon's
    fcntl.flock(fd, fcntl.LOCK_SH)
    release = threading.Timer(5, os.close, [fd])  # without the fix, ingest waits for this
    release.start()
    try:
        started = time.monotonic()
        result = queue.ingest(NOW)
        assert time.monotonic() - started < 2
        assert sorted(result.accepted) == ["locked", "main"]
        assert spool.stat().st_size > 0  # not compacted while locked
        assert queue.path.stat().st_size == 0  # the other file was
    finally:
        release.cancel()
        release.join()
        with contextlib.suppress(OSError):
            os.close(fd)
    queue.ingest(NOW)  # unlocked: compacted now
    assert spool.stat().st_size == 0
    assert sorted(job.job_id for job in ledger.jobs()) == ["locked", "main"]


def test_a_big_backlog_is_read_in_bounded_chunks(
    tmp_path: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = Queue(tmp_path, ledger, max_line_bytes=1024, compact_min_bytes=10**9)
    queue.prepare()
    lines = [job_line(id=f"j{i}") for i in range(2000)]
    append(queue.path, "".join(lines))
    reads: list[int] = []
    real = os.pread

    def counting(fd: int, n: int, offset: int) -> bytes:
        reads.append(n)
        return real(fd, n, offset)

    monkeypatch.setattr(os, "pread", counting)  # observes the read sizes, changes nothing
    accepted = queue.ingest(NOW).accepted
    assert len(accepted) == 2000
    assert max(reads) <= queue.reader.read_chunk_bytes
    assert queue.reader.read_chunk_bytes < queue.path.stat().st_size


def test_a_flooded_file_is_read_a_bounded_amount_per_pass_and_delays_nobody(
    tmp_path: Path, ledger: Ledger
) -> None:
    """A file of gigabytes (here a sparse one: one endless line) or millions of lines must not
    hold the other files, nor the plan and reconcile steps, for the hours it takes to read."""
    queue = Queue(tmp_path, ledger, max_line_bytes=1024, compact_min_bytes=10**9)
    queue.prepare()
    with queue.path.open("ab") as out:
        out.truncate(64 * queue.reader.pass_bytes)  # NUL bytes, no newline: one over-long line
    append(tmp_path / SPOOL_DIR / f"{os.getuid()}.jsonl", job_line(id="victim"))
    first = queue.ingest(NOW)
    assert (first.accepted, first.rejected) == (("victim",), 1)
    offset = ledger.queue_files()[QUEUE_NAME].byte_offset
    reader = queue.reader
    assert reader.pass_bytes <= offset < reader.pass_bytes + reader.read_chunk_bytes
    append(queue.path, "\n" + job_line(id="after"))
    passes = 1
    while ledger.queue_files()[QUEUE_NAME].byte_offset < queue.path.stat().st_size:
        assert queue.ingest(NOW).accepted in ((), ("after",))
        passes += 1
    assert passes == 65
    assert len(rejections(tmp_path)) == 1
    assert sorted(job.job_id for job in ledger.jobs()) == ["after", "victim"]


def test_a_retired_files_backlog_is_read_to_its_end_before_it_is_deleted(
    tmp_path: Path, ledger: Ledger
) -> None:
    queue = Queue(tmp_path, ledger, max_line_bytes=1024, compact_min_bytes=1, retired_grace_s=1)
    queue.prepare()
    queue.reader.pass_bytes = queue.reader.read_chunk_bytes
    append(queue.path, job_line(id="a"))
    queue.ingest(NOW)
    [retired] = (tmp_path / RETIRED_DIR).iterdir()
    ids = [f"late-{i}" for i in range(3 * queue.reader.pass_bytes // len(job_line(id="late-0000")))]
    append(retired, "".join(job_line(id=i) for i in ids))  # a writer that opened it before
    later = NOW + timedelta(seconds=5)
    accepted = [*queue.ingest(later).accepted]
    assert retired.exists()  # its grace is over, but not every line is read yet
    while retired.exists():
        accepted += queue.ingest(later).accepted
    assert accepted == ids
    assert rejections(tmp_path) == []


def test_a_partial_line_left_in_a_deleted_retired_file_is_rejected_as_its_writers(
    tmp_path: Path, ledger: Ledger
) -> None:
    """Its writer is the file's owner: with ``uid`` null only root would ever see it."""
    queue = Queue(tmp_path, ledger, compact_min_bytes=1, retired_grace_s=1)
    queue.prepare()
    spool = tmp_path / SPOOL_DIR / f"{os.getuid()}.jsonl"
    append(spool, job_line(id="a"))
    queue.ingest(NOW)
    [retired] = (tmp_path / RETIRED_DIR).iterdir()
    append(retired, '{"id": "cut", "model": "llama-1b"')  # a writer that died mid-line
    queue.ingest(NOW + timedelta(seconds=5))
    assert not retired.exists()
    [rejection] = rejections(tmp_path)
    assert (rejection["uid"], rejection["line_no"]) == (os.getuid(), 2)
    assert "incomplete (no newline)" in str(rejection["reason"])
    assert rejection["line"] == '{"id": "cut", "model": "llama-1b"'


def test_jobs_and_status_read_rejected_hostile_lines(
    queue: Queue, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stored line is re-read to find the id it claimed: it must not raise there either."""
    from daemon.cli import main

    append(queue.path, "".join(POISON))
    queue.ingest(NOW)
    state = ("--state-dir", str(queue.state_dir))
    assert main(["jobs", "--state", "rejected", "--json", *state]) == 0
    assert len(json.loads(capsys.readouterr().out)) == len(POISON)
    assert main(["status", "nope", *state]) == 2
    assert "unknown job 'nope'" in capsys.readouterr().err


def test_a_lock_someone_holds_on_a_queue_file_fails_a_submit_instead_of_hanging_it(
    tmp_path: Path,
) -> None:
    """Anyone who can open a queue file (0644) can ``flock`` it for ever: ``carbond submit``
    waited for that lock without end; it now gives up after its wait with a one-line error."""
    from daemon.queue.files import append_line

    target = tmp_path / QUEUE_NAME
    append(target, job_line(id="first"))
    fd = os.open(target, os.O_RDONLY)  # another open file: its lock conflicts with a writer's
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        with pytest.raises(QueueError, match=r"has held the file's lock for 0\.2 s"):
            append_line(target, json.loads(job_line(id="second")), lock_wait_s=0.2)
    finally:
        os.close(fd)
    append_line(target, json.loads(job_line(id="second")), lock_wait_s=0.2)  # released: written
    assert [json.loads(line)["id"] for line in target.read_text().splitlines()] == [
        "first",
        "second",
    ]


def _copy_in_place(path: Path) -> None:
    """``path`` replaced by a byte-for-byte copy with another inode, as a copied or restored
    state dir has (``cp -a``, ``rsync``, a file-level backup)."""
    copy = path.with_name(path.name + ".copy")
    copy.write_bytes(path.read_bytes())
    os.replace(copy, path)


def test_a_copied_queue_file_is_read_on_from_its_offset(queue: Queue, ledger: Ledger) -> None:
    append(queue.path, job_line(id="a") + job_line() + '{"model": "nope"}\n'
           + json.dumps({"cancel": "a"}) + "\n")  # fmt: skip
    first = queue.ingest(NOW)
    assert (len(first.accepted), first.rejected, first.cancels) == (2, 1, ("a",))
    inode = queue.path.stat().st_ino
    _copy_in_place(queue.path)
    assert queue.path.stat().st_ino != inode
    append(queue.path, job_line(id="b"))
    again = queue.ingest(NOW)
    # The line without an id is not a second job, nor the bad line a second rejection.
    assert (again.accepted, again.rejected, again.cancels) == (("b",), 0, ())
    assert len(ledger.jobs()) == 3 and len(rejections(queue.state_dir)) == 1
    assert ledger.queue_files()[QUEUE_NAME].inode == queue.path.stat().st_ino


def test_a_replaced_queue_file_with_the_same_last_bytes_is_read_from_the_start(
    queue: Queue, ledger: Ledger
) -> None:
    append(queue.path, job_line(id="a", name="x" * 40) + job_line(id="same"))
    assert len(queue.ingest(NOW).accepted) == 2
    other = queue.path.with_name("other")
    other.write_text(job_line(id="c", name="y" * 40) + job_line(id="same"))  # same size, tail
    os.replace(other, queue.path)
    result = queue.ingest(NOW)
    assert (result.accepted, result.duplicates) == (("c",), 1)


def test_a_queue_offset_from_before_its_crc_was_kept_learns_it_then_survives_a_copy(
    queue: Queue, ledger: Ledger
) -> None:
    append(queue.path, job_line() + job_line(id="a"))
    assert len(queue.ingest(NOW).accepted) == 2
    with ledger.transaction():  # as an older carbond recorded it (schema 7)
        ledger._exec("UPDATE queue_files SET prefix_crc = NULL")
    assert queue.ingest(NOW).accepted == ()
    assert ledger.queue_files()[QUEUE_NAME].prefix_crc is not None
    _copy_in_place(queue.path)
    assert queue.ingest(NOW).accepted == ()


def test_an_ignored_spool_file_is_forgotten_once_it_is_gone(queue: Queue, ledger: Ledger) -> None:
    """The queue remembered each ignored file (to log it once) for as long as the daemon ran:
    a user planting files under fresh names, and removing them, grew that record without end.
    A file gone from ``queue.d`` is forgotten; one still there is still logged only once."""
    other = os.getuid() + 1
    spool = queue.state_dir / SPOOL_DIR
    for n in range(20):  # fewer than a pass reads of one owner's
        append(spool / f"{other}.{n:04x}.jsonl", job_line(id=f"squatter-{n}"))
    with structlog.testing.capture_logs() as logs:
        queue.ingest(NOW)
        assert len(queue.ignored_files()) == 20
        for n in range(19):
            (spool / f"{other}.{n:04x}.jsonl").unlink()
        queue.ingest(NOW)
        assert list(queue.ignored_files()) == [f"{SPOOL_DIR}/{other}.0013.jsonl"]
        queue.ingest(NOW)
    assert len([e for e in logs if e["event"] == "queue_file_ignored"]) == 20  # each once
    assert ledger.jobs() == []


def test_a_fifo_left_unread_by_the_per_user_limit_is_not_logged_again(
    queue: Queue, ledger: Ledger
) -> None:
    """What was logged once of a file that cannot be read (a FIFO) was forgotten as soon as a
    pass did not read it: with more files than a pass reads of one owner, a new file with
    lines pushed the last FIFO out for a pass, and it was logged again when it came back.
    It is forgotten once gone from ``queue.d``, not when a pass leaves it unread."""
    spool, me = queue.state_dir / SPOOL_DIR, os.getuid()
    for n in range(32):  # as many as a pass reads of one owner's
        os.mkfifo(spool / f"{me}.a{n:02x}.jsonl")
    with structlog.testing.capture_logs() as logs:
        queue.ingest(NOW)
        append(spool / f"{me}.ff.jsonl", job_line(id="pushes-one-out"))
        assert queue.ingest(NOW).accepted == ("pushes-one-out",)  # a1f left unread
        queue.ingest(NOW)  # ff.jsonl read to its end: a1f is read again
        (spool / f"{me}.a00.jsonl").unlink()
        queue.ingest(NOW)
        os.mkfifo(spool / f"{me}.a00.jsonl")  # gone for a pass, then back: logged again
        queue.ingest(NOW)
    logged = [Path(e["path"]).name for e in logs if e["event"] == "queue_file_not_regular"]
    assert sorted(logged) == sorted(
        [f"{me}.a{n:02x}.jsonl" for n in range(32)] + [f"{me}.a00.jsonl"]
    )


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
def test_a_rejected_line_with_a_unicode_line_separator_is_one_rejection(
    queue: Queue, separator: str
) -> None:
    """rejected.jsonl quotes the line as written, U+2028, U+2029 and U+0085 unescaped: a
    reader that splits it on more than ``\\n`` (``str.splitlines``, which the test helper
    :func:`rejections` used) cut the record in two."""
    bad = '{"model": "llama-1b", "command": ["true"], "name": "a' + separator + 'b", "x": 1}\n'
    append(queue.path, bad)
    assert queue.ingest(NOW).rejected == 1
    assert separator in (queue.state_dir / "rejected.jsonl").read_text()  # the premise
    [rejection] = rejections(queue.state_dir)
    assert separator in str(rejection["line"])
