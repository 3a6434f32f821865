"""An unsafe state dir is refused, and nothing carbond creates there follows a link
(issue 13, defect 2)."""

from __future__ import annotations

import ast
import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.executors.jobfiles import open_log, write_private
from daemon.queue import QueueError
from daemon.queue.rejected import write_rejections
from daemon.statedir import (
    LEDGER_NAME,
    UnsafeStateDirError,
    ensure_safe_state_dir,
    lock_state_dir,
    state_dir_problems,
)
from daemon.supervision.health import Health

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown to another uid")


def _state(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    return state


def test_a_private_state_dir_is_safe_and_a_missing_one_is_created_0755(tmp_path: Path) -> None:
    assert state_dir_problems(_state(tmp_path)) == []
    old = os.umask(0o002)
    try:
        ensure_safe_state_dir(tmp_path / "new" / "state")
    finally:
        os.umask(old)
    assert (tmp_path / "new" / "state").stat().st_mode & 0o777 == 0o755
    assert state_dir_problems(tmp_path / "new" / "state") == []


@pytest.mark.parametrize(
    ("breakage", "words"),
    [
        (lambda s: os.chmod(s, 0o775), "state is writable by group or others (mode 0775)"),
        (lambda s: os.chmod(s, 0o757), "writable by group or others (mode 0757)"),
        (lambda s: os.chmod(s.parent, 0o777), "writable by group or others and not sticky"),
        (lambda s: (s / "logs").mkdir(mode=0o777) or os.chmod(s / "logs", 0o777),
         "logs is writable by group or others"),
        (lambda s: (s / "queue.d").mkdir(mode=0o777) or os.chmod(s / "queue.d", 0o777),
         "queue.d must be mode 1733 (sticky)"),
        (lambda s: (s / "rejected.jsonl").symlink_to("/etc/passwd"),
         "rejected.jsonl is a symlink"),
    ],
)  # fmt: skip
def test_each_way_to_let_others_write_is_named(
    tmp_path: Path, breakage: object, words: str
) -> None:
    state = _state(tmp_path)
    breakage(state)  # type: ignore[operator]
    problems = state_dir_problems(state)
    assert any(words in p for p in problems), problems


def test_a_symlinked_component_is_refused(tmp_path: Path) -> None:
    real = _state(tmp_path)
    (tmp_path / "link").symlink_to(tmp_path)
    [problem] = state_dir_problems(tmp_path / "link" / real.name)
    assert problem == f"{tmp_path / 'link'} is a symlink (to {tmp_path}); give the real path"


@needs_root
def test_a_state_dir_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    state = _state(tmp_path)
    os.chown(state, 4242, 4242)
    assert state_dir_problems(state) == [f"{state} is owned by uid 4242, not by the daemon's uid 0"]


def test_carbond_run_refuses_an_unsafe_state_dir_with_one_line(tmp_path: Path) -> None:
    """A process of its own: on a regression the daemon would start and run until the timeout."""
    state = _state(tmp_path)
    os.chmod(state, 0o777)
    config = tmp_path / "carbond.toml"
    config.write_text(f'state_dir = "{state}"\n[[regions]]\nname = "qc"\nzone = "CA-QC"\n'
                      'executor = "local"\ngpus = ["T4"]\n')  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "daemon", "run", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith(f"carbond: error: unsafe state dir {state}: ")
    assert done.stderr.count("\n") == 1
    assert not (state / "ledger.db").exists()  # refused before anything was created
    with pytest.raises(UnsafeStateDirError):
        ensure_safe_state_dir(state)


def test_a_second_daemon_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    """Two daemons would be two writers of one ledger, both planning and starting its jobs."""
    state = _state(tmp_path)
    config = tmp_path / "carbond.toml"
    config.write_text(f'state_dir = "{state}"\n[metrics]\nport = 0\n[[regions]]\nname = "qc"\n'
                      'zone = "CA-QC"\nexecutor = "local"\ngpus = ["T4"]\n')  # fmt: skip
    lock = lock_state_dir(state)  # this process is the running daemon
    job = subprocess.Popen(["sleep", "60"])  # a job it started, which outlives it
    try:
        done = subprocess.run([sys.executable, "-m", "daemon", "run", "--config", str(config)],
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert done.returncode == 1
        assert done.stderr == (
            f"carbond: error: another carbond daemon (pid {os.getpid()}) runs with state dir "
            f"{state}; one daemon per state dir (stop it, or give this one another state_dir)\n"
        )
        assert not (state / "ledger.db").exists()  # refused before the ledger was opened
        os.close(lock)
        os.close(lock_state_dir(state))  # free once the daemon is gone, though its job runs on
    finally:
        job.kill()
        job.wait()


def test_a_running_daemon_of_a_version_before_the_lock_is_refused_too(tmp_path: Path) -> None:
    """A carbond from before daemon.lock, still running after an upgrade, takes no lock: it is
    told by its health.json's pid, alive with this ledger open (this process plays it)."""
    state = _state(tmp_path)
    config = tmp_path / "carbond.toml"
    config.write_text(f'state_dir = "{state}"\n[metrics]\nport = 0\n[[regions]]\nname = "qc"\n'
                      'zone = "CA-QC"\nexecutor = "local"\ngpus = ["T4"]\n')  # fmt: skip
    Health().write(state / "health.json", datetime.now(UTC))
    ledger = sqlite3.connect(state / "ledger.db")
    ledger.execute("CREATE TABLE t (x)")
    try:
        done = subprocess.run([sys.executable, "-m", "daemon", "run", "--config", str(config)],
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    finally:
        ledger.close()
    assert done.returncode == 1
    assert done.stderr == (
        f"carbond: error: another carbond daemon (pid {os.getpid()}, a version that takes no "
        f"daemon.lock) runs with state dir {state}; one daemon per state dir (stop it, or give "
        "this one another state_dir)\n"
    )
    other = subprocess.Popen(["sleep", "60"])  # health.json's pid reused by another process
    try:
        health = {"updated_at": datetime.now(UTC).isoformat(), "pid": other.pid, "problems": {}}
        (state / "health.json").write_text(json.dumps(health))
        os.close(lock_state_dir(state))
    finally:
        other.kill()
        other.wait()


def test_a_job_log_is_never_opened_through_a_link(tmp_path: Path) -> None:
    """A symlink planted at logs/<id>.out made a root-only file the job user's."""
    victim = tmp_path / "victim"
    victim.write_text("secret\n")
    logs = _state(tmp_path)
    (logs / "j1.out").symlink_to(victim)
    with pytest.raises(OSError):
        open_log(logs / "j1.out", os.getuid(), os.getgid())
    os.link(victim, logs / "j2.out")  # a hard link hands it over just the same
    with pytest.raises(OSError, match="not a private regular file"):
        open_log(logs / "j2.out", os.getuid(), os.getgid())
    assert victim.read_text() == "secret\n"
    fd = open_log(logs / "j3.out", os.getuid(), os.getgid())
    os.close(fd)


def test_private_files_and_rejections_never_follow_a_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("secret\n")
    state = _state(tmp_path)
    (state / ".j1.spec.json.tmp").symlink_to(victim)
    write_private(state / "j1.spec.json", {"a": 1})
    assert json.loads((state / "j1.spec.json").read_text()) == {"a": 1}
    (state / "rejected.jsonl").symlink_to(victim)
    rejection = {"file": "queue.jsonl", "reason": "x", "at": datetime.now(UTC).isoformat()}
    with pytest.raises(QueueError, match="cannot record rejected lines"):
        write_rejections(state, [rejection])
    assert victim.read_text() == "secret\n"


def test_the_ledger_file_name_is_spelled_once() -> None:
    """``"ledger.db"`` was a literal in five modules beside ``assemble.LEDGER_NAME`` (the CLI's
    ledger lookups, the unread-job check, the lock-less daemon check): a rename would have
    left some looking for the old file. Only :mod:`daemon.statedir` spells it."""
    root = Path(__file__).resolve().parents[2] / "daemon"
    spelled = sorted(
        str(path.relative_to(root.parent))
        for path in root.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and node.value == LEDGER_NAME
    )
    assert spelled == ["daemon/statedir.py"]
