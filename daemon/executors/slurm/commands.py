"""The commands carbond runs against Slurm, built as argv lists (pure; nothing runs here);
``scontrol``'s are built beside their parsers, in :mod:`daemon.executors.slurm.scontrol`.

Every command runs without a shell, with ``TZ=UTC`` in its environment (see
:mod:`daemon.executors.slurm.runner`), so the times written here (``--begin``,
``StartTime=``) and read back from ``squeue``/``sacct`` are UTC. The batch script is given to
``sbatch`` on standard input; the job's argv is quoted word by word (``shlex.quote``), never
joined into a shell string by anyone else.

A carbond job is named ``carbond-<job id>`` in Slurm (``--job-name``), which is how a restarted
daemon finds a submission whose Slurm id it never recorded.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = [
    "CANNOT_START",
    "JOB_NAME_PREFIX",
    "NOT_FOUND",
    "SACCT_FIELDS",
    "SQUEUE_FORMAT",
    "SQUEUE_JOBS_FORMAT",
    "TYPEDNESS_REFUSED",
    "Submission",
    "Target",
    "batch_script",
    "cluster_of",
    "gres_request",
    "hold_argv",
    "job_name",
    "sacct_argv",
    "sbatch_argv",
    "scancel_argv",
    "slurm_time",
    "squeue_argv",
    "squeue_by_name_argv",
    "squeue_running_argv",
    "unhold_argv",
    "update_argv",
]

JOB_NAME_PREFIX = "carbond-"
# scontrol update's refusal (Slurm 22.05) of a GRES request typed where the job's was untyped,
# or the reverse ("Invalid GRES specification (with and without type identification) for job
# N"): nothing of that update is applied, its start included
TYPEDNESS_REFUSED = "with and without type identification"
# what the batch script prints (then the command) when the job's PATH has no such command
NOT_FOUND = "carbond: command not found: "
# ... (then the file and why) when the command is found but cannot be executed: exit 126
CANNOT_START = "carbond: cannot start: "
# The batch script's check before its exec, in a subshell (nothing it sets reaches the job):
# the file exec would run (a name with a slash as it is; else what command -v finds, and where
# it finds nothing, as dash does for a file without execute permission, the first file of that
# name on PATH), then 127 when there is none, 126 for a directory or a file the job's user
# cannot execute (saying so of a file on a noexec mount, as findmnt shows it: dash's [ -x ] is
# false there whatever the mode); a builtin (echo) passes, exec finds it on PATH.
_RUNNABLE = f"""\
carbond_runnable() (
  case $1 in
    */*) found=$1 ;;
    *) found=$(command -v -- "$1") || found=
       case $found in
         */*) ;;
         '') set -f; IFS=:
             for dir in $PATH; do
               if [ -e "${{dir:-.}}/$1" ]; then found=${{dir:-.}}/$1; break; fi
             done ;;
         *) exit 0 ;;
       esac ;;
  esac
  if [ -z "$found" ] || [ ! -e "$found" ]; then
    printf '{NOT_FOUND}%s\\n' "$1" >&2; exit 127
  fi
  if [ -d "$found" ]; then printf '{CANNOT_START}%s: a directory\\n' "$found" >&2; exit 126; fi
  if [ ! -x "$found" ]; then
    case ,$(findmnt -n -o OPTIONS -T "$found" 2>/dev/null), in
      *,noexec,*) why='its file system is mounted noexec' ;;
      *) why='no execute permission' ;;
    esac
    printf '{CANNOT_START}%s: not executable (%s)\\n' "$found" "$why" >&2; exit 126
  fi
)"""
# squeue --format: id, state, reason, start (expected or actual), end, nodes, partition. Never
# the name: a job's owner may rename it (``scontrol update JobName=``), and Slurm prints the
# name raw, '|' and newlines included (the by-name lookup filters with ``--name`` instead).
SQUEUE_FORMAT = "%i|%T|%r|%S|%e|%N|%P"
# squeue --Format of others' running jobs: id, user, nodes, GRES asked per node, TRES allocated
# (a job asking --gpus=N or --gpus-per-task has no GRES per node: "N/A"), end; each field
# unpadded (":0"), "|" after all but the last. Never their name: Slurm prints the name a user
# chose raw, '|' and newlines included.
SQUEUE_JOBS_FORMAT = "JobID:0|,UserName:0|,NodeList:0|,tres-per-node:0|,tres-alloc:0|,EndTime:0"
# sacct rows of carbond's jobs and their steps, without JobName: a step's name is the job's
# user's (``srun -J 'a|b'``), printed raw, '|' and newlines included.
SACCT_FIELDS = (
    "JobID",
    "State",
    "ExitCode",
    "Start",
    "End",
    "NodeList",
    "Partition",
    "ConsumedEnergyRaw",
    "AllocTRES",  # the GPUs Slurm gave a run: gres/gpu=N (empty: it never ran)
)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a region's jobs go: partition, optional cluster (``-M``), account, QOS, the GRES
    name of its GPUs and extra ``sbatch`` options (each a whole option)."""

    partition: str
    cluster: str | None = None
    account: str | None = None
    qos: str | None = None
    gres: str = "gpu"
    sbatch_options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Submission:
    """One job for ``sbatch``: its argv (run without a shell), environment, GPUs (and their
    GRES type, ``t4``; empty: any type), the node it is pinned to (None: any node of the
    partition), when it may start (None: now), where its output goes and its working
    directory."""

    job_id: str
    argv: tuple[str, ...]
    gpus: int
    log_dir: Path
    chdir: Path
    begin: datetime | None = None
    node: str | None = None
    comment: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    gres_type: str = ""


def gres_request(name: str, gres_type: str, count: int) -> str:
    """A GRES request (``gpu:t4:2``; ``gpu:2`` without a type). The type matters on a node
    with GPUs of several types: ``gpu:1`` gets whichever Slurm picks, not the planned one."""
    return f"{name}:{gres_type}:{count}" if gres_type else f"{name}:{count}"


def job_name(job_id: str) -> str:
    """The Slurm job name of carbond job ``job_id``."""
    return JOB_NAME_PREFIX + job_id


def slurm_time(at: datetime) -> str:
    """``at`` as Slurm reads a time (``YYYY-MM-DDTHH:MM:SS``, UTC under ``TZ=UTC``), rounded
    up to the second so a job never starts before ``at``."""
    utc = at.astimezone(UTC)
    if utc.microsecond:
        utc = utc.replace(microsecond=0) + timedelta(seconds=1)
    return utc.strftime("%Y-%m-%dT%H:%M:%S")


def batch_script(sub: Submission) -> str:
    """The batch script: sets umask 022 (as the local executor's jobs get; ``sbatch`` runs with
    077, which Slurm gives the job, so that the output files Slurm creates are private),
    exports the job's environment, enters its working directory (or exits 1 saying so) and
    ``exec``s its argv, every word single-quoted by :func:`shlex.quote` (no expansion, no word
    splitting).

    A command the job's ``PATH`` does not have (``command -v``, what ``exec`` looks up) ends
    it with exit code 127 and the line ``carbond: command not found: NAME`` as the last of its
    ``.err`` (:data:`NOT_FOUND`); one found but not executable (a directory, a file without
    execute permission for the job's user, one on a ``noexec`` mount) with exit code 126 and
    ``carbond: cannot start: FILE: WHY`` (:data:`CANNOT_START`). carbond reads that line back
    for its reason (:func:`~daemon.executors.slurm.joblogs.cannot_run`): Slurm records only
    the exit code.

    The ``cd`` is needed because ``--chdir`` is not enough: when the job's user cannot enter
    that directory, slurmstepd only logs ``couldn't chdir ... going to /tmp instead`` and runs
    the job in ``/tmp``, where it would run (and succeed) in the wrong place.
    """
    lines = ["#!/bin/sh", f"# carbond job {sub.job_id}: generated, do not edit", "umask 022"]
    for key, value in sorted(sub.env.items()):
        if not key.isidentifier():
            continue
        lines.append(f"export {key}={shlex.quote(value)}")
    where = shlex.quote(str(sub.chdir))
    lines.append(
        f"cd -- {where} || {{ printf 'carbond: job %s cannot enter its working directory %s\\n' "
        f"{shlex.quote(sub.job_id)} {where} >&2; exit 1; }}"
    )
    lines.append(_RUNNABLE)
    lines.append(f"carbond_runnable {shlex.quote(sub.argv[0])} || exit")
    words = " ".join(shlex.quote(word) for word in sub.argv[1:])
    lines.append(f"exec {_exec_name(sub.argv[0])} {words}".rstrip())
    return "\n".join(lines) + "\n"


def _exec_name(name: str) -> str:
    """``name`` as ``exec``'s first word. A name starting with ``-`` would be read as an option
    (bash: ``exec: -f: invalid option``; dash's ``exec`` takes no ``--``), so a path such a
    name is rewritten to the same file (``./-x/y``), and a bare name to what the shell's own
    PATH search finds (``carbond_runnable`` has just checked that it finds one)."""
    if not name.startswith("-"):
        return shlex.quote(name)
    if "/" in name:
        return shlex.quote(f"./{name}")
    return f'"$(command -v -- {shlex.quote(name)})"'


def _printable(label: str) -> str:
    """``label`` with each control character (NUL, newline, ...) as ``?``: an argv word
    cannot hold a NUL, and a label is only shown to users (``squeue``)."""
    return "".join(c if c.isprintable() else "?" for c in label)


def _where(target: Target) -> list[str]:
    return [f"--clusters={target.cluster}"] if target.cluster else []


def sbatch_argv(sbatch: str, target: Target, sub: Submission) -> list[str]:
    """``sbatch`` for ``sub`` in ``target``; the script comes on standard input. ``--parsable``
    makes the answer ``<id>`` or ``<id>;<cluster>``."""
    argv = [
        sbatch,
        "--parsable",
        f"--job-name={job_name(sub.job_id)}",
        f"--partition={target.partition}",
        *_where(target),
        "--nodes=1",
        f"--gres={gres_request(target.gres, sub.gres_type, sub.gpus)}",
        f"--output={sub.log_dir / (sub.job_id + '.out')}",
        f"--error={sub.log_dir / (sub.job_id + '.err')}",
        f"--chdir={sub.chdir}",
        "--export=ALL",  # sbatch's own environment, which the runner builds from scratch
        "--no-requeue",
    ]
    if target.account:
        argv.append(f"--account={target.account}")
    if target.qos:
        argv.append(f"--qos={target.qos}")
    if sub.node:
        argv.append(f"--nodelist={sub.node}")
    if sub.begin is not None:
        argv.append(f"--begin={slurm_time(sub.begin)}")
    if sub.comment:
        argv.append(f"--comment={_printable(sub.comment)}")
    argv.extend(target.sbatch_options)
    return argv


def update_argv(
    scontrol: str,
    target: Target,
    slurm_id: str,
    *,
    start: datetime | None,
    node: str | None,
    gres: str,
) -> list[str]:
    """``scontrol update`` of a pending job: its partition, node, GRES (:func:`gres_request`:
    a typed request keeps its type when the job moves) and start (None: now, which releases
    it)."""
    argv = [scontrol, *_where(target), "update", f"JobId={slurm_id}"]
    argv.append(f"Partition={target.partition}")
    argv.append(f"ReqNodeList={node or ''}")
    argv.append(f"Gres={gres}")
    argv.append(f"StartTime={slurm_time(start) if start is not None else 'now'}")
    return argv


def hold_argv(scontrol: str, cluster: str | None, slurm_id: str) -> list[str]:
    """``scontrol hold``: a pending job can then no longer start (fails on an ended one; a
    running one is held too, exit 0, and keeps running)."""
    return [scontrol, *([f"--clusters={cluster}"] if cluster else []), "hold", slurm_id]


def unhold_argv(scontrol: str, cluster: str | None, slurm_id: str) -> list[str]:
    """``scontrol release``: a job's hold lifted (of a running one: its ``JobHeldAdmin``)."""
    return [scontrol, *([f"--clusters={cluster}"] if cluster else []), "release", slurm_id]


def scancel_argv(scancel: str, cluster: str | None, slurm_id: str) -> list[str]:
    """``scancel`` of one job (SIGTERM, then SIGKILL after Slurm's ``KillWait``)."""
    return [scancel, *([f"--clusters={cluster}"] if cluster else []), slurm_id]


def squeue_argv(squeue: str, cluster: str | None, slurm_ids: Sequence[str]) -> list[str]:
    """``squeue`` rows (:data:`SQUEUE_FORMAT`) of the given jobs, any state squeue still has."""
    return [
        squeue,
        *([f"--clusters={cluster}"] if cluster else []),
        "--noheader",
        "--states=all",
        f"--jobs={','.join(slurm_ids)}",
        f"--format={SQUEUE_FORMAT}",
    ]


def squeue_by_name_argv(squeue: str, cluster: str | None, job_id: str, uid: int) -> list[str]:
    """``squeue`` rows of carbond job ``job_id`` found by its Slurm name among the jobs of its
    owner ``uid`` (anyone may name a job ``carbond-<id>``)."""
    return [
        squeue,
        *([f"--clusters={cluster}"] if cluster else []),
        "--noheader",
        "--states=all",
        f"--name={job_name(job_id)}",
        f"--user={uid}",
        f"--format={SQUEUE_FORMAT}",
    ]


def squeue_running_argv(squeue: str, target: Target) -> list[str]:
    """Every running job of ``target``'s partition (:data:`SQUEUE_JOBS_FORMAT`)."""
    return [
        squeue,
        *_where(target),
        "--noheader",
        "--states=RUNNING,COMPLETING,CONFIGURING",
        f"--partition={target.partition}",
        f"--Format={SQUEUE_JOBS_FORMAT}",
    ]


def sacct_argv(
    sacct: str,
    cluster: str | None,
    slurm_ids: Sequence[str] = (),
    name: str | None = None,
    uid: int | None = None,
    *,
    every_run: bool = False,
) -> list[str]:
    """``sacct`` rows (:data:`SACCT_FIELDS`, ``|``-separated, one per job and step) of the
    given jobs, or of the jobs named ``name`` of user ``uid``: never of every user's, since
    any user may name a job ``carbond-<id>``. ``every_run``: each run of a job Slurm requeued
    (``--duplicates``), not its latest only.

    Raises:
        ValueError: ``name`` without ``uid``.
    """
    argv = [sacct, *([f"--clusters={cluster}"] if cluster else []), "--noheader", "--parsable2"]
    argv.append(f"--format={','.join(SACCT_FIELDS)}")
    if every_run:
        argv.append("--duplicates")
    if slurm_ids:
        argv.append(f"--jobs={','.join(slurm_ids)}")
    if name is not None:
        if uid is None:
            raise ValueError(f"sacct by job name {name!r} needs the owner's uid")
        argv += [f"--name={name}", "--starttime=now-7days", f"--uid={uid}"]
    return argv


def cluster_of(argv: Sequence[str]) -> str | None:
    """The cluster an argv built here is for (its ``--clusters=``; None: the local one)."""
    for word in argv[1:]:
        if word.startswith("--clusters="):
            return word.removeprefix("--clusters=")
    return None
