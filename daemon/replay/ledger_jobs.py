"""Replaying an operator's own jobs: the jobs of a carbond ledger as replay jobs.

``carbond replay --jobs-format ledger --jobs /var/lib/carbond/ledger.db`` reads every job the
ledger holds (whatever its state), with its own model, workload, runtime, allowed regions and GPU
types, and moves the whole set in time so that its first job arrives at ``--start``: each job
keeps its arrival offset from the first and its own deadline allowance (deadline − submission);
a job without a deadline stays "as soon as possible" (one still waiting, or running, past
the end of the intensity files is refused by the replay, naming it). ``--slack``,
``--model``, ``--runtime``, ``--batch-size``, ``--requests-per-job`` and ``--time-scale``
apply to request traces only.
Jobs arriving ``--days`` or more after the first are left out. Several ledgers overlay, each
moved to ``--start``; a job id that an earlier ledger holds too gets a count after it
(``nightly-7b.2``), since the replay's ledger keeps one job per id.

The ledger is opened read-only (a running daemon's ledger is safe to read).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from daemon.ledger import Ledger, LedgerError
from daemon.planning import job_spec
from daemon.replay.errors import ReplayInputError
from policies import Device, JobSpec, PoliciesError
from policies.candidates import fit_problem

__all__ = ["count_unfit", "distinct_ids", "jobs_from_ledger", "note_unfit"]


def jobs_from_ledger(
    path: Path, start: datetime, span_s: float, notes: list[str] | None = None
) -> list[JobSpec]:
    """The ledger's jobs at ``path``, shifted so the first arrives at ``start``, sorted by
    arrival; those arriving ``span_s`` or more after it are left out, how many said in
    ``notes`` (until 2026-12-06 without a word).

    Raises:
        ReplayInputError: the ledger cannot be read, holds no job, or a job's model or workload
            is no longer valid (named by job id).
    """
    try:
        with Ledger.open_readonly(path) as ledger:
            records = ledger.jobs()
    except LedgerError as exc:  # its message is "PATH: PROBLEM": the path kept as the file
        problem = str(exc).removeprefix(f"{path}: ")
        raise ReplayInputError(problem, file=path) from exc
    if not records:
        raise ReplayInputError("the ledger holds no job", file=path)
    records.sort(key=lambda r: (r.submitted_at, r.job_id))
    shift = start - records[0].submitted_at
    jobs = []
    for record in records:
        if (record.submitted_at - records[0].submitted_at).total_seconds() >= span_s:
            break
        try:
            spec = job_spec(record)
        except PoliciesError as exc:
            raise ReplayInputError(
                f"job {record.job_id}: {exc}", file=path, job_id=record.job_id
            ) from exc
        jobs.append(
            replace(
                spec,
                submitted_at=record.submitted_at + shift,
                deadline=_shifted(record.deadline, shift),
            )
        )
    late = len(records) - len(jobs)
    if late and notes is not None:
        last = (records[-1].submitted_at - records[0].submitted_at).total_seconds()
        notes.append(
            f"{path}: {late:,} of {len(records):,} jobs arrive past the replayed span (--days "
            f"{span_s / 86400:g} from its first arrival; the last {last / 86400:,.4g} days after "
            "it): left out"
        )
    return jobs


MAX_IDS_NAMED = 3  # job ids named per reason in a note; the rest counted


def note_unfit(
    path: Path, jobs: Sequence[JobSpec], devices: Sequence[Device], notes: list[str]
) -> None:
    """Say in ``notes`` which of ``jobs`` (a ledger's, at ``path``) no GPU of ``devices`` (the
    cluster's) can run, and why, one note per reason: every policy rejects them, which a
    replay's rows showed only as "rejected" (an operator's region names or GPU types need not
    be the cluster file's)."""
    unfit: dict[str, list[str]] = {}
    for job in jobs:
        problem = fit_problem(job, devices)
        if problem is not None:
            unfit.setdefault(problem, []).append(job.job_id)
    for problem, ids in unfit.items():
        named = ", ".join(ids[:MAX_IDS_NAMED]) + (", ..." if len(ids) > MAX_IDS_NAMED else "")
        them = "them" if len(ids) > 1 else "it"  # "1 of 5 jobs (d): ...: rejects it"
        notes.append(
            f"{path}: {len(ids):,} of {len(jobs):,} jobs ({named}): {problem}: every policy "
            f"rejects {them}"
        )


def count_unfit(jobs: Sequence[JobSpec], devices: Sequence[Device]) -> int:
    """How many of ``jobs`` no GPU of ``devices`` can run (every policy rejects them)."""
    return sum(fit_problem(job, devices) is not None for job in jobs)


def _shifted(when: datetime | None, shift: timedelta) -> datetime | None:
    return None if when is None else when + shift


def distinct_ids(ledgers: list[list[JobSpec]]) -> list[JobSpec]:
    """The jobs of several ledgers as one list, a job whose id an earlier ledger's job (or an
    earlier renamed one) has taken renamed ``<id>.<n>`` with the least ``n`` from 2 free."""
    taken: set[str] = set()
    jobs = []
    for ledger in ledgers:
        for job in ledger:
            job_id, n = job.job_id, 1
            while job_id in taken:
                n += 1
                job_id = f"{job.job_id}.{n}"
            taken.add(job_id)
            jobs.append(job if job_id == job.job_id else replace(job, job_id=job_id))
    return jobs
