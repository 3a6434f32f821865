"""The jobs' cgroups on the daemon's subtree (:class:`JobCgroups`): ``<subtree>/job-<id>``
each, made before the job's wrapper starts, killed whole and removed when the job stops.

Which subtree, and the daemon's own leaf in it: :mod:`daemon.executors.local_cgroup`.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from daemon.executors.local_cgroup_caps import JobCaps, forks_refused, out_of_memory
from daemon.executors.pidsignal import signal_if

__all__ = ["JobCgroups", "read_procs"]

_JOB_PREFIX = "job-"
_KILL_TIMEOUT_S = 1.0  # the most one stop waits for a cgroup to empty; a later poll retries


def read_procs(cgroup: Path) -> list[str]:
    """The pids a cgroup's ``cgroup.procs`` lists, as text.

    Raises:
        OSError: it cannot be read (no such cgroup).
    """
    return (cgroup / "cgroup.procs").read_text(encoding="ascii").split()


def _write_control(path: Path, value: int) -> None:
    """Write ``value`` to the control file ``path``, never making it (``O_CREAT``): a
    controller not enabled has no such file, and its cap is then not applied.

    Raises:
        OSError: it is missing, or the kernel refused the value.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, str(value).encode("ascii"))
    finally:
        os.close(fd)


class JobCgroups:
    """The jobs' cgroups under ``root`` (a :func:`probe` path): ``job-<id>`` each.

    Args:
        root: the subtree.
        kill_file: whether to use ``cgroup.kill`` where the kernel has it (False: the SIGKILL
            loop every kernel supports, as on one before 5.14).
        monotonic: the clock for the wait for a killed cgroup to empty.
        caps: written to each job's cgroup as it is made (``memory.max``, ``memory.high``,
            ``pids.max``): only those whose controller the subtree enables
            (:func:`daemon.executors.local_cgroup_caps.enable`).
    """

    def __init__(
        self,
        root: Path,
        *,
        kill_file: bool = True,
        monotonic: Callable[[], float] = time.monotonic,
        caps: JobCaps | None = None,
    ) -> None:
        self.root = root
        self.caps = caps if caps is not None else JobCaps()
        self._kill_file = kill_file
        self._monotonic = monotonic

    def path_of(self, job_id: str) -> Path:
        """Job ``job_id``'s cgroup, a child of :attr:`root`.

        Raises:
            ValueError: ``job_id`` would name a path elsewhere (a ``/`` in it): the daemon
                kills and removes what this names.
        """
        if "/" in job_id or "\0" in job_id:
            raise ValueError(f"job id {job_id!r} cannot name a cgroup")
        return self.root / f"{_JOB_PREFIX}{job_id}"

    def job_ids(self) -> list[str]:
        """The job ids of the ``job-<id>`` cgroups under :attr:`root`, whoever made them."""
        try:
            names = sorted(entry.name for entry in self.root.iterdir() if entry.is_dir())
        except OSError:  # no subtree any more: no job's cgroup either
            return []
        return [name.removeprefix(_JOB_PREFIX) for name in names if name.startswith(_JOB_PREFIX)]

    def create(self, job_id: str) -> Path:
        """A new, empty cgroup for job ``job_id`` (one left by an earlier attempt is killed
        and removed first), root's and 0755: its control files are root's, 0644 or tighter,
        so the job (its user) cannot move itself out nor make sub-cgroups; with :attr:`caps`
        written to it, before any process is in it.

        Raises:
            OSError: it cannot be made (or the earlier one not removed), or a cap not written
                (the caller removes it).
        """
        path = self.path_of(job_id)
        if path.exists() and not self.remove(job_id):
            raise OSError(errno.EBUSY, "an earlier attempt's cgroup is still in use", str(path))
        path.mkdir(mode=0o755)
        for name, value in self.caps.files().items():
            try:
                _write_control(path / name, value)
            except OSError as exc:
                raise OSError(exc.errno, f"cannot set its cap {name} = {value}: {exc.strerror}",
                              str(path / name)) from exc  # fmt: skip
        return path

    def out_of_memory(self, job_id: str) -> str:
        """What the OOM killer did in job ``job_id``'s cgroup, in words ("": nothing, or it
        has no cgroup): :func:`~daemon.executors.local_cgroup_caps.out_of_memory`. Read it
        before :meth:`remove`."""
        try:
            return out_of_memory(self.path_of(job_id))
        except ValueError:  # no such cgroup name
            return ""

    def forks_refused(self, job_id: str) -> str:
        """The forks job ``job_id``'s ``pids.max`` refused, in words ("": none, or it has no
        cgroup): :func:`~daemon.executors.local_cgroup_caps.forks_refused`. Read it before
        :meth:`remove`."""
        try:
            return forks_refused(self.path_of(job_id))
        except ValueError:  # no such cgroup name
            return ""

    def members(self, job_id: str) -> list[int]:
        """The pids in job ``job_id``'s cgroup and in the cgroups a root job made under it
        (none when it has no cgroup)."""
        pids: list[int] = []
        for cgroup in self._tree(job_id):
            try:
                pids.extend(int(pid) for pid in read_procs(cgroup))
            except (OSError, ValueError):  # removed meanwhile, or a bad line
                continue
        return pids

    def _tree(self, job_id: str) -> list[Path]:
        """Job ``job_id``'s cgroup and every cgroup under it (a root job may make some and
        move processes there), deepest first; none when it has no cgroup."""
        try:
            top = self.path_of(job_id)
        except ValueError:  # no such cgroup name
            return []
        return [Path(d) for d, _, _ in os.walk(top, topdown=False)]

    def signal(self, job_id: str, sig: int, *, spare: int | None = None) -> int:
        """Send ``sig`` to each process in job ``job_id``'s cgroup but ``spare``; each only if
        still in it once a pidfd on it is open (a pid that ended and went to another process
        meanwhile is not signalled). How many were signalled."""

        def still_in(pid: int) -> bool:
            return pid in self.members(job_id)

        return sum(signal_if(pid, sig, still_in) for pid in self.members(job_id) if pid != spare)

    def remove(self, job_id: str, wait_s: float = _KILL_TIMEOUT_S) -> bool:
        """Kill every process in job ``job_id``'s cgroup (and in the cgroups a root job made
        under it) and remove them, deepest first, waiting at most
        ``wait_s`` for them to die; whether it is gone (a process slow to die, as a GPU
        process tearing down its context, keeps it: call again later). True when there was
        none (or ``job_id`` names none)."""
        try:
            path = self.path_of(job_id)
        except ValueError:
            return True
        if not path.exists():
            return True
        deadline = self._monotonic() + wait_s
        kill = path / "cgroup.kill"
        freeze = path / "cgroup.freeze"
        try:
            if self._kill_file and kill.exists():
                kill.write_text("1", encoding="ascii")
            elif freeze.exists():  # no forks while the loop below kills: none is missed
                freeze.write_text("1", encoding="ascii")
        except OSError:
            pass  # gone meanwhile, or not allowed: the loop below still kills
        while True:
            if not self._kill_file or not kill.exists():
                self.signal(job_id, signal.SIGKILL)
            try:
                for cgroup in self._tree(job_id):  # deepest first: a cgroup with children stays
                    cgroup.rmdir()
                return not path.exists()
            except FileNotFoundError:
                continue  # one removed meanwhile: the others are tried again
            except OSError as exc:
                if exc.errno != errno.EBUSY or self._monotonic() >= deadline:
                    return False
            time.sleep(0.01)
