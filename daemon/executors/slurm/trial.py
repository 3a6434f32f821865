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
"""

from __future__ import annotations

from pathlib import Path

from daemon.executors.slurm import commands as cmd
from daemon.executors.slurm.runner import CommandResult

__all__ = ["TRIAL_JOB_ID", "refused", "trial"]

# the job id of the trial job, in its name (carbond-doctor-test-only) and its log files' names
TRIAL_JOB_ID = "doctor-test-only"


def trial(sbatch: str, target: cmd.Target, log_dir: Path, chdir: Path) -> tuple[list[str], str]:
    """The argv and batch script (its standard input) of ``sbatch --test-only`` for a one-GPU
    job of ``target`` (any GPU type, any node of its partition) as carbond launches one
    (:func:`~daemon.executors.slurm.commands.sbatch_argv`, the region's ``sbatch_options``
    last), running ``true`` in ``chdir`` with its output under ``log_dir``."""
    sub = cmd.Submission(job_id=TRIAL_JOB_ID, argv=("true",), gpus=1, log_dir=log_dir,
                         chdir=chdir)  # fmt: skip
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
