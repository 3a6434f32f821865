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
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from daemon.executors.slurm import commands as cmd
from daemon.executors.slurm.capacity import Layout
from daemon.executors.slurm.runner import CommandResult

__all__ = ["TRIAL_JOB_ID", "Refusal", "gres_types", "refused", "trial"]

# the job id of the trial job, in its name (carbond-doctor-test-only) and its log files' names
TRIAL_JOB_ID = "doctor-test-only"


@dataclass(frozen=True, slots=True)
class Refusal:
    """sbatch refusing the trial job of one GPU type: the type (``t4``; empty: untyped, any
    GPU), the GRES the trial asked (``gpu:t4:1``) and sbatch's words."""

    gres_type: str
    gres: str
    said: str


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
