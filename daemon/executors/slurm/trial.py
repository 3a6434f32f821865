"""``sbatch --test-only`` with carbond's own sbatch argv: whether Slurm takes a region's jobs.

A region's ``sbatch_options`` are read at config load against sbatch 22.05's option table
(:mod:`daemon.settings.sbatch_options`), but only the cluster knows what it takes: an option
a newer (or older) sbatch does not know, an invalid ``--mem=``, a reservation, account, QOS
or ``--constraint`` feature it does not have. Without this, sbatch refused every job of the
region at its first launch. ``--test-only`` plans the job and submits nothing (sbatch 22.05:
"sbatch: Job 7 to start at ... on nodes n1 in partition alpha", exit status 0; refused:
"allocation failure: Requested reservation is invalid", exit status 1, or
"sbatch: error: Invalid --mem specification", 255; an option it does not know:
"sbatch: unrecognized option '--tres-per-task=cpu=1'" and then 'Try "sbatch --help" for more
information', 255).

A region whose discovered GPUs have GRES types is tried once per type, with the typed request
the daemon submits for a job planned on them (``--gres=gpu:t4:1``): on a partition of T4 and
L4 nodes, an untyped ``--gres=gpu:1`` with ``--constraint=fast`` is planned on the L4 node
that has the feature, and passed, while every job carbond submits for the T4s is refused
("Requested node configuration is not available"; the local cluster, 2026-12-07).

``--test-only`` judges a reservation list (``--reservation=A,B``) by its first reservation
alone, and one not started yet as "Invalid time specified", where a real submission takes the
job and Slurm starts it in whichever of them lets it first (sbatch 22.05 on the local
cluster, 2026-12-08: ``--reservation=later,now`` refused so, then submitted and run; a
list whose first reservation is on another partition's nodes, "Requested node configuration
is not available"). A trial so refused is tried again with each reservation alone
(:func:`judge`): one taken passes; one not started yet is not judged (a
:attr:`Refusal.waits_for`, which doctor notes rather than fails).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from daemon.executors.slurm import commands as cmd
from daemon.executors.slurm.capacity import Layout
from daemon.executors.slurm.runner import CommandResult, Runner

__all__ = ["NOT_STARTED", "TRIAL_JOB_ID", "Refusal", "gres_types", "judge", "refused", "trial"]

# the job id of the trial job, in its name (carbond-doctor-test-only) and its log files' names
TRIAL_JOB_ID = "doctor-test-only"
# what sbatch --test-only (22.05) says of a job asking a reservation that has not started yet
NOT_STARTED = "Invalid time specified"
# ... and of a list whose first reservation's nodes are none of the partition's: it plans the
# job in the first reservation alone (a reservation unknown, or one the user may not use,
# anywhere in the list is refused by a real submission too, and by --test-only)
_FIRST_ONLY = (NOT_STARTED, "Requested node configuration is not available")


@dataclass(frozen=True, slots=True)
class Refusal:
    """sbatch refusing the trial job of one GPU type: the type (``t4``; empty: untyped, any
    GPU), the GRES the trial asked (``gpu:t4:1``) and sbatch's words; or, where
    ``waits_for`` names reservations, not judging it: those have not started yet
    (:data:`NOT_STARTED`) and none of the others asked takes it."""

    gres_type: str
    gres: str
    said: str
    waits_for: tuple[str, ...] = ()


def gres_types(layout: Layout | None) -> list[str]:
    """The GRES types the daemon asks for a region's GPUs (``layout``: discovery's), each
    once, in order: one per type discovered, empty for untyped GPUs; ``[""]`` without a
    layout (declared ``gpus``: carbond asks any GPU)."""
    if layout is None or not layout.types:
        return [""]
    return sorted(set(layout.types))


def trial(
    sbatch: str, target: cmd.Target, log_dir: Path, chdir: Path, gres_type: str = ""
) -> tuple[list[str], str]:
    """The argv and batch script (its standard input) of ``sbatch --test-only`` for a one-GPU
    job of ``target`` of ``gres_type`` (empty: any type; any node of its partition) as
    carbond launches one (:func:`~daemon.executors.slurm.commands.sbatch_argv`, the region's
    ``sbatch_options`` last), running ``true`` in ``chdir`` with its output under
    ``log_dir``."""
    sub = cmd.Submission(job_id=TRIAL_JOB_ID, argv=("true",), gpus=1, log_dir=log_dir,
                         chdir=chdir, gres_type=gres_type)  # fmt: skip
    argv = cmd.sbatch_argv(sbatch, target, sub)
    return [argv[0], "--test-only", *argv[1:]], cmd.batch_script(sub)


def refused(result: CommandResult) -> str | None:
    """What sbatch said refusing the trial job (its last line that is no pointer to
    ``sbatch --help``), or None when it would take it (exit status 0)."""
    if result.ok:
        return None
    lines = [line.strip() for line in (result.stderr or result.stdout).splitlines()]
    said = [line for line in lines if line and not line.startswith('Try "sbatch --help"')]
    return said[-1] if said else f"exit status {result.returncode}"


def judge(
    run: Runner,
    sbatch: str,
    target: cmd.Target,
    dirs: tuple[Path, Path],
    gres_type: str,
    asked: Sequence[str],
) -> Refusal | None:
    """Run the trial of ``gres_type`` (:func:`trial`; ``dirs``: its log dir and working
    directory) through ``run``: None when sbatch takes it. Refused while the region asks
    reservations (``asked``) in a list, or one not started yet, in words that judge the
    first reservation alone (:data:`_FIRST_ONLY`), each is tried alone (the last
    ``--reservation=`` is the one sbatch takes): None when sbatch takes one; a
    :attr:`~Refusal.waits_for` naming those not started yet when there are any; else the
    refusal of the whole list, in sbatch's words."""

    def said_of(where: cmd.Target) -> str | None:
        argv, script = trial(sbatch, where, *dirs, gres_type)
        return refused(run(argv, stdin=script))

    said = said_of(target)
    if said is None or not asked or not any(why in said for why in _FIRST_ONLY):
        return _refusal(target, gres_type, said)
    if len(asked) == 1 and NOT_STARTED not in said:  # judged whole: its one reservation
        return _refusal(target, gres_type, said)
    waiting = []
    for name in asked:
        options = (*target.sbatch_options, f"--reservation={name}")
        if (why := said_of(replace(target, sbatch_options=options))) is None:
            return None
        waiting += [name] if NOT_STARTED in why else []
    return _refusal(target, gres_type, said, tuple(waiting))


def _refusal(
    target: cmd.Target, gres_type: str, said: str | None, waits_for: tuple[str, ...] = ()
) -> Refusal | None:
    if said is None:
        return None
    return Refusal(gres_type, cmd.gres_request(target.gres, gres_type, 1), said, waits_for)
