"""The local executor: jobs as process groups on this node's GPUs, as the submitting user.

Each job runs under the wrapper (:mod:`daemon.executors.wrapper`), started without a shell as
the leader of a new session, so ``kill(-pid)`` reaches the whole job and the job outlives a
daemon restart (the unit uses ``KillMode=process``); with a cgroup subtree of the daemon's,
each job also runs in a cgroup of its own, which its stop kills whole
(:mod:`daemon.executors.local_cgroup`). The wrapper switches to the job's uid/gid (no
supplementary groups; a root job's too) when the daemon is root, and records the exit status
to ``<log_dir>/<job_id>.status.json`` so the outcome survives a daemon crash.

Files per job in ``log_dir`` (owned by the job's user, except spec and status which stay the
daemon's): ``<id>.out`` and ``<id>.err`` (stdout, stderr, appended), ``<id>.spec.json`` (what
the wrapper runs), ``<id>.started.<attempt>`` (claimed by the wrapper just before it starts
the job, or by a recovering daemon to stop it from ever starting), ``<id>.status.json`` (how
it ended).

The run token (the wrapper's pid and start time) and the recovery of a run whose token was
never recorded: :mod:`daemon.executors.local_recover`.

Rules: the job runs as exactly ``spec.uid`` (in ``spec.gid`` when the daemon is root); a daemon
that is not root runs only jobs of its own uid, as itself (its own groups: it can change none);
a root job runs only when ``allow_root_jobs`` is set. The job's
environment is built from scratch (never the daemon's, which may hold tokens): ``PATH``, ``HOME``,
``USER``, ``LOGNAME``, ``LANG``, the spec's ``env``, ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (so CUDA
numbers the GPUs as NVML does), ``CUDA_VISIBLE_DEVICES`` (NVML indices) and ``CARBOND_JOB_ID``. It
starts with ``oom_score_adj`` 0 and the resource limits ``job_limits``.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import structlog

from daemon.executors import jobfiles
from daemon.executors.base import ExitStatus, LaunchSpec, RunHandle
from daemon.executors.errors import ExecutorError, JobNotRunnableError, LaunchRefusedError
from daemon.executors.local_cgroup_jobs import JobCgroups
from daemon.executors.local_recover import SAFE_ID, Token, recover
from daemon.executors.pidsignal import session_of, signal_group_if, signal_if
from daemon.executors.workdir import workdir_problem
from daemon.executors.wrapper import JOB_LIMITS

__all__ = ["DEFAULT_GRACE_S", "LocalExecutor"]

DEFAULT_GRACE_S = 30.0
_REAP_TIMEOUT_S = 1.0

log = structlog.get_logger(__name__)


class LocalExecutor:
    """Runs jobs as local process groups. Not thread-safe: the service calls it from one thread.

    Args:
        grace_s: seconds between SIGTERM and SIGKILL on :meth:`cancel`.
        allow_root_jobs: whether a job submitted by root (uid 0) may run.
        log_dir: where jobs' files are, to recover a run whose token was never recorded (the
            daemon stopped between starting it and storing its handle); usually
            ``<state_dir>/logs``, the ``log_dir`` the service puts in every spec.
        python: the interpreter that runs the wrapper (default: this one).
        monotonic: the clock for the grace period (tests inject a fake one).
        job_limits: resource limits set in each job's process before it starts, by name
            (:data:`~daemon.executors.wrapper.JOB_LIMITS`: ``nproc``, ``nofile``,
            ``core_bytes``, ``fsize_bytes``); one left out is the daemon's own.
        cgroups: where each job gets a cgroup of its own
            (:mod:`daemon.executors.local_cgroup`), which its stop kills whole; None: jobs
            are followed by their session only (a process that calls ``setsid`` escapes).

    Raises:
        ValueError: ``job_limits`` names a limit the wrapper does not know.
    """

    def __init__(
        self,
        *,
        grace_s: float = DEFAULT_GRACE_S,
        allow_root_jobs: bool = True,
        log_dir: Path | None = None,
        python: str = sys.executable,
        monotonic: Callable[[], float] = time.monotonic,
        job_limits: Mapping[str, int] | None = None,
        cgroups: JobCgroups | None = None,
    ) -> None:
        unknown = sorted(set(job_limits or {}) - set(JOB_LIMITS))
        if unknown:
            raise ValueError(f"unknown job limits {unknown} (known: {sorted(JOB_LIMITS)})")
        self._job_limits = dict(job_limits or {})
        self._grace_s = grace_s
        self._allow_root = allow_root_jobs
        self._log_dir = log_dir
        self._python = python
        self._monotonic = monotonic
        self._children: dict[int, subprocess.Popen[bytes]] = {}  # ours, reaped in poll
        self._kill_at: dict[str, float] = {}  # job_id -> monotonic time of the SIGKILL
        self.cgroups = cgroups
        self._unremoved: set[str] = set()  # ended jobs whose cgroups are still to remove

    @property
    def name(self) -> str:
        return "local"

    def launch(self, spec: LaunchSpec, now: datetime) -> RunHandle:
        """Start ``spec`` under the wrapper; return at once.

        Raises:
            LaunchRefusedError: another uid's job while not root, or a root job
                when not allowed; :class:`JobNotRunnableError` (a fault of the job's own): bad
                job id, empty argv, a NUL in its argv, environment or working directory, or a
                working directory the user cannot enter.
            ExecutorError: the log directory or the wrapper could not be set up.
        """
        self._check(spec)
        log_dir = spec.log_dir
        status = log_dir / f"{spec.job_id}.status.json"
        spec_file = log_dir / f"{spec.job_id}.spec.json"
        try:
            _make_log_dir(log_dir)
            status.unlink(missing_ok=True)
            out = jobfiles.open_log(log_dir / f"{spec.job_id}.out", spec.uid, spec.gid)
            err = jobfiles.open_log(log_dir / f"{spec.job_id}.err", spec.uid, spec.gid)
            attempt = jobfiles.previous_attempt(spec_file) + 1
            try:
                cgroup = self.cgroups.create(spec.job_id) if self.cgroups else None
                self._unremoved.discard(spec.job_id)  # an earlier attempt's: create() removed it
                jobfiles.write_private(
                    spec_file,
                    jobfiles.wrapper_spec(spec, status, attempt, self._job_limits, cgroup),
                )
                child = subprocess.Popen(  # a fixed argv, no shell
                    [self._python, "-I", "-m", "daemon.executors.wrapper", str(spec_file)],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                    env={"PATH": jobfiles.DEFAULT_PATH, "LANG": "C.UTF-8"},
                    cwd="/",
                )
            finally:
                os.close(out)
                os.close(err)
        except OSError as exc:
            if self.cgroups is not None:
                self.cgroups.remove(spec.job_id)
            raise ExecutorError(f"job {spec.job_id}: cannot start in {log_dir}: {exc}") from exc
        ticks = jobfiles.process_start_ticks(child.pid)
        self._children[child.pid] = child
        token = Token(child.pid, ticks if ticks is not None else -1, status)
        return RunHandle(spec.job_id, self.name, token.encode(), now)

    def _check(self, spec: LaunchSpec) -> None:
        if not SAFE_ID.fullmatch(spec.job_id):
            raise JobNotRunnableError(f"job {spec.job_id!r}: id unusable as a file name")
        if not spec.argv:
            raise JobNotRunnableError(f"job {spec.job_id}: empty command")
        if (where := _nul_in(spec)) is not None:
            raise JobNotRunnableError(
                f"job {spec.job_id}: its {where} holds a NUL, which no process can be given"
            )
        if spec.uid == 0 and not self._allow_root:
            raise LaunchRefusedError(f"job {spec.job_id}: refusing to run a job as root")
        euid = os.geteuid()
        if euid not in (0, spec.uid):
            raise LaunchRefusedError(
                f"job {spec.job_id}: submitted by uid {spec.uid} but the daemon runs as uid "
                f"{euid} and is not root; it cannot run jobs as another user"
            )
        if spec.cwd is not None and (problem := workdir_problem(spec.cwd, spec.uid, spec.gid)):
            raise JobNotRunnableError(f"job {spec.job_id}: {problem}")

    def poll(self, handles: Sequence[RunHandle], now: datetime) -> list[ExitStatus]:
        """Exit statuses of the jobs that have ended; escalates overdue cancels to SIGKILL;
        reaps the wrappers that exited after their runs were reported (:meth:`_reap`)."""
        ended, polled = [], set()
        for handle in handles:
            try:
                token = Token.decode(handle)
            except ExecutorError as exc:  # one bad row must not stop every other job's poll
                ended.append(ExitStatus(handle.job_id, now, None, None, f"{exc}: not followed"))
                continue
            polled.add(token.pid)
            result = self._check_one(handle, token, now)
            if result is not None:
                ended.append(result)
                self._kill_at.pop(handle.job_id, None)
            elif self._monotonic() >= self._kill_at.get(handle.job_id, math.inf):
                _kill_session(token.pid, self._leader(token))
                if self.cgroups is not None:  # the wrapper stays, to record the job's end
                    self.cgroups.signal(handle.job_id, signal.SIGKILL, spare=token.pid)
        self._remove_cgroups()
        for pid in self._children.keys() - polled:  # their runs were reported already
            if self._children[pid].poll() is not None:
                del self._children[pid]
        return ended

    def _check_one(self, handle: RunHandle, token: Token, now: datetime) -> ExitStatus | None:
        """The run's end, or None while its wrapper runs. Our own wrapper is reaped only once
        what it left is killed: until then its pid (the session's id) cannot be reused."""
        child = self._children.get(token.pid)
        recorded = jobfiles.read_status(handle.job_id, token.status_file, now)
        if recorded is not None:
            recorded = self._ended(handle.job_id, recorded)
            self._reap(token.pid)
            return recorded
        if self._alive(token):
            return None
        recorded = jobfiles.read_status(
            handle.job_id, token.status_file, now
        )  # written just before exit
        if recorded is not None:
            recorded = self._ended(handle.job_id, recorded)
            self._reap(token.pid)
            return recorded
        killed = handle.job_id in self._kill_at
        reason = (
            "killed after the grace period"
            if killed
            else "the job's wrapper ended without recording a status"
        )
        signalled = int(signal.SIGKILL) if killed else None
        ended = self._ended(handle.job_id, ExitStatus(handle.job_id, now, None, signalled, reason))
        if child is not None:  # our wrapper died alone (the OOM killer): the job it left
            # would run on, on a GPU now free. Not reaped yet, the wrapper holds its pid, so
            # the session of that id is the job's; then it is reaped.
            _kill_session(token.pid, self._leader(token))
            self._reap(token.pid)
        else:  # adopted: the pid may name a later session by now; only the job's processes
            for member in jobfiles.job_members(token.pid, handle.job_id):
                signal_if(member, signal.SIGKILL, _job_member(token.pid, handle.job_id))
        return ended

    def _end_cgroup(self, job_id: str) -> None:
        """The job ended: kill what it left in its cgroup (a process that left its session)
        and remove the cgroup; one not empty yet is retried at each poll."""
        if self.cgroups is not None and not self.cgroups.remove(job_id):
            self._unremoved.add(job_id)

    def _ended(self, job_id: str, status: ExitStatus) -> ExitStatus:
        """:meth:`_end_cgroup`, and ``status`` with what its caps did in the job's cgroup,
        read before it is removed, in its ``reason``: the OOM killer (also its
        ``out_of_memory``: a job killed at its ``memory.max`` says so, not just ``killed by
        SIGKILL``) and the forks ``pids.max`` refused (a fork bomb's)."""
        oom = forks = ""
        if self.cgroups is not None:
            oom, forks = self.cgroups.out_of_memory(job_id), self.cgroups.forks_refused(job_id)
        self._end_cgroup(job_id)
        notes = "; ".join(note for note in (oom, forks) if note)
        if not notes:
            return status
        reason = f"{status.reason}; {notes}" if status.reason else notes
        return replace(status, reason=reason, out_of_memory=oom)

    def sweep(self, followed: Collection[str]) -> None:
        """At start: kill and remove each job's cgroup whose job is not one of ``followed``
        (the runs the daemon follows here), as a job's end does: the previous daemon's list of
        those still to remove (a process slow to die) was in its memory. One not removable
        yet is retried at each poll. Logs ``local_cgroups_swept`` once when there were any."""
        if self.cgroups is None:
            return
        left = [j for j in self.cgroups.job_ids() if j not in followed]
        if not left:
            return
        kept = [j for j in left if not self.cgroups.remove(j, 0.0)]  # each killed first
        kept = [j for j in kept if not self.cgroups.remove(j)]  # a second for the slow
        self._unremoved.update(kept)
        log.info("local_cgroups_swept", count=len(left), jobs=left, not_removed_yet=kept)

    def _remove_cgroups(self) -> None:
        if self.cgroups is not None:
            self._unremoved = {j for j in self._unremoved if not self.cgroups.remove(j, 0.0)}

    def _reap(self, pid: int) -> None:
        """The wrapper exits right after writing the status: collect it (briefly blocking)."""
        child = self._children.get(pid)
        if child is None:
            return
        try:
            child.wait(timeout=_REAP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return  # still finishing; a later poll reaps it (whichever jobs it polls)
        del self._children[pid]

    def _alive(self, token: Token) -> bool:
        child = self._children.get(token.pid)
        if child is not None:
            return child.returncode is None and not _exited(token.pid)
        return jobfiles.process_start_ticks(token.pid) == token.start_ticks

    def _leader(self, token: Token) -> Callable[[int], bool]:
        """Whether a pid is still the run's wrapper: our child not reaped yet (then its pid
        cannot name anything else), or the process started at the token's tick."""
        child = self._children.get(token.pid)
        if child is not None and child.returncode is None:
            return lambda pid: True
        return lambda pid: jobfiles.process_start_ticks(pid) == token.start_ticks

    def cancel(self, handle: RunHandle, now: datetime) -> None:
        """SIGTERM the job's process group (and its cgroup) now; :meth:`poll` sends SIGKILL
        after the grace,
        counted from the handle's ``cancel_sent_at`` when an earlier daemon sent the cancel
        (a restart does not give the job a new grace)."""
        token = Token.decode(handle)
        if not self._alive(token):
            return
        signal_group_if(token.pid, signal.SIGTERM, self._leader(token))
        if self.cgroups is not None:  # also those that left the session (the wrapper ignores it)
            self.cgroups.signal(handle.job_id, signal.SIGTERM, spare=token.pid)
        grace_s = self._grace_s
        if handle.cancel_sent_at is not None:
            grace_s -= max(0.0, (now - handle.cancel_sent_at).total_seconds())
        self._kill_at.setdefault(handle.job_id, self._monotonic() + max(0.0, grace_s))

    def adopt(self, handles: Sequence[RunHandle], now: datetime) -> list[RunHandle | ExitStatus]:
        """Each handle still running (same pid *and* start time) or its recovered status.

        A handle with an empty token (the daemon stopped before recording it) is looked up by
        its files in ``log_dir`` and, if its wrapper is still running, returned with a token.
        """
        adopted: list[RunHandle | ExitStatus] = []
        for handle in handles:
            if not handle.token:
                recovered = recover(self._log_dir, self.name, handle, now)
                if isinstance(recovered, ExitStatus):  # never started, or ended meanwhile:
                    recovered = self._ended(handle.job_id, recovered)  # with what its caps did
                adopted.append(recovered)
                continue
            token = Token.decode(handle)
            result = self._check_one(handle, token, now)
            adopted.append(handle if result is None else result)
        return adopted


def _kill_session(pid: int, is_leader: Callable[[int], bool]) -> None:
    """SIGKILL the wrapper ``pid``'s process group and every process of its session (it leads
    it): the wrapper dies too, so nothing would be left to end what the job moved to another
    group (``setpgid``, a shell's job control), which would keep running on its GPU.

    Through pidfds (:mod:`daemon.executors.pidsignal`): the group only if ``pid`` is still
    the wrapper, each member only if it is still in that session, checked once a pidfd on it
    is open, so a pid that ended and went to another process meanwhile is not signalled."""
    signal_group_if(pid, signal.SIGKILL, is_leader)
    for member in jobfiles.session_members(pid):
        signal_if(member, signal.SIGKILL, lambda p: session_of(p) == pid)


def _job_member(sid: int, job_id: str) -> Callable[[int], bool]:
    """Whether a pid is (still) one of job ``job_id``'s processes in session ``sid``."""
    wanted = f"CARBOND_JOB_ID={job_id}".encode()

    def check(pid: int) -> bool:
        environ = jobfiles.process_environ(pid, time.monotonic() + 1.0) or b""
        return session_of(pid) == sid and wanted in environ.split(b"\0")

    return check


def _exited(pid: int) -> bool:
    """Whether our child ``pid`` has exited, without reaping it (``WNOWAIT``)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True  # reaped already
    return info is not None


def _make_log_dir(log_dir: Path) -> None:
    """``log_dir`` as the tmpfiles config makes it, whatever the umask, if it is missing: 0751
    (users reach their own logs by name; only the group lists them). One that exists is left
    as the operator made it."""
    log_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        log_dir.mkdir(mode=0o751)
    except FileExistsError:
        return
    os.chmod(log_dir, 0o751)


def _nul_in(spec: LaunchSpec) -> str | None:
    """Which of ``spec``'s command line, environment and working directory holds a NUL (the
    wrapper's ``Popen``, the working directory's ``open``, raise ``ValueError`` on one), or
    None."""
    if any("\0" in word for word in spec.argv):
        return "command line"
    if any("\0" in text for item in spec.env.items() for text in item):
        return "environment"
    if spec.cwd is not None and "\0" in spec.cwd:
        return "working directory"
    return None
