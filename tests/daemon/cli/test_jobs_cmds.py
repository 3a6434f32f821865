"""``carbond jobs | status | cancel | export`` through the real parser, and a job attributed
to the user who wrote it (``carbond submit`` itself is tested in test_submit_cmd.py)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.assemble_service import build_service
from daemon.executors.local import LocalExecutor
from daemon.intensity.providers import StaticIntensity
from daemon.ledger import Ledger
from daemon.reports.lines import user_name
from daemon.settings import Settings
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.cli.cli_run import run_cli
from tests.daemon.helpers import PAPER_REGIONS, append, job_line, job_request, make_service
from tests.daemon.users import cli_as, local_user, open_dir

REPO = Path(__file__).resolve().parents[3]


def test_jobs_status_cancel_against_a_running_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor)
    service.start(clock())
    for job_id in ("a", "b"):
        assert run_cli(capsys, "submit", "--state-dir", str(tmp_path), "--id", job_id,
                    "--model", "llama-1b", "--", "true")[0] == 0  # fmt: skip
    service.tick(clock())
    code, out, _ = run_cli(capsys, "jobs", "--state-dir", str(tmp_path), "--json")
    assert code == 0
    assert {(j["job_id"], j["state"]) for j in json.loads(out)} == {("a", "running"),
                                                                    ("b", "running")}  # fmt: skip
    code, out, _ = run_cli(capsys, "status", "a", "--state-dir", str(tmp_path), "--json")
    status = json.loads(out)
    assert status["decision"]["action"] == "start"
    assert status["decision"]["reason"].startswith("fastest free fitting device")
    assert status["decision"]["expected_total_g"] > 0
    assert status["decision"]["run_now_total_g"] == status["decision"]["expected_total_g"]
    assert [t["to"] for t in status["transitions"]] == ["queued", "running"]

    assert run_cli(capsys, "cancel", "a", "--state-dir", str(tmp_path))[0] == 0
    service.ingest(clock())  # read, not acted on yet: the job still runs
    code, out, _ = run_cli(capsys, "status", "a", "--state-dir", str(tmp_path))
    assert code == 0 and out.splitlines()[0].startswith("a (a): running, user ")
    assert ", cancel requested at " + clock().isoformat() in out.splitlines()[0]
    service.tick(clock.advance(5))
    assert executor.cancels == ["a"]
    assert service.ledger.job_state("a") == "cancelled"
    code, _, err = run_cli(capsys, "cancel", "a", "--state-dir", str(tmp_path))
    # was 'job a is already cancelled' ('... is already succeeded' for a job that ran)
    assert (code, err) == (
        2,
        "carbond: error: job a has already ended (cancelled): nothing to cancel\n",
    )
    code, _, err = run_cli(capsys, "status", "zzz", "--state-dir", str(tmp_path))
    assert (code, "unknown job 'zzz'" in err) == (2, True)  # bad input: exit 2 (issue 14 item 13)

    code, out, _ = run_cli(capsys, "jobs", "--state-dir", str(tmp_path), "--state", "cancelled")
    assert code == 0 and "a" in out
    export = tmp_path / "decisions.json"
    assert run_cli(capsys, "export", "decisions", str(export), "--state-dir", str(tmp_path))[0] == 0
    assert {row["job_id"] for row in json.loads(export.read_text())} == {"a", "b"}


@pytest.mark.parametrize("ledger", [False, True], ids=["daemon never started", "daemon down"])
def test_cancel_reaches_a_job_the_daemon_has_not_read_yet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ledger: bool
) -> None:
    """Submitted while the daemon is down, cancelled before it comes back: the cancel line
    follows the job's in the same file, so the job is cancelled before it ever starts."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    if ledger:
        make_service(tmp_path, executor).close()
    for job_id in ("a", "b"):
        assert run_cli(capsys, "submit", "--state-dir", str(tmp_path), "--id", job_id,
                    "--model", "llama-1b", "--", "true")[0] == 0  # fmt: skip
    code, out, err = run_cli(capsys, "cancel", "a", "--state-dir", str(tmp_path), "--json")
    assert code == 0, err
    assert json.loads(out) == {"job_id": "a", "cancel_requested": True, "state": None,
                               "queue_file": str(tmp_path / "queue.jsonl"),
                               "held": None}  # fmt: skip
    code, _, err = run_cli(capsys, "cancel", "zzz", "--state-dir", str(tmp_path))
    assert (code, "unknown job 'zzz'" in err) == (2, True)
    code, out, err = run_cli(capsys, "status", "b", "--state-dir", str(tmp_path), "--json")
    assert code == 0, err  # not "unknown job": it is there, waiting for the daemon
    assert json.loads(out) == {"job_id": "b", "state": "submitted", "cancel_requested": False,
                               "queue_file": str(tmp_path / "queue.jsonl"),
                               "newline_pending": False, "held": None}  # fmt: skip
    # a's cancel waits in the same file, after its line: status says so
    code, out, err = run_cli(capsys, "status", "a", "--state-dir", str(tmp_path), "--json")
    assert (code, json.loads(out)["cancel_requested"]) == (0, True), err
    code, out, _ = run_cli(capsys, "status", "a", "--state-dir", str(tmp_path))
    assert out == (f"a: submitted to {tmp_path / 'queue.jsonl'}, not read by the daemon yet; "
                   "cancel requested (it will be cancelled before it starts)\n")  # fmt: skip
    service = make_service(tmp_path, executor)
    service.start(clock())
    service.tick(clock())
    assert service.ledger.job_state("a") == "cancelled"
    assert [launch.job_id for launch in executor.launches] == ["b"]
    code, out, _ = run_cli(capsys, "status", "b", "--state-dir", str(tmp_path), "--json")
    assert (code, json.loads(out)["state"]) == (0, "running")  # read now: the ledger's
    # a line the daemon read and rejected is not a job waiting to be read: nothing to cancel
    append(service.queue.path, '{"id": "bad", "model": "llama-1b", "command": "true"}\n')
    service.tick(clock())
    code, _, err = run_cli(capsys, "cancel", "bad", "--state-dir", str(tmp_path))
    assert (code, "'bad' was never queued: its line was rejected (queue.jsonl line 4" in err) == (
        2, True)  # fmt: skip
    code, out, _ = run_cli(capsys, "status", "bad", "--state-dir", str(tmp_path))
    assert code == 2 and out.startswith("bad: rejected (queue.jsonl line 4): ")
    # nor after a copy of the state dir (the same bytes, another inode: the daemon reads on)
    copy = service.queue.path.with_name("queue.copy")
    shutil.copy2(service.queue.path, copy)
    copy.replace(service.queue.path)
    code, _, err = run_cli(capsys, "cancel", "bad", "--state-dir", str(tmp_path))
    assert (code, "'bad' was never queued: its line was rejected (queue.jsonl line 4" in err) == (
        2, True)  # fmt: skip
    service.close()


def test_another_user_sees_a_job_in_jobs_and_status_alike_but_cannot_cancel_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/daemon.md "Who sees and touches a job": everyone's jobs, command included, in
    both commands (the ledger is world-readable); a cancel only by the owner or root."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor)
    service.start(clock())
    assert run_cli(capsys, "submit", "--state-dir", str(tmp_path), "--id", "mine",
                "--model", "llama-1b", "--", "/bin/echo", "hi")[0] == 0  # fmt: skip
    service.tick(clock())
    queue = (tmp_path / "queue.jsonl").read_bytes()
    monkeypatch.setattr(os, "getuid", lambda: 4242)
    code, out, _ = run_cli(capsys, "jobs", "--state-dir", str(tmp_path), "--json")
    assert code == 0 and [j["job_id"] for j in json.loads(out)] == ["mine"]
    code, out, _ = run_cli(capsys, "status", "mine", "--state-dir", str(tmp_path), "--json")
    assert code == 0 and json.loads(out)["command"] == ["/bin/echo", "hi"]
    code, out, err = run_cli(capsys, "cancel", "mine", "--state-dir", str(tmp_path))
    assert (code, out) == (2, "")
    assert err == f"carbond: error: job mine belongs to {user_name(os.geteuid())}, not to you\n"
    assert (tmp_path / "queue.jsonl").read_bytes() == queue
    assert not (tmp_path / "queue.d").exists() or not any((tmp_path / "queue.d").iterdir())
    service.close()


def test_jobs_without_a_ledger_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "jobs", "--state-dir", str(tmp_path))
    assert code == 2  # a state_dir without a ledger: bad input, as for `carbond report`
    assert "no ledger" in err


def _test_user() -> pwd.struct_passwd:
    return local_user("carbond-test-user")  # also tests/daemon/test_statedir_lock.py's


def _as_user(user: pwd.struct_passwd, argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        argv, check=False, cwd="/", user=user.pw_uid, group=user.pw_gid, extra_groups=[],
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, capture_output=True,
    )  # fmt: skip


@pytest.fixture(name="open_dir")
def open_dir_fixture() -> Iterator[Path]:
    """``users.open_dir``'s directory other users can traverse, removed after the test."""
    path = open_dir()
    yield path
    shutil.rmtree(path)


@pytest.mark.root
@pytest.mark.parametrize("how", ["raw append", "carbond submit"])
def test_a_job_is_attributed_to_the_user_who_wrote_it(open_dir: Path, how: str) -> None:
    user = _test_user()
    state = open_dir / "state"
    service = make_service(state, RecordingExecutor())
    clock = FakeClock()
    service.start(clock())  # creates queue.d (1733) for users who do not own queue.jsonl
    spool = state / "queue.d" / f"{user.pw_uid}.jsonl"
    line = json.dumps({"id": "theirs", "model": "llama-1b", "command": ["id", "-u"],
                       "user": "root"})  # fmt: skip
    if how == "raw append":
        done = _as_user(user, ["sh", "-c", f"echo '{line}' >> {spool}"])
    else:
        # (this venv's interpreter may be unreadable to them: cli_as finds one that is not)
        cli = cli_as(user, open_dir)
        done_cli = cli.run(user, "submit", "--state-dir", str(state), "--id", "theirs",
                           "--model", "llama-1b", "--", "id", "-u")  # fmt: skip
        assert done_cli.returncode == 0, done_cli.stderr
        done = _as_user(user, ["true"])
    assert done.returncode == 0, done.stderr
    assert spool.stat().st_uid == user.pw_uid
    service.tick(clock())
    job = service.ledger.job("theirs")
    assert (job.uid, job.gid) == (user.pw_uid, user.pw_gid)
    [launch] = service.executors["local"].launches  # type: ignore[attr-defined]
    assert (launch.uid, launch.gid) == (user.pw_uid, user.pw_gid)


@pytest.mark.root
def test_a_users_job_runs_with_that_users_uid(open_dir: Path) -> None:
    """Queue line by a user -> ledger -> plan -> local executor -> the process runs as them."""
    user = _test_user()
    state = open_dir / "state"
    executor = LocalExecutor(log_dir=state / "logs", grace_s=1.0)
    settings = Settings(state_dir=state, regions=PAPER_REGIONS[:1], policy={"name": "run-now"})
    with Ledger.open(state / "ledger.db") as ledger:
        service = build_service(settings, ledger, {"local": executor}, intensity=StaticIntensity())
        service.start(datetime.now(UTC))
        line = json.dumps({"id": "whoami", "model": "llama-1b", "command": ["id", "-u"]})
        spool = state / "queue.d" / f"{user.pw_uid}.jsonl"
        done = _as_user(user, ["sh", "-c", f"echo '{line}' >> {spool}"])
        assert done.returncode == 0, done.stderr
        for _ in range(200):  # real processes: tick until the job has ended (at most ~10 s)
            service.tick(datetime.now(UTC))
            if ledger.job_state("whoami") not in {"queued", "planned", "running"}:
                break
            time.sleep(0.05)
        assert ledger.job_state("whoami") == "succeeded"
    assert (state / "logs" / "whoami.out").read_text().strip() == str(user.pw_uid)


def test_status_shows_ones_own_rejected_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = FakeClock()
    service = make_service(tmp_path, RecordingExecutor(auto_finish=False))
    service.start(clock())
    with (tmp_path / "queue.jsonl").open("a") as queue:
        queue.write('{"id": "bad1", "model": "llama-1b", "command": ["true"], "batch_size": 0}\n')
    service.tick(clock())
    code, out, _ = run_cli(capsys, "status", "bad1", "--state-dir", str(tmp_path), "--json")
    assert code == 2
    payload = json.loads(out)
    assert payload["state"] == "rejected"
    [line] = payload["rejected_lines"]
    assert line["file"] == "queue.jsonl" and line["line_no"] == 1
    assert "field 'batch_size'" in line["reason"]
    code, out, _ = run_cli(capsys, "status", "bad1", "--state-dir", str(tmp_path))
    assert code == 2
    assert out.startswith("bad1: rejected (queue.jsonl line 1): line 1: field 'batch_size'")


def test_cancel_of_a_rejected_line_says_it_was_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``carbond cancel bad1`` for a line the daemon rejected said ``neither the ledger nor any
    queue file has it``, though the queue file holds that line and ``status bad1`` shows why it
    was refused. Cancel now says the same (exit 2, nothing appended)."""
    clock = FakeClock()
    service = make_service(tmp_path, RecordingExecutor(auto_finish=False))
    service.start(clock())
    queue = tmp_path / "queue.jsonl"
    append(queue, '{"id": "bad1", "model": "llama-1b", "command": ["true"], "batch_size": 0}\n')
    service.tick(clock())
    before = queue.read_bytes()
    code, out, err = run_cli(capsys, "cancel", "bad1", "--state-dir", str(tmp_path))
    assert (code, out) == (2, "")
    assert err == ("carbond: error: job 'bad1' was never queued: its line was rejected "
                   "(queue.jsonl line 1: line 1: field 'batch_size': Input should be greater "
                   "than or equal to 1); nothing to cancel\n")  # fmt: skip
    assert queue.read_bytes() == before
    code, _, err = run_cli(capsys, "cancel", "nosuch", "--state-dir", str(tmp_path))
    assert code == 2 and "neither the ledger nor" in err
    service.close()


def test_jobs_shows_a_page_with_totals_and_streams_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = make_service(tmp_path, RecordingExecutor())
    service.start(FakeClock()())
    append(service.queue.path, "".join(job_line(id=f"j{k:03d}") for k in range(120)))
    service.ingest(FakeClock()())
    state = ("--state-dir", str(tmp_path))
    code, out, _ = run_cli(capsys, "jobs", *state)
    assert code == 0
    assert "j049" in out and "j050" not in out
    assert "jobs 1-50 of 120 (queued 120)" in out and "more: --offset 50" in out
    code, out, _ = run_cli(capsys, "jobs", *state, "--offset", "100", "--limit", "50")
    assert "j100" in out and "j119" in out and "j099" not in out and "more:" not in out
    assert "jobs 101-120 of 120" in out
    code, out, _ = run_cli(capsys, "jobs", *state, "--json")
    assert [row["job_id"] for row in json.loads(out)] == [f"j{k:03d}" for k in range(120)]
    code, out, _ = run_cli(capsys, "jobs", *state, "--json", "--limit", "3", "--offset", "10")
    assert [row["job_id"] for row in json.loads(out)] == ["j010", "j011", "j012"]
    code, out, _ = run_cli(capsys, "jobs", *state, "--json", "--state", "running")
    assert json.loads(out) == []
    code, out, _ = run_cli(capsys, "jobs", *state, "--json", "--limit", "0")
    assert json.loads(out) == []
    code, out, _ = run_cli(capsys, "jobs", *state, "--limit", "0")  # was a page of 50
    assert code == 0 and "j000" not in out and "more:" not in out
    assert "120 jobs (queued 120), none shown: --limit 0" in out and "total over 120 jobs" in out
    code, _, err = run_cli(capsys, "jobs", *state, "--offset", "-1")
    assert code == 2 and "negative" in err
    code, out, _ = run_cli(capsys, "jobs", *state, "--offset", "500")
    assert code == 0 and "no jobs from --offset 500: 120 in all (queued 120)" in out
    huge = str(10**21)  # past SQLite's 64-bit integers: an OverflowError traceback before
    code, out, _ = run_cli(capsys, "jobs", *state, "--limit", huge)
    assert code == 0 and "jobs 1-120 of 120" in out
    code, out, _ = run_cli(capsys, "jobs", *state, "--offset", huge)
    assert code == 0 and "no jobs from --offset" in out
    code, out, _ = run_cli(capsys, "jobs", *state, "--json", "--limit", huge, "--offset", "118")
    assert [row["job_id"] for row in json.loads(out)] == ["j118", "j119"]


def test_a_job_name_is_shown_as_text_never_as_markup_or_terminal_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Any user names their job. ``[/bold]`` made ``carbond jobs`` end in rich's MarkupError
    traceback for everyone, ``[red]x[/red]`` was shown styled as ``x``, and an escape sequence
    in a name reached the terminal of whoever ran ``jobs`` or ``status``."""
    names = {"m0": "[/bold]", "m1": "[red]x[/red]", "m2": "a\x1b]0;owned\x07b"}
    service = make_service(tmp_path, RecordingExecutor())
    service.start(FakeClock()())
    for job_id, name in names.items():
        append(service.queue.path, job_line(id=job_id, name=name))
    service.tick(FakeClock()())
    service.ledger.close()
    code, out, err = run_cli(capsys, "jobs", "--state-dir", str(tmp_path))
    assert (code, err) == (0, "")
    assert "[/bold]" in out and "[red]x[/red]" in out and "a\\x1b]0;owned\\x07b" in out
    code, out, _ = run_cli(capsys, "status", "m2", "--state-dir", str(tmp_path))
    assert code == 0 and out.startswith("m2 (a\\x1b]0;owned\\x07b): ")
    assert "\x1b" not in out and "\x07" not in out
    code, out, _ = run_cli(capsys, "jobs", "--state-dir", str(tmp_path), "--json")
    assert {job["job_id"]: job["name"] for job in json.loads(out)} == names  # as stored


def test_a_run_reason_from_a_jobs_argv_never_drives_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The wrapper's "command not found: ARGV0" is the run's reason: an escape sequence a user
    put in argv[0] reached the terminal of whoever ran ``status`` on that job."""
    state = tmp_path / "state"
    executor = LocalExecutor(log_dir=state / "logs", grace_s=1.0)
    settings = Settings(state_dir=state, regions=PAPER_REGIONS[:1], policy={"name": "run-now"})
    with Ledger.open(state / "ledger.db") as ledger:
        service = build_service(settings, ledger, {"local": executor}, intensity=StaticIntensity())
        service.start(datetime.now(UTC))
        append(service.queue.path, job_line(id="esc", command=["/no\x1b]0;owned\x07such"]))
        for _ in range(200):  # a real wrapper: tick until the job has ended (at most ~10 s)
            service.tick(datetime.now(UTC))
            if ledger.job_state("esc") not in {"queued", "planned", "running"}:
                break
            time.sleep(0.05)
        assert ledger.job_state("esc") == "failed"
    code, out, _ = run_cli(capsys, "status", "esc", "--state-dir", str(state))
    assert code == 0 and "command not found: /no\\x1b]0;owned\\x07such" in out
    assert "\x1b" not in out and "\x07" not in out
    # the job's reason (its failed transition) says which command, not just "exit code 127"
    assert "exit code 127: command not found: /no\\x1b]0;owned\\x07such" in out


def test_status_says_an_estimated_energy_is_estimated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A job nothing metered ended with ``outcome: 4.7 g measured (estimated)``."""
    clock = FakeClock()
    service = make_service(tmp_path, RecordingExecutor())
    service.start(clock())
    append(service.queue.path, job_line(id="a"))
    service.tick(clock())
    service.tick(clock.advance(3600))
    assert service.ledger.outcome("a")["energy_method"] == "estimated"  # type: ignore[index]
    service.ledger.close()
    code, out, _ = run_cli(capsys, "status", "a", "--state-dir", str(tmp_path))
    [line] = [line for line in out.splitlines() if line.startswith("outcome:")]
    assert code == 0 and " g energy estimated, predicted " in line and "measured" not in line


def test_status_says_a_held_job_has_not_started(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A job held in Slurm for its planned start (its run recorded, its Slurm job pending)
    read ``run: slurm on qc/0 from None``. It now says where it is held and that it has not
    started; --json keeps ``started_at`` null."""
    at = datetime(2026, 12, 7, 3, 33, tzinfo=UTC)
    with Ledger.open(tmp_path / "ledger.db") as ledger, ledger.transaction():
        ledger.add_job(job_request("held", at), 0, 0, "queue.jsonl:1", at)
        ledger.transition("held", "planned", at, "hold: plan T4 in qc at 04:30")
        ledger.add_run("held", "slurm", ["qc/0"], [0], 60.0, at)
        ledger.set_run_token("held", '{"slurm_id": "34", "cluster": null, "region": "qc"}')

    code, out, _ = run_cli(capsys, "status", "held", "--state-dir", str(tmp_path))
    [line] = [line for line in out.splitlines() if line.startswith("run:")]
    assert code == 0
    assert line == "run: slurm on qc/0, held there for its planned start (not started yet)"
    code, out, _ = run_cli(capsys, "status", "held", "--state-dir", str(tmp_path), "--json")
    assert json.loads(out)["run"]["started_at"] is None


def test_an_empty_ledger_says_there_are_no_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fresh ledger's ``carbond jobs`` said 'no jobs from --offset 0: 0 in all (none)', an
    offset the operator never gave."""
    Ledger.open(tmp_path / "ledger.db").close()
    code, out, _ = run_cli(capsys, "jobs", "--state-dir", str(tmp_path))
    assert code == 0 and out.splitlines()[-2] == "no jobs yet"
    code, out, _ = run_cli(capsys, "jobs", "--state", "queued", "--state", "failed",
                        "--state-dir", str(tmp_path))  # fmt: skip
    assert code == 0 and out.splitlines()[-2] == "no queued, failed jobs"
