"""Whether each cluster's Slurm controller answers; while one does not, its commands fail at
once instead of each waiting out Slurm's own connection retries.

Against Slurm 22.05 with slurmctld stopped, ``scontrol show node``, ``scancel`` and ``sbatch``
give up after 9 s and ``squeue`` after 18 s, so a planning round and a reconcile that asked Slurm
held the daemon's one loop thread (ingestion, local jobs, cancels) for 27 s every time.

:class:`Reach` wraps the executor's runner. A command that cannot run or times out
(:class:`SlurmUnavailableError` from the runner), or whose answer says the controller cannot
be reached (:func:`unreachable`), starts an :class:`Outage` of
its cluster and raises :class:`SlurmUnavailableError`, whose message is the same for every
command of that cluster until the outage ends (``Slurm unreachable (<what the first failing
command said>)``): callers log a failure once per message, so once per outage. During an
outage a command for that
cluster raises at once, without running, until the outage's retry time (``RETRY_S`` after the
last failure, doubled after each further one up to ``MAX_RETRY_S``); the first command at or
past it is preceded by ``scontrol ping`` (one connection attempt: milliseconds against a
stopped controller) and runs only if a controller answers UP. A command that gets an answer
ends the outage. A command whose file this host cannot run (missing under ``bin_dir``, not
executable: :class:`SlurmCommandMissingError`) asked nothing of Slurm and starts none: it
would have made the cluster's regions unavailable, their work planned elsewhere, over this
host's configuration. It is remembered instead, by command, until that command runs again
(:meth:`Reach.missing`; ``slurm_command:<name>`` in :func:`problems`, so ``health.json``
names the field to fix); a ping whose ``scontrol`` cannot run lets the command run, to
answer for itself, rather than keep an outage no ping could end.

``sacct`` reads slurmdbd, not the controller: one that gets no answer in time (a hung
slurmdbd) starts an outage of that cluster's *accounting* only (:meth:`Reach.accounting`,
``slurm_accounting_down``), with the same retry times but no ping (nothing cheaper asks
slurmdbd), and raises :class:`SlurmAccountingError`, which is no
:class:`~daemon.executors.errors.ExecutorUnavailableError`: the other commands keep running,
and only the ends that need ``sacct`` wait.

Time is the ``now`` the service hands the executor's methods (:meth:`Reach.at`), so one round
(one ``now``) runs at most one failing command per cluster, and tests need no clock; without a
time (discovery) a command during an outage always pings first. Nothing fails for an outage:
:class:`SlurmUnavailableError` is an :class:`~daemon.executors.errors.ExecutorUnavailableError`,
so a launch is requeued and a poll or cancel retried.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

import structlog

from daemon.executors.slurm import commands as cmd
from daemon.executors.slurm.runner import (
    CommandResult,
    Runner,
    SlurmAccountingError,
    SlurmCommandMissingError,
    SlurmNoAnswerError,
    SlurmUnavailableError,
)
from daemon.executors.slurm.scontrol import ping_argv

__all__ = [
    "MAX_RETRY_S",
    "RETRY_S",
    "Outage",
    "Reach",
    "controller_up",
    "no_answer",
    "problems",
    "unreachable",
]

log = structlog.get_logger(__name__)

RETRY_S: Final = 10.0
MAX_RETRY_S: Final = 120.0

# What Slurm's commands print when the controller does not answer (22.05: "slurm_load_jobs
# error: Unable to contact slurm controller (connect failure)"; with --clusters, "'west' can't
# be reached now"; a controller that accepts but does not answer: "Socket timed out").
_UNREACHABLE = ("unable to contact slurm controller", "can't be reached now", "socket timed out")


@dataclass(frozen=True, slots=True)
class Outage:
    """A cluster whose controller does not answer.

    ``message``: what the first failing command said; ``failures``: failed commands and pings
    since; ``failed_at``: the executor's time at the last of them (None: no time was given).
    """

    message: str
    failures: int
    failed_at: datetime | None

    @property
    def retry_s(self) -> float:
        """Seconds after ``failed_at`` before Slurm is asked again."""
        return float(min(RETRY_S * 2 ** (self.failures - 1), MAX_RETRY_S))

    def due(self, now: datetime | None) -> bool:
        """Whether to ask the controller again at ``now`` (always without a time, or when
        the clock went back past the last failure)."""
        if now is None or self.failed_at is None or now < self.failed_at:
            return True
        return now >= self.failed_at + timedelta(seconds=self.retry_s)


class Reach:
    """A :class:`~daemon.executors.slurm.runner.Runner` that knows which clusters answer.

    Args:
        runner: runs the commands.
        scontrol: the ``scontrol`` to ping with.
    """

    def __init__(self, runner: Runner, scontrol: str) -> None:
        self._runner = runner
        self._scontrol = scontrol
        self._now: datetime | None = None
        self._outages: dict[str | None, Outage] = {}
        self._accounting: dict[str | None, Outage] = {}  # sacct unanswered (slurmdbd hung)
        self._missing: dict[str, str] = {}  # command name -> why this host cannot run it

    def at(self, now: datetime | None) -> None:
        """The time of the executor's current call (None: none, e.g. discovery)."""
        self._now = now

    def outages(self) -> dict[str | None, Outage]:
        """The clusters (None: the local one) whose controller does not answer now."""
        return dict(self._outages)

    def accounting(self) -> dict[str | None, Outage]:
        """The clusters whose ``sacct`` got no answer in time, not asked again yet."""
        return dict(self._accounting)

    def missing(self) -> dict[str, str]:
        """The commands (``scontrol``) this host could not run when last tried, with why
        (:class:`SlurmCommandMissingError`'s message)."""
        return dict(self._missing)

    def __call__(
        self,
        argv: Sequence[str],
        *,
        stdin: str = "",
        uid: int | None = None,
        gid: int | None = None,
    ) -> CommandResult:
        """Run ``argv`` unless its cluster is known not to answer.

        Raises:
            SlurmNoAnswerError: the command got no answer in time (it may have been done).
            SlurmUnavailableError: the controller cannot be reached (now, or still: the
                command did not run).
            SlurmAccountingError: ``sacct`` got no answer in time (now, or still: not run).
        """
        name = Path(argv[0]).name
        try:
            if name == "sacct":
                result = self._sacct(argv, stdin=stdin, uid=uid, gid=gid)
            else:
                result = self._run(argv, stdin=stdin, uid=uid, gid=gid)
        except SlurmCommandMissingError as exc:
            self._cannot_run(name, exc)
            raise
        self._ran(name)
        return result

    def _sacct(
        self, argv: Sequence[str], *, stdin: str, uid: int | None, gid: int | None
    ) -> CommandResult:
        """``sacct``: its own outage, never the controller's."""
        cluster = cmd.cluster_of(argv)
        outage = self._accounting.get(cluster)
        if outage is not None and not outage.due(self._now):
            raise SlurmAccountingError(_message(cluster, outage, "Slurm accounting"))
        try:
            result = self._runner(argv, stdin=stdin, uid=uid, gid=gid)
        except SlurmNoAnswerError as exc:
            if outage is None:
                log.error("slurm_accounting_down", cluster=cluster, error=str(exc))
                outage = Outage(str(exc), 0, self._now)
            outage = replace(outage, failures=outage.failures + 1, failed_at=self._now)
            self._accounting[cluster] = outage
            raise SlurmAccountingError(_message(cluster, outage, "Slurm accounting")) from exc
        if self._accounting.pop(cluster, None) is not None:
            log.info("slurm_accounting_back", cluster=cluster)
        return result

    def _run(
        self, argv: Sequence[str], *, stdin: str, uid: int | None, gid: int | None
    ) -> CommandResult:
        cluster = cmd.cluster_of(argv)
        outage = self._outages.get(cluster)
        if outage is not None:
            if not outage.due(self._now):
                raise SlurmUnavailableError(_message(cluster, outage))
            if not self._pings(cluster):
                pinged = self._failed(cluster, outage.message)
                raise SlurmUnavailableError(_message(cluster, pinged))
        try:
            result = self._runner(argv, stdin=stdin, uid=uid, gid=gid)
        except SlurmCommandMissingError:  # this host's bin_dir, not the controller: no outage
            raise
        except SlurmUnavailableError as exc:
            raise type(exc)(_message(cluster, self._failed(cluster, str(exc)))) from exc
        if unreachable(result.returncode, result.stderr):
            lines = result.stderr.strip().splitlines()
            said = f"{Path(argv[0]).name}: {lines[-1]}"
            error = SlurmNoAnswerError if no_answer(result.stderr) else SlurmUnavailableError
            raise error(_message(cluster, self._failed(cluster, said)))
        if self._outages.pop(cluster, None) is not None:
            log.info("slurm_controller_back", cluster=cluster)
        return result

    def _pings(self, cluster: str | None) -> bool:
        """Whether ``cluster``'s controller answers ``scontrol ping`` (True where this host
        cannot run ``scontrol``: the command asks, rather than the outage lasting)."""
        try:
            result = self._runner(ping_argv(self._scontrol, cluster))
        except SlurmCommandMissingError as exc:
            self._cannot_run(Path(self._scontrol).name, exc)
            return True
        except SlurmUnavailableError:
            return False
        self._ran(Path(self._scontrol).name)
        return controller_up(result.returncode, result.stdout)

    def _cannot_run(self, name: str, exc: SlurmCommandMissingError) -> None:
        """Remember that this host cannot run the command ``name`` (logged once until it
        runs again, or says another why)."""
        if self._missing.get(name) != str(exc):
            log.error("slurm_command_missing", command=name, error=str(exc))
        self._missing[name] = str(exc)

    def _ran(self, name: str) -> None:
        if self._missing.pop(name, None) is not None:
            log.info("slurm_command_back", command=name)

    def _failed(self, cluster: str | None, message: str) -> Outage:
        """Count a failure of ``cluster``'s controller (the first one starts its outage)."""
        old = self._outages.get(cluster)
        if old is None:
            new = Outage(message, 1, self._now)
            log.error("slurm_controller_down", cluster=cluster, error=message)
        else:
            new = replace(old, failures=old.failures + 1, failed_at=self._now)
        self._outages[cluster] = new
        return new


def _message(cluster: str | None, outage: Outage, what: str = "Slurm") -> str:
    """What every command of ``cluster`` that fails, or is not run, during ``outage`` says:
    the same words from its first failure to its end (what its first failing command said;
    not the retry time, which grows), so a caller that logs an error once per job and message
    logs it once per outage, not again at each retry."""
    where = f" cluster {cluster}" if cluster else ""
    return f"{what}{where} unreachable ({outage.message})"


def unreachable(returncode: int, stderr: str) -> bool:
    """Whether a command failed because Slurm's controller could not be reached (rather than
    because it refused the request)."""
    text = stderr.lower()
    return returncode != 0 and any(marker in text for marker in _UNREACHABLE)


def no_answer(stderr: str) -> bool:
    """Whether a command's failure says the controller took the request but did not answer
    (``Socket timed out on send/recv operation``): it may have acted on it."""
    return "socket timed out" in stderr.lower()


def controller_up(returncode: int, stdout: str) -> bool:
    """Whether ``scontrol ping`` found a controller answering (``Slurmctld(primary) at vm is
    UP``; it exits 1 when one is DOWN, and a backup may be the one answering)."""
    return returncode == 0 or " is UP" in stdout


def problems(reach: Reach, clusters: Mapping[str, str | None]) -> dict[str, str]:
    """Each cluster whose controller does not answer now (``slurm``: the local one,
    ``slurm:<cluster>``), with what its first failing command said, each command this host
    could not run when last tried (``slurm_command:<name>``), and each cluster whose
    ``sacct`` got no answer in time (``slurmdbd``, ``slurmdbd:<cluster>``); empty when all
    do. ``clusters``: each region's cluster (None: the local one)."""
    problems = {}
    for cluster, outage in reach.outages().items():
        regions = ", ".join(r for r, c in clusters.items() if c == cluster)
        problems["slurm" + (f":{cluster}" if cluster else "")] = (
            f"controller unreachable ({outage.message}); the jobs of region(s) {regions} "
            "wait, none fails"
        )
    for name, why in reach.missing().items():
        problems[f"slurm_command:{name}"] = (
            f"{why}: what carbond needs it for is not done while it cannot run (Slurm "
            "itself is not taken for down)"
        )
    for cluster, outage in reach.accounting().items():
        problems["slurmdbd" + (f":{cluster}" if cluster else "")] = (
            f"accounting unreachable ({outage.message}); the ends of jobs that left squeue "
            f"wait (sacct asked again {outage.retry_s:g} s after the last try), none fails"
        )
    return problems
