"""How Slurm commands run: the injected seam between the executor and ``subprocess``.

:class:`SubprocessRunner` runs one argv without a shell, with a bounded time, ``TZ=UTC``, a
small environment (``PATH``, ``LANG``, ``SLURM_CONF`` when the daemon has one; never the
daemon's own environment, which may hold tokens) and umask 077: Slurm creates a job's
``--output``/``--error`` files that are missing when it starts with ``sbatch``'s umask
(``SLURM_UMASK``), and they must be the job's user's alone, as a local job's are (the batch
script sets the job's own umask back to 022). Given a ``uid``/``gid`` it runs the command
as that user (``subprocess``'s ``user``/``group``/``extra_groups``: a setuid in the child
before ``exec``), which is how a root daemon's ``sbatch`` submits as the job's owner: Slurm
authenticates the command through MUNGE as that user, so the job is the user's in every Slurm
tool, with the user's limits and accounts. Tests inject a recording fake instead.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from daemon.executors.errors import CommandMissingError, ExecutorError, ExecutorUnavailableError

__all__ = [
    "CommandResult",
    "Runner",
    "SlurmAccountingError",
    "SlurmCommandMissingError",
    "SlurmNoAnswerError",
    "SlurmUnavailableError",
    "SubprocessRunner",
    "command_missing",
]

_PASSED_ENV = ("SLURM_CONF",)
_UMASK = 0o077  # sbatch's, which Slurm creates a job's output files with (SLURM_UMASK)
# exec's errors that say the command's file cannot be run here (missing, no execute
# permission or mounted noexec, a directory, no program), not that anything was asked
_UNRUNNABLE = frozenset({errno.ENOENT, errno.EACCES, errno.ENOEXEC, errno.ENOTDIR, errno.ELOOP})


class SlurmUnavailableError(ExecutorUnavailableError):
    """A Slurm command could not run or did not answer in time (Slurm down or missing)."""


class SlurmCommandMissingError(SlurmUnavailableError, CommandMissingError):
    """A Slurm command's file cannot be run on this host (missing under ``bin_dir``, not
    executable, no program): this host's configuration, not the cluster being down, so
    :class:`~daemon.executors.slurm.reach.Reach` starts no outage for it; Slurm was not
    asked. The message (:func:`command_missing`) names the command, the path and why, and
    the field that sets it."""


def command_missing(path: str, why: str) -> SlurmCommandMissingError:
    """The error of the Slurm command at ``path`` that this host cannot run, ``why`` (exec's
    words): ``cannot run scontrol on this host (/opt/slurm/bin/scontrol: No such file or
    directory; executors.slurm.bin_dir)``."""
    return SlurmCommandMissingError(
        f"cannot run {os.path.basename(path)} on this host ({path}: {why}; executors.slurm.bin_dir)"
    )


class SlurmNoAnswerError(SlurmUnavailableError):
    """A Slurm command reached the controller, or may have, but got no answer in time (it
    timed out, or Slurm said ``Socket timed out``): what it asked for may have been done."""


class SlurmAccountingError(ExecutorError):
    """``sacct`` got no answer from slurmdbd in time (or is not asked again yet after that):
    Slurm's accounting cannot be read now, but its controller may well answer; the ends that
    need ``sacct`` wait, nothing else does."""


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a command printed and how it exited."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """Exit status 0."""
        return self.returncode == 0


class Runner(Protocol):
    """Runs one Slurm command (an argv, never a shell string)."""

    def __call__(
        self,
        argv: Sequence[str],
        *,
        stdin: str = "",
        uid: int | None = None,
        gid: int | None = None,
    ) -> CommandResult: ...


class SubprocessRunner:
    """The real runner.

    Args:
        timeout_s: the most one command may take.
        accounting_timeout_s: the most one ``sacct`` may take (None: ``timeout_s``); a hung
            slurmdbd keeps ``sacct`` waiting (45 s on the local cluster) while everything else
            Slurm answers at once.
        path: ``PATH`` for the commands.
    """

    def __init__(
        self,
        *,
        timeout_s: float = 30.0,
        accounting_timeout_s: float | None = None,
        path: str = "/usr/bin:/bin",
    ) -> None:
        self._timeout_s = timeout_s
        self._accounting_timeout_s = accounting_timeout_s or timeout_s
        env = {"PATH": path, "LANG": "C.UTF-8", "TZ": "UTC"}
        env.update({k: os.environ[k] for k in _PASSED_ENV if k in os.environ})
        self._env = env

    def __call__(
        self,
        argv: Sequence[str],
        *,
        stdin: str = "",
        uid: int | None = None,
        gid: int | None = None,
    ) -> CommandResult:
        """Run ``argv``; as ``uid``/``gid`` when given and different from the daemon's.

        ``stdin`` goes in as UTF-8 and what the command prints is read as UTF-8, with a byte
        that is none (a node's ``Reason`` an admin typed in Latin-1) read as U+FFFD: the
        commands run with ``LANG=C.UTF-8``, whatever the daemon's own locale.

        Raises:
            SlurmNoAnswerError: the command timed out.
            SlurmCommandMissingError: the command's file cannot be run (missing, not
                executable).
            SlurmUnavailableError: the command could not start otherwise (no process left
                to fork, say).
            ExecutorError: no command can be run with these words (a NUL in one): it is not.
        """
        switch = uid is not None and uid != os.geteuid()
        accounting = os.path.basename(argv[0]) == "sacct"
        timeout_s = self._accounting_timeout_s if accounting else self._timeout_s
        try:
            done = subprocess.run(  # an argv, no shell
                list(argv),
                input=stdin,
                capture_output=True,
                encoding="utf-8",
                errors="replace",
                timeout=timeout_s,
                env=self._env,
                cwd="/",
                umask=_UMASK,
                check=False,
                user=uid if switch else None,
                group=gid if switch else None,
                extra_groups=[] if switch else None,
            )
        except subprocess.TimeoutExpired as exc:
            raise SlurmNoAnswerError(f"{argv[0]}: no answer within {timeout_s:g} s") from exc
        except OSError as exc:
            if exc.errno in _UNRUNNABLE and exc.filename == argv[0]:  # exec's, of argv[0]
                raise command_missing(argv[0], exc.strerror or str(exc)) from exc
            raise SlurmUnavailableError(f"{argv[0]}: cannot run: {exc}") from exc
        except ValueError as exc:  # "embedded null byte": nothing ran, nor would it again
            raise ExecutorError(f"{argv[0]!r}: cannot run it with these words: {exc}") from exc
        return CommandResult(done.returncode, done.stdout, done.stderr)
