"""The local executor against real processes: logs, env, exit status, cancel, adopt, users."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.executors.base import ExitStatus, LaunchSpec, NotStarted, RunHandle
from daemon.executors.errors import ExecutorError, LaunchRefusedError
from daemon.executors.jobfiles import process_start_ticks
from daemon.executors.local import LocalExecutor
from tests.daemon.executors.local_jobs import NOW, FakeMonotonic, job_spec, wait_ended

PY = sys.executable


@pytest.fixture
def reaper() -> Iterator[list[RunHandle]]:
    """Handles whose process groups are killed after the test, even when it fails."""
    handles: list[RunHandle] = []
    yield handles
    for handle in handles:
        token = json.loads(handle.token)
        if process_start_ticks(token["pid"]) == token["start_ticks"]:  # still that process
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(token["pid"], signal.SIGKILL)


def _spec(tmp_path: Path, job_id: str, *argv: str, **kw: object) -> LaunchSpec:
    """:func:`job_spec` on GPUs 0 and 2 unless ``kw`` says otherwise."""
    return job_spec(tmp_path, job_id, *argv, **{"gpu_indices": (0, 2), **kw})


def _wait_for_file(path: Path, timeout_s: float = 30.0) -> None:
    end = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > end:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.02)


def test_runs_argv_without_shell_with_gpus_logs_and_clean_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARBOND_ELECTRICITYMAPS__TOKEN", "secret-token")
    code = (
        "import os, sys, json; print(json.dumps(dict(os.environ))); "
        "print('to-stderr', file=sys.stderr); print(sys.argv[1:])"
    )
    executor = LocalExecutor()
    spec = _spec(tmp_path, "job-1", PY, "-c", code, "$HOME; rm -rf /", env={"HF_HOME": "/x"})
    handle = executor.launch(spec, NOW)

    status = wait_ended(executor, handle)

    assert status.succeeded and status.exit_code == 0 and status.signal is None
    out = (tmp_path / "logs" / "job-1.out").read_text().splitlines()
    env = json.loads(out[0])
    assert env["CUDA_VISIBLE_DEVICES"] == "0,2"
    assert env["CARBOND_JOB_ID"] == "job-1"
    assert env["HF_HOME"] == "/x"
    assert "CARBOND_ELECTRICITYMAPS__TOKEN" not in env
    assert out[1] == "['$HOME; rm -rf /']"  # passed as one argument, never through a shell
    assert (tmp_path / "logs" / "job-1.err").read_text() == "to-stderr\n"
    assert (tmp_path / "logs").stat().st_mode & 0o777 == 0o751  # as tmpfiles makes it (was 0755)
    assert handle.executor == "local" and handle.started_at == NOW


def test_cuda_numbers_the_gpus_as_nvml_does(tmp_path: Path) -> None:
    """``CUDA_VISIBLE_DEVICES`` holds NVML indices (what the meter reads), but CUDA numbers
    GPUs fastest first unless ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (NVML's order, nvidia-smi's): on
    a node with two kinds of GPU the job ran on another GPU than the one planned and metered.
    The job's environment is exactly the documented one; the spec's ``env`` cannot undo it."""
    code = "import os, json; print(json.dumps(dict(os.environ)))"
    executor = LocalExecutor()
    spec = _spec(tmp_path, "job-order", PY, "-c", code, env={"CUDA_DEVICE_ORDER": "FASTEST_FIRST"})
    assert wait_ended(executor, executor.launch(spec, NOW)).succeeded
    env = json.loads((tmp_path / "logs" / "job-order.out").read_text())
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert env["CUDA_VISIBLE_DEVICES"] == "0,2"
    assert set(env) - {"LC_CTYPE"} == {  # LC_CTYPE: Python's own C-locale coercion
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "CUDA_DEVICE_ORDER", "CUDA_VISIBLE_DEVICES",
        "CARBOND_JOB_ID",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "exit_code", "signal_number", "reason"),
    [
        ((PY, "-c", "raise SystemExit(3)"), 3, None, ""),
        ((PY, "-c", "import os; os.kill(os.getpid(), 11)"), None, 11, "SIGSEGV"),
        (("/nonexistent/carbond-test-binary",), 127, None, "command not found"),
    ],
)
def test_exit_status_is_recorded(
    tmp_path: Path,
    argv: tuple[str, ...],
    exit_code: int | None,
    signal_number: int | None,
    reason: str,
) -> None:
    executor = LocalExecutor()
    handle = executor.launch(_spec(tmp_path, "job-x", *argv), NOW)

    status = wait_ended(executor, handle)

    assert (status.exit_code, status.signal) == (exit_code, signal_number)
    assert reason in status.reason
    assert not status.succeeded


def test_cancel_sends_sigterm_to_the_process_group(tmp_path: Path, reaper: list[RunHandle]) -> None:
    marker = tmp_path / "started"
    code = f"import pathlib, time; pathlib.Path({str(marker)!r}).touch(); time.sleep(60)"
    executor = LocalExecutor()
    handle = executor.launch(_spec(tmp_path, "job-c", PY, "-c", code), NOW)
    reaper.append(handle)
    _wait_for_file(marker)

    executor.cancel(handle, NOW)
    status = wait_ended(executor, handle)

    assert status.signal == signal.SIGTERM and status.exit_code is None


def test_cancel_escalates_to_sigkill_after_the_grace_period(
    tmp_path: Path, reaper: list[RunHandle]
) -> None:
    marker = tmp_path / "started"
    code = (
        "import pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"pathlib.Path({str(marker)!r}).touch(); time.sleep(60)"
    )
    clock = FakeMonotonic()
    executor = LocalExecutor(grace_s=10.0, monotonic=clock)
    handle = executor.launch(_spec(tmp_path, "job-k", PY, "-c", code), NOW)
    reaper.append(handle)
    _wait_for_file(marker)

    executor.cancel(handle, NOW)  # ignored by the job
    assert executor.poll([handle], NOW) == []  # still inside the grace period: no SIGKILL yet
    clock.t += 11.0
    status = wait_ended(executor, handle)

    assert status.signal == signal.SIGKILL
    assert "grace" in status.reason


def test_sigkill_after_the_grace_reaches_what_the_job_moved_to_another_process_group(
    tmp_path: Path, reaper: list[RunHandle]
) -> None:
    """A job ignoring SIGTERM whose child is in a group of its own (a shell's job control,
    ``setpgid``): the SIGKILL of the whole group took the wrapper with it, so nothing was left
    to end the child, which kept running (and holding its GPU) after the job was recorded
    cancelled. The escalation now kills the job's whole session."""
    pid_file = tmp_path / "child.pid"
    code = (
        "import pathlib, signal, subprocess, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        " child = subprocess.Popen(['sleep', '300'], process_group=0);"
        f" tmp = pathlib.Path({str(pid_file)!r} + '.tmp'); tmp.write_text(str(child.pid));"
        f" tmp.rename({str(pid_file)!r}); time.sleep(60)"
    )
    clock = FakeMonotonic()
    executor = LocalExecutor(grace_s=10.0, monotonic=clock)
    handle = executor.launch(_spec(tmp_path, "job-pg", PY, "-c", code), NOW)
    reaper.append(handle)
    _wait_for_file(pid_file)
    child = int(pid_file.read_text())
    ticks = process_start_ticks(child)
    assert ticks is not None and os.getpgid(child) == child  # a group of its own

    executor.cancel(handle, NOW)
    clock.t += 11.0
    status = wait_ended(executor, handle)

    assert status.signal == signal.SIGKILL
    for _ in range(100):  # SIGKILL is delivered at once; the zombie is reaped by init
        if process_start_ticks(child) != ticks:
            break
        time.sleep(0.02)
    alive = process_start_ticks(child) == ticks
    if alive:
        os.kill(child, signal.SIGKILL)
    assert not alive, "the job's child outlived the cancel"


def test_a_restarted_daemon_adopts_a_running_job_and_reads_its_status(
    tmp_path: Path, reaper: list[RunHandle]
) -> None:
    go = tmp_path / "go"
    marker = tmp_path / "started"
    code = (
        "import pathlib, time\n"
        f"pathlib.Path({str(marker)!r}).touch()\n"
        f"while not pathlib.Path({str(go)!r}).exists(): time.sleep(0.02)\n"
        "raise SystemExit(4)"
    )
    before = LocalExecutor()
    handle = before.launch(_spec(tmp_path, "job-a", PY, "-c", code), NOW)
    reaper.append(handle)
    _wait_for_file(marker)

    after = LocalExecutor()  # a new daemon: it did not start the process
    assert after.adopt([handle], NOW) == [handle]
    go.touch()
    status = wait_ended(after, handle)

    assert status.exit_code == 4
    before.poll([handle], NOW)  # reap the child in this test process


def test_adopt_recovers_a_status_written_while_the_daemon_was_down(tmp_path: Path) -> None:
    before = LocalExecutor()
    handle = before.launch(_spec(tmp_path, "job-d", PY, "-c", "raise SystemExit(7)"), NOW)
    _wait_for_file(tmp_path / "logs" / "job-d.status.json")
    before.poll([handle], NOW)

    (result,) = LocalExecutor().adopt([handle], NOW)

    assert isinstance(result, ExitStatus) and result.exit_code == 7


def test_adopt_does_not_mistake_a_reused_pid_for_the_job(tmp_path: Path) -> None:
    ticks = process_start_ticks(os.getpid())
    assert ticks is not None
    status_file = tmp_path / "never.status.json"
    token = {"pid": os.getpid(), "start_ticks": ticks + 1, "status_file": str(status_file)}
    handle = RunHandle("job-r", "local", json.dumps(token), NOW)

    (result,) = LocalExecutor().adopt([handle], NOW)

    assert isinstance(result, ExitStatus)
    assert result.exit_code is None and result.signal is None
    assert "without recording" in result.reason


def test_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    executor = LocalExecutor(allow_root_jobs=False)
    with pytest.raises(LaunchRefusedError, match="file name"):
        executor.launch(_spec(tmp_path, "../etc/x", "true"), NOW)
    with pytest.raises(LaunchRefusedError, match="empty command"):
        executor.launch(_spec(tmp_path, "job-e"), NOW)
    with pytest.raises(LaunchRefusedError, match="as root"):
        executor.launch(_spec(tmp_path, "job-root", "true", uid=0, gid=0), NOW)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LaunchRefusedError, match="uid 1001 but the daemon runs as uid 1000"):
        executor.launch(_spec(tmp_path, "job-u", "true", uid=1001, gid=1001), NOW)
    assert not (tmp_path / "logs").exists()


@pytest.mark.root
def test_a_job_runs_as_the_submitting_user_with_no_extra_groups(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to switch users (run the suite as root to cover it)")
    nobody = pwd.getpwnam("nobody")
    executor = LocalExecutor(allow_root_jobs=False)
    spec = _spec(tmp_path, "job-n", "id", uid=nobody.pw_uid, gid=nobody.pw_gid)
    handle = executor.launch(spec, NOW)

    status = wait_ended(executor, handle)

    assert status.succeeded
    out = (tmp_path / "logs" / "job-n.out").read_text()
    assert f"uid={nobody.pw_uid}(" in out and f"gid={nobody.pw_gid}(" in out
    assert out.count("(") == 3, out  # uid, gid, groups=the one primary group: nothing else
    log = tmp_path / "logs" / "job-n.out"
    assert (log.stat().st_uid, log.stat().st_gid) == (nobody.pw_uid, nobody.pw_gid)
    status_file = tmp_path / "logs" / "job-n.status.json"
    assert status_file.stat().st_uid == 0  # the user cannot forge their job's outcome


@pytest.mark.root
def test_a_root_job_runs_in_its_own_primary_group_with_no_extra_groups(tmp_path: Path) -> None:
    """A root job (``allow_root_jobs``) ignored the spec's gid and kept the daemon's groups."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch groups (run the suite as root to cover it)")
    nobody = pwd.getpwnam("nobody")
    executor = LocalExecutor(allow_root_jobs=True)
    handle = executor.launch(_spec(tmp_path, "job-r", "id", uid=0, gid=nobody.pw_gid), NOW)

    assert wait_ended(executor, handle).succeeded
    out = (tmp_path / "logs" / "job-r.out").read_text()
    assert out.startswith(f"uid=0(root) gid={nobody.pw_gid}("), out
    assert out.count("(") == 3, out  # uid, gid, groups=the one primary group: nothing else


def test_a_run_whose_token_was_never_recorded_is_found_by_its_files(
    tmp_path: Path, reaper: list[RunHandle]
) -> None:
    go = tmp_path / "go"
    marker = tmp_path / "started"
    code = (
        "import pathlib, time\n"
        f"pathlib.Path({str(marker)!r}).touch()\n"
        f"while not pathlib.Path({str(go)!r}).exists(): time.sleep(0.02)\n"
    )
    before = LocalExecutor()
    running = before.launch(_spec(tmp_path, "job-t", PY, "-c", code), NOW)
    reaper.append(running)
    finished = before.launch(_spec(tmp_path, "job-f", PY, "-c", "raise SystemExit(5)"), NOW)
    _wait_for_file(marker)
    _wait_for_file(tmp_path / "logs" / "job-f.status.json")
    lost = [RunHandle(h.job_id, "local", "", NOW) for h in (running, finished)]
    lost.append(RunHandle("job-never", "local", "", NOW))

    after = LocalExecutor(log_dir=tmp_path / "logs")
    found, ended, never = after.adopt(lost, NOW)

    assert isinstance(found, RunHandle) and found.token == running.token
    assert isinstance(ended, ExitStatus) and ended.exit_code == 5
    assert isinstance(never, NotStarted)
    go.touch()
    assert wait_ended(after, found).succeeded
    before.poll([running, finished], NOW)  # reap the children in this test process


def test_a_decoy_with_the_wrappers_command_line_is_not_taken_for_the_job(
    tmp_path: Path, reaper: list[RunHandle]
) -> None:
    """Anyone can start a process whose command line names a job's spec file: a recovering
    daemon adopting it would signal the decoy on cancel and take the decoy's end for the job's
    (issue: found by cmdline alone). Decoys: a loose one (the names among other arguments) and,
    as root with setpriv, the wrapper itself with the exact command line but another real uid,
    held reading a FIFO put where the spec will be (then removed)."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    spec_file = log_dir / "job-d.spec.json"
    loose = [PY, "-c", "import time; time.sleep(60)", "daemon.executors.wrapper", str(spec_file)]
    decoys = [subprocess.Popen(loose)]
    writer = None
    try:
        if os.geteuid() == 0 and (setpriv := shutil.which("setpriv")):
            nobody = pwd.getpwnam("nobody").pw_uid
            os.mkfifo(spec_file)
            wrapper = [PY, "-I", "-m", "daemon.executors.wrapper", str(spec_file)]
            decoys.append(  # real uid: another user's (effective root, to run this PY)
                subprocess.Popen([setpriv, f"--ruid={nobody}", *wrapper], stderr=subprocess.DEVNULL)
            )
            writer = _open_fifo_writer(spec_file)  # once the decoy is blocked reading it
            spec_file.unlink()
        _wait_for_cmdline(decoys[0].pid, str(spec_file))
        started = tmp_path / "started"
        executor = LocalExecutor()
        script = f"touch {started}; exec sleep 60"
        running = executor.launch(_spec(tmp_path, "job-d", "/bin/sh", "-c", script), NOW)
        reaper.append(running)
        _wait_for_file(started)

        (found,) = LocalExecutor(log_dir=log_dir).adopt([RunHandle("job-d", "local", "", NOW)], NOW)

        assert isinstance(found, RunHandle) and found.token == running.token
        os.killpg(json.loads(running.token)["pid"], signal.SIGKILL)
        wait_ended(executor, running)
    finally:
        if writer is not None:
            os.close(writer)
        for decoy in decoys:
            decoy.kill()
            decoy.wait()


def _open_fifo_writer(fifo: Path, timeout_s: float = 30.0) -> int:
    end = time.monotonic() + timeout_s
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: no reader yet
            assert time.monotonic() < end, f"nobody opened {fifo}"
            time.sleep(0.02)


def _wait_for_cmdline(pid: int, text: str, timeout_s: float = 30.0) -> None:
    end = time.monotonic() + timeout_s
    while text.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes():
        assert time.monotonic() < end, f"pid {pid} never ran with {text} in its command line"
        time.sleep(0.02)


def test_a_recovering_daemon_claims_the_start_so_a_late_wrapper_never_runs_it(
    tmp_path: Path,
) -> None:
    ran = tmp_path / "ran"
    dying = LocalExecutor(python=str(tmp_path / "no-python"))  # spec written, wrapper never up
    code = f"import pathlib; pathlib.Path({str(ran)!r}).touch()"
    with pytest.raises(ExecutorError, match="job-late"):
        dying.launch(_spec(tmp_path, "job-late", PY, "-c", code), NOW)
    spec_file = tmp_path / "logs" / "job-late.spec.json"

    (result,) = LocalExecutor(log_dir=tmp_path / "logs").adopt(
        [RunHandle("job-late", "local", "", NOW)], NOW
    )
    late = subprocess.run(
        [PY, "-I", "-m", "daemon.executors.wrapper", str(spec_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert isinstance(result, NotStarted)
    assert late.returncode == 0 and "claimed the start" in late.stderr
    assert not ran.exists()
    assert not (tmp_path / "logs" / "job-late.status.json").exists()


def test_a_job_starts_in_its_working_directory(tmp_path: Path) -> None:
    work = tmp_path / "work dir"
    work.mkdir()
    (work / "serve_batch.py").write_text("import os; print(os.getcwd())\n")
    executor = LocalExecutor()
    handle = executor.launch(_spec(tmp_path, "job-cwd", PY, "serve_batch.py", cwd=str(work)), NOW)

    status = wait_ended(executor, handle)

    assert status.succeeded, status.reason
    assert (tmp_path / "logs" / "job-cwd.out").read_text().strip() == str(work)


def test_without_a_working_directory_a_job_starts_in_its_users_home(tmp_path: Path) -> None:
    executor = LocalExecutor()
    handle = executor.launch(
        _spec(tmp_path, "job-home", PY, "-c", "import os; print(os.getcwd())"), NOW
    )

    assert wait_ended(executor, handle).succeeded
    home = pwd.getpwuid(os.geteuid()).pw_dir
    expected = home if os.path.isdir(home) else "/"
    assert (tmp_path / "logs" / "job-home.out").read_text().strip() == os.path.realpath(expected)


@pytest.mark.root
def test_a_working_directory_the_user_cannot_enter_is_refused(tmp_path: Path) -> None:
    """Root could enter it; the job's user could not: the launch is refused, and the wrapper
    refuses too if the directory closes between the check and the start."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a job as another user")
    nobody = pwd.getpwnam("nobody")
    secret = tmp_path / "secret"  # pytest's tmp dirs are 0700 root: nobody cannot enter
    secret.mkdir()
    executor = LocalExecutor(allow_root_jobs=False, log_dir=tmp_path / "logs")
    spec = _spec(tmp_path, "job-s", "id", uid=nobody.pw_uid, gid=nobody.pw_gid, cwd=str(secret))
    with pytest.raises(LaunchRefusedError, match=f"uid {nobody.pw_uid} cannot enter working "
                       f"directory {secret} \\(no search permission on "):  # fmt: skip
        executor.launch(spec, NOW)

    # The wrapper's own check, as when permissions change after the daemon looked.
    from daemon.executors import jobfiles, wrapper

    logs = tmp_path / "logs"
    logs.mkdir()
    status_file = logs / "job-s.status.json"
    spec_file = logs / "job-s.spec.json"
    jobfiles.write_private(spec_file, jobfiles.wrapper_spec(spec, status_file, 1))
    done = subprocess.run([PY, "-I", "-m", "daemon.executors.wrapper", str(spec_file)],
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "cannot enter working directory" in done.stderr
    recorded = json.loads(status_file.read_text())
    assert recorded["exit_code"] == wrapper.EXIT_NOT_RUNNABLE
    assert f"cannot start: uid {nobody.pw_uid} cannot enter working directory" in recorded["reason"]


def test_a_job_that_forks_and_exits_leaves_nothing_running(
    tmp_path: Path, reaper: list[RunHandle]
) -> None:
    pid_file = tmp_path / "child.pid"
    script = f"sleep 300 & echo $! > {pid_file}; exit 0"
    executor = LocalExecutor()
    handle = executor.launch(_spec(tmp_path, "job-f", "/bin/sh", "-c", script), NOW)
    reaper.append(handle)

    status = wait_ended(executor, handle)

    assert status.exit_code == 0
    assert "1 process(es) it left running were terminated" in status.reason
    child = int(pid_file.read_text())
    assert process_start_ticks(child) is None, "the forked child outlived its job"


def test_a_child_in_a_process_group_of_its_own_does_not_outlive_its_job(
    tmp_path: Path, reaper: list[RunHandle]
) -> None:
    """A child moved to its own process group (setpgid, as a shell's job control does) is
    still in the job's session: it is ended with the job (issue: only the group was)."""
    pid_file = tmp_path / "child.pid"
    code = (
        "import os, pathlib, time\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.setpgid(0, 0)\n"
        "    time.sleep(300)\n"
        "    os._exit(0)\n"
        f"pathlib.Path({str(pid_file)!r}).write_text(str(pid))\n"
    )
    executor = LocalExecutor()
    handle = executor.launch(_spec(tmp_path, "job-g", PY, "-c", code), NOW)
    reaper.append(handle)

    status = wait_ended(executor, handle)

    child = int(pid_file.read_text())
    try:
        assert status.exit_code == 0
        assert "1 process(es) it left running were terminated" in status.reason
        assert process_start_ticks(child) is None, "the child outlived its job"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


def test_a_job_whose_wrapper_was_killed_alone_does_not_outlive_its_reported_end(
    tmp_path: Path, reaper: list[RunHandle]
) -> None:
    """The wrapper SIGKILLed on its own (the OOM killer picks the process, not the group):
    the end was reported (``the job's wrapper ended without recording a status``: the job
    failed, its GPU free for the next one) while the job itself ran on, untracked, on that
    GPU. The job's session is killed before its end is reported."""
    pid_file = tmp_path / "job.pid"
    code = (
        "import os, pathlib, time; tmp = pathlib.Path("
        f"{str(pid_file)!r} + '.tmp'); tmp.write_text(str(os.getpid()));"
        f" tmp.rename({str(pid_file)!r}); time.sleep(60)"
    )
    executor = LocalExecutor()
    handle = executor.launch(_spec(tmp_path, "job-oom", PY, "-c", code), NOW)
    reaper.append(handle)
    _wait_for_file(pid_file)
    job = int(pid_file.read_text())
    ticks = process_start_ticks(job)
    assert ticks is not None

    try:
        os.kill(json.loads(handle.token)["pid"], signal.SIGKILL)  # the wrapper only
        status = wait_ended(executor, handle)

        assert not status.succeeded and "without recording a status" in status.reason
        for _ in range(100):  # SIGKILL is delivered at once; the zombie is reaped by init
            if process_start_ticks(job) != ticks:
                break
            time.sleep(0.02)
        assert process_start_ticks(job) != ticks  # not left running on its GPU
    finally:
        if process_start_ticks(job) == ticks:
            os.kill(job, signal.SIGKILL)


def test_a_wrapper_slow_to_exit_after_writing_its_status_is_reaped_later(
    tmp_path: Path, reaper: list[RunHandle]
) -> None:
    """A wrapper that took over a second to exit after writing its status (a loaded machine)
    was left unreaped: its run had ended, so nothing polled it again, and it stayed a zombie
    in the executor for the daemon's life. Later polls reap it."""
    shim = tmp_path / "slow-exit-python"
    shim.write_text(f'#!/bin/sh\n"{PY}" "$@"\nsleep 1.5\n')
    shim.chmod(0o755)
    executor = LocalExecutor(python=str(shim))
    first = executor.launch(_spec(tmp_path, "job-slow", "true"), NOW)
    pid = json.loads(first.token)["pid"]

    assert wait_ended(executor, first).succeeded
    assert pid in executor._children  # its wrapper had not exited within the reap's second
    time.sleep(1.0)  # now it has: a zombie
    other = executor.launch(_spec(tmp_path, "job-other", PY, "-c", "import time; time.sleep(60)"),
                            NOW)  # fmt: skip
    reaper.append(other)
    executor.poll([other], NOW)

    assert pid not in executor._children
    assert not Path(f"/proc/{pid}").exists()  # reaped, not a zombie
    executor.cancel(other, NOW)
    assert not wait_ended(executor, other).succeeded


def test_an_adopted_job_whose_wrapper_was_killed_alone_does_not_outlive_its_reported_end(
    tmp_path: Path, reaper: list[RunHandle]
) -> None:
    """As above, for a run a restarted daemon adopted: its wrapper is not this daemon's child,
    so its pid may name a later session; the job's own processes (``CARBOND_JOB_ID``) are
    killed, and only they."""
    pid_file = tmp_path / "job.pid"
    code = (
        "import os, pathlib, time; tmp = pathlib.Path("
        f"{str(pid_file)!r} + '.tmp'); tmp.write_text(str(os.getpid()));"
        f" tmp.rename({str(pid_file)!r}); time.sleep(60)"
    )
    before = LocalExecutor()
    handle = before.launch(_spec(tmp_path, "job-oom2", PY, "-c", code), NOW)
    reaper.append(handle)
    _wait_for_file(pid_file)
    job = int(pid_file.read_text())
    ticks = process_start_ticks(job)
    assert ticks is not None
    after = LocalExecutor()  # a new daemon: it did not start the wrapper
    assert after.adopt([handle], NOW) == [handle]
    try:
        os.kill(json.loads(handle.token)["pid"], signal.SIGKILL)  # the wrapper only
        status = wait_ended(after, handle)

        assert not status.succeeded and "without recording a status" in status.reason
        for _ in range(100):
            if process_start_ticks(job) != ticks:
                break
            time.sleep(0.02)
        assert process_start_ticks(job) != ticks  # not left running on its GPU
    finally:
        if process_start_ticks(job) == ticks:
            os.kill(job, signal.SIGKILL)
        before.poll([handle], NOW)  # reap the wrapper in this test process


def test_one_unreadable_run_token_does_not_stop_the_other_jobs_poll(
    tmp_path: Path, reaper: list[RunHandle]
) -> None:
    """A ledger row whose token does not decode (a hand edit, a damaged page) made every poll
    raise: no local job was ever seen to end. That run now ends, unfollowed, with the reason;
    the others are polled as before."""
    executor = LocalExecutor()
    good = executor.launch(_spec(tmp_path, "good", PY, "-c", "pass"), NOW)
    reaper.append(good)
    bad = RunHandle("bad", "local", "{not json", NOW)
    end = time.monotonic() + 30
    ended: dict[str, ExitStatus] = {}
    while "good" not in ended and time.monotonic() < end:
        ended.update((s.job_id, s) for s in executor.poll([bad, good], NOW))
        time.sleep(0.02)
    assert ended["good"].succeeded
    assert ended["bad"].exit_code is None and "unreadable local run token" in ended["bad"].reason
