"""A Slurm job's end, read from its ``sacct --duplicates`` rows (pure): :func:`ended` (how it
ended, with the energy of every run Slurm started), :func:`ended_unstarted` (a held job Slurm
ended before it ran) and :func:`ran_before` (the run of a job Slurm requeued after it started)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from daemon.executors.base import EndedUnstarted, ExitStatus, RunHandle
from daemon.executors.slurm.acct import AcctRow, energy_j, row_of, rows_of
from daemon.executors.slurm.states import ended_status, is_ended

__all__ = ["ended", "ended_unstarted", "ran_before", "started_at", "unrecorded"]

_NO_NODE = "None assigned"  # sacct's NodeList of a job that never got a node
_WHEN = {True: "the poll's time", False: "the first poll that found it ended"}
_ACCT_SETTLE_S = 5.0  # after its end, wait this long at most for a job's batch-step row


def unrecorded(slurm_id: str, acct: list[AcctRow]) -> str | None:
    """What sacct has not recorded yet of ``slurm_id``'s ended job row (``End``, ``ExitCode``),
    or None when nothing is missing (or the job has not ended). slurmdbd writes a job's
    ``End`` and ``ExitCode`` when it ends, a moment after its state: a job that failed within
    a second can read ``FAILED`` with ``End`` ``Unknown`` and no exit code yet (seen on the
    local cluster), so its end waits a poll or two rather than be taken as the poll's. An
    ``End`` printed that cannot be read is not missing: it is unknown for good."""
    job = row_of(acct, slurm_id)
    if job is None or job.lost or not is_ended(job.state):
        return None
    fields = job.unreadable
    missing = []
    if job.end is None and not any(u.startswith("End ") for u in fields):
        missing.append("End")
    if (job.state == "FAILED" and job.exit_code is None and job.signal is None
            and not any(u.startswith("ExitCode ") for u in fields)):  # fmt: skip
        missing.append("ExitCode")
    return " or ".join(missing) or None


def ended(
    handle: RunHandle,
    slurm_id: str,
    acct: list[AcctRow],
    now: datetime,
    *,
    found_at: datetime | None = None,
) -> ExitStatus | None:
    """The end of ``slurm_id`` from its sacct rows; None while the rows are not final yet
    (sacct lags the controller by about half a second), or while its job row or its batch
    step's is lost (cut short: read again on the next poll). A field sacct printed that
    cannot be read is unknown, and the reason names it (``sacct unreadable: ExitCode
    '0:x'``): a job whose ``End`` is unknown ended at its ``batch`` step's ``End`` where that
    is readable, else at ``now`` (the poll's time, late by however long carbond was down;
    ``found_at`` instead where given: the first poll that found it ended, for a job whose
    End sacct never recorded, :func:`unrecorded`), the reason saying which; one whose
    ``Start`` is unknown started at its ``batch`` step's ``Start`` where that is readable,
    else the start is left to the service (its release), the reason saying which. A
    ``COMPLETED`` job's exit code is 0 all the same: Slurm records ``COMPLETED`` only when
    every step exited 0, so an unreadable ``ExitCode`` does not make it fail. Its energy is
    that of every run (``acct`` read ``--duplicates``): a run Slurm started, then requeued,
    adds its own, the reason naming each (its times stay the last run's; the earlier runs'
    length is its ``earlier_runs_s``, which the energy's plausibility check counts)."""
    job = row_of(acct, slurm_id)
    if job is None or not is_ended(job.state):
        return None
    batch = row_of(acct, slurm_id, "batch")
    if batch is not None and batch.lost:
        return None  # its energy and times cut short: read again on the next poll
    end, to_second, taken = job.end, True, []  # taken: where a time the row lacks is from
    if end is None and batch is not None and batch.end is not None:
        end = batch.end
        taken.append("end from its batch step's End")
    elif end is None:
        end, to_second = found_at or now, False
        taken.append(f"end unknown: taken as {_WHEN[found_at is None]}")
    # no Start: it never ran (cancelled while pending); an unreadable one: its batch step's
    start = job.start or (None if job.start_unknown else end)
    if job.start_unknown and batch is not None and batch.start is not None:
        start = batch.start
        taken.append("start from its batch step's Start")
    elif job.start_unknown:
        taken.append("start unknown: taken as its release")
    settling = job.end is not None and (now - job.end).total_seconds() < _ACCT_SETTLE_S
    ran = job.start is not None or job.start_unknown
    if ran and (batch is None or not is_ended(batch.state)) and settling:
        return None  # the batch step's row (and its energy) is still being written
    energy, earlier_s = energy_j(acct, slurm_id), 0.0
    if energy is not None and (every := _every_run_energy(slurm_id, acct, energy)) is not None:
        energy, earlier_s, note = every
        taken.append(note)
    code, from_state = job.exit_code, False
    if job.state == "COMPLETED" and code is None and job.signal is None:
        code, from_state = 0, True  # COMPLETED: every step exited 0
    status = ended_status(
        handle.job_id,
        job.state,
        exit_code=code,
        signal=job.signal,
        finished_at=end,
        started_at=start,
        by_uid=job.by_uid,
        nodes=job.nodes,
        energy_j=energy,
        end_to_second=to_second,  # sacct's End has no fraction of a second
        owner=handle.uid,
    )
    status = replace(status, earlier_runs_s=earlier_s) if earlier_s else status
    bad = [f"{u} ({r.step or 'job'})" for r in rows_of(acct, slurm_id) for u in r.unreadable]
    if not bad and not from_state and not taken:
        return status
    reason = status.reason + (f"; sacct unreadable: {', '.join(bad)}" if bad else "")
    reason += "".join(f"; {note}" for note in taken)
    if from_state:
        reason += "; exit code 0 from its state (Slurm's COMPLETED: every step exited 0)"
    return replace(status, reason=reason)


def ended_unstarted(slurm_id: str, acct: list[AcctRow], uid: int | None) -> EndedUnstarted | None:
    """How Slurm ended ``slurm_id`` before it ever started (its pending job cancelled by its
    owner ``uid`` or an admin), from its sacct rows: no node was ever assigned it (Slurm 22.05
    gives a pending job its owner cancels a ``Start``, the cancel time; an admin's cancel
    leaves none); None when it ran, or while sacct has no final row of it."""
    job = row_of(acct, slurm_id)
    ran = (job is not None and (job.start is not None or job.start_unknown)
           and job.nodes not in ("", _NO_NODE))  # fmt: skip
    if job is None or ran or not is_ended(job.state):
        return None
    by = f" by uid {job.by_uid}" if job.by_uid is not None else ""
    return EndedUnstarted(f"slurm {job.state}{by}", job.by_uid == uid)


def _started(slurm_id: str, acct: list[AcctRow]) -> list[AcctRow]:
    """The job rows of ``slurm_id``'s runs that Slurm started (a node and a start), oldest
    first, from its ``sacct --duplicates`` rows."""
    runs = [r for r in acct if r.slurm_id == slurm_id and not r.step and not r.lost
            and r.start is not None and r.nodes not in ("", _NO_NODE)]  # fmt: skip
    return sorted(runs, key=lambda r: -r.run)


def started_at(slurm_id: str, acct: list[AcctRow]) -> datetime | None:
    """When Slurm started the latest run of ``slurm_id`` it started (a node and a start on
    its job row), from its sacct rows; None when it never ran (or sacct has no row yet)."""
    runs = _started(slurm_id, acct)
    return runs[-1].start if runs else None


def _ran(run: AcctRow) -> str:
    """``ran from START to END on NODES (STATE)`` of a run's job row."""
    start = run.start.isoformat() if run.start else "an unknown time"
    end = run.end.isoformat() if run.end else "an unknown time"
    return f"ran from {start} to {end} on {run.nodes} ({run.state})"


def ran_before(slurm_id: str, acct: list[AcctRow]) -> str | None:
    """How the latest run of ``slurm_id`` that Slurm started went, from the ``sacct
    --duplicates`` rows of a job pending again (Slurm requeued it after it started; until
    carbond cancels it, its pending run has no record yet, so the ``REQUEUED`` one is the
    latest): ``ran from START to END on NODES (STATE)``; None when no job row of it has a node
    and a start (it never ran)."""
    runs = _started(slurm_id, acct)
    return _ran(runs[-1]) if runs else None


def _every_run_energy(
    slurm_id: str, acct: list[AcctRow], latest_j: float
) -> tuple[float, float, str] | None:
    """The energy of every run of ``slurm_id`` (its latest run's ``latest_j`` plus each
    earlier run Slurm started and then requeued), how long those earlier runs ran (s, each
    plus a second: :func:`_ran_s`) and the words its end's reason adds; None when it had no
    such run. An earlier run sacct has no energy for leaves the latest run's alone (the
    reason says so, and no earlier run's time counts), not a sum that misses a run."""
    started = _started(slurm_id, acct)
    runs = [run for run in started if run.run > 0]  # before the last
    if not runs:
        return None
    each = [(run, energy_j(acct, slurm_id, run.run)) for run in runs]
    words = "; ".join(f"{_ran(run)}: {f'{j:.0f} J' if j is not None else 'no energy'}"
                      for run, j in each)  # fmt: skip
    if any(j is None for _, j in each):
        return latest_j, 0.0, (f"energy {latest_j:.0f} J of its last run only: sacct has none "
                               f"for a run Slurm requeued before ({words})")  # fmt: skip
    total = latest_j + sum(j for _, j in each if j is not None)
    after = [run.start for run in started[1:]] + [None]  # each ended before the next began
    earlier_s = sum(_ran_s(run, then) for run, then in zip(started, after, strict=True) if run.run)
    return total, earlier_s, (f"energy {total:.0f} J over its {len(runs) + 1} runs: "
                              f"{latest_j:.0f} J of the last, and of each Slurm requeued "
                              f"before ({words})")  # fmt: skip


def _ran_s(run: AcctRow, next_start: datetime | None) -> float:
    """How long a run Slurm requeued ran (s): its job row's Start to End plus a second (sacct's
    times are whole seconds); an End that could not be read is taken as the next run's Start
    (it ended before that one began), else the run counts one second."""
    end = run.end or next_start
    if run.start is None or end is None:
        return 1.0
    return max(0.0, (end - run.start).total_seconds()) + 1.0
