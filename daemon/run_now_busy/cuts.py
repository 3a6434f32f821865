"""How a job's end cuts its run-now counterfactual run short, or scales it (:class:`Cut`,
:func:`ending_cut`), and when the run then ends (:func:`held_until`): the rule the package's
overview (:mod:`daemon.run_now_busy`) states."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from daemon.accounting.run_now_priced import ratio
from daemon.executors.base import ExitStatus
from policies.fast_init import fast_init

__all__ = ["Cut", "ending_cut", "held_until", "run_end_cut", "unstarted_cut"]


@fast_init
@dataclass(frozen=True, slots=True)
class Cut:
    """How a job's end cuts its run-now counterfactual run short: at ``at`` (its owner's
    cancel), after ``share`` (0 to 1) of its duration (the job failed on its own after that
    share of its predicted duration), or the earlier of both; or how its success sets the
    run's length: ``scale`` (above 0) times its duration (the job ran that many times its
    predicted duration; also any job's end after running past its predicted end), ended at
    ``at`` if that is earlier."""

    at: datetime | None = None
    share: float | None = None
    scale: float | None = None


def ending_cut(
    state: str,
    *,
    ended_at: datetime,
    cancel_requested_at: datetime | None,
    own_failure: bool,
    duration_s: float | None = None,
    predicted_duration_s: float | None = None,
) -> Cut | None:
    """What ``run-now`` running the same jobs would have done to a job's counterfactual run,
    the job having ended in ``state`` at ``ended_at`` (None: its run stays whole).

    Its owner's cancel, read at ``cancel_requested_at``, cancels the copy then too, whatever
    became of the real run (one that ended first succeeded); a job ``cancelled`` without one
    (its owner's ``scancel``) was cancelled at its end. A job that ``failed`` on its own
    (``own_failure``: an exit code or a signal) after running ``duration_s`` of its
    ``predicted_duration_s`` fails after the same share of its copy's run. A job that
    ``succeeded`` after ``duration_s`` has its copy run the same multiple of its duration (the
    window :mod:`daemon.accounting.run_now_priced` prices it over). A job that ran past its
    predicted end, however it ended, has its copy run the same multiple of its duration (a
    failure of its own fails it then; any other end, run-now ran it at least that long), as
    it was held while the job ran (:meth:`RunNowBusy.devices`); its owner's cancel cuts it.
    """
    at = cancel_requested_at
    if at is None and state == "cancelled":
        at = ended_at
    share = scale = None
    scaled = ratio(duration_s, predicted_duration_s)
    if scaled is not None and scaled > 1.0:  # past its predicted end: its copy ran as long
        scale = scaled
    elif state == "failed" and own_failure and scaled is not None:
        share = max(0.0, scaled)
    elif state == "succeeded" and scaled is not None and scaled > 0 and scaled != 1.0:
        scale = scaled
    if at is None and share is None and scale is None:
        return None
    return Cut(at, share, scale)


def run_end_cut(
    state: str,
    status: ExitStatus,
    cancel_requested_at: datetime | None,
    columns: Mapping[str, Any],
) -> Cut | None:
    """:func:`ending_cut` of a run that ended with ``status``, its job in ``state`` (its
    outcome's ``columns``: ``duration_s``, ``predicted_duration_s``)."""
    own_failure = status.exit_code is not None or status.signal is not None
    return ending_cut(state, ended_at=status.finished_at,
                      cancel_requested_at=cancel_requested_at, own_failure=own_failure,
                      duration_s=columns.get("duration_s"),
                      predicted_duration_s=columns.get("predicted_duration_s"))  # fmt: skip


def unstarted_cut(
    state: str, *, ended_at: datetime, cancel_requested_at: datetime | None
) -> Cut | None:
    """:func:`ending_cut` of a job that ended in ``state`` at ``ended_at`` without having run,
    in carbond (cancelled or expired waiting, failed before its launch) or in its executor's
    scheduler (a held Slurm job ``scancel``-ed): a ``cancelled`` one's copy is cancelled at its
    owner's cancel (``cancel_requested_at``; none read: at its end), any other runs on whole
    (None: run-now would have run it)."""
    if state != "cancelled":
        return None
    return ending_cut(state, ended_at=ended_at, cancel_requested_at=cancel_requested_at,
                      own_failure=False)  # fmt: skip


def held_until(start: datetime, duration_s: float, cut: Cut | None = None) -> datetime:
    """When a counterfactual run from ``start`` for ``duration_s`` seconds ends, ``cut``
    short, or scaled (:func:`ending_cut`); at or before ``start``: it never ran."""
    scale = cut.scale if cut is not None and cut.scale is not None else 1.0
    end = start + timedelta(seconds=duration_s * scale)
    if cut is not None:
        if cut.at is not None:
            end = min(end, cut.at)
        if cut.share is not None:
            end = min(end, start + timedelta(seconds=duration_s * cut.share))
    return end
