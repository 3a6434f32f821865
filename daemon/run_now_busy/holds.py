"""The GPUs the recorded run-now counterfactual runs hold, by device and job, across planning
rounds (:class:`RunNowBusy`), learned again from the ledger at a restart
(:meth:`RunNowBusy.learn`): the package's overview (:mod:`daemon.run_now_busy`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from daemon.accounting.run_now_priced import ratio
from daemon.ledger import EndedCounterfactual, WaitingCounterfactual
from daemon.run_now_busy.cuts import Cut, ending_cut, held_until
from policies import Alternative, Device
from policies.run_now_claims import expires_unstarted

__all__ = ["ENDED_LOOKBACK_S", "RunNowBusy"]

ENDED_LOOKBACK_S = 2 * 86400.0
"""How far back a restart reads the counterfactuals of ended jobs (by their outcome's end):
a counterfactual run outlasting its job's real run by more is not learned again."""


class _Recorded(Protocol):
    """What :meth:`RunNowBusy.learn` reads from the ledger."""

    def counterfactual(self, job_id: str) -> dict[str, Any] | None: ...

    def ended_counterfactuals(self, since: datetime) -> Sequence[EndedCounterfactual]: ...

    def waiting_counterfactuals(self) -> Sequence[WaitingCounterfactual]: ...

    def ending_job(self, job_id: str) -> tuple[str, datetime | None, datetime | None]: ...


class _Run(Protocol):
    @property
    def job_id(self) -> str: ...

    @property
    def deadline(self) -> datetime | None: ...


class _Running(Protocol):
    """A running job's run, as :meth:`daemon.ledger.Ledger.active_runs` reads it."""

    @property
    def job_id(self) -> str: ...

    @property
    def launched_at(self) -> datetime: ...

    @property
    def started_at(self) -> datetime | None: ...

    @property
    def expected_duration_s(self) -> float: ...


# Per device: its holders' (end, job id), and the device built from them.
_Built = tuple[Device, tuple[datetime, str, datetime | None], Device]


class RunNowBusy:
    """When the recorded run-now counterfactuals hold each GPU until (by device id, by job)."""

    def __init__(self) -> None:
        self._until: dict[str, dict[str, datetime]] = {}
        self._built: dict[str, _Built] = {}
        # by job: its counterfactual run's devices, start, duration and cut, while it holds
        # them or its job runs
        self._runs: dict[str, tuple[tuple[str, ...], datetime, float, Cut | None]] = {}
        # the waiting jobs whose counterfactuals learn() read, until each is first planned
        self._waiting: set[str] = set()

    def hold(self, job_id: str, run: Alternative, deadline: datetime | None) -> None:
        """Job ``job_id``'s recorded counterfactual ``run`` (on its ``device_ids`` from its
        ``start`` for its ``duration_s``; none from the job's ``deadline`` on: it expired)."""
        self._hold(job_id, run.device_ids, run.start, run.duration_s, None, deadline)

    def recorded(self, job_id: str) -> bool:
        """Whether :meth:`learn` read waiting job ``job_id``'s counterfactual (held as it
        holds, or ended): True once, for its first planning after the restart, which needs
        no :meth:`learned` (a query, and a hold that is there already)."""
        if job_id in self._waiting:
            self._waiting.discard(job_id)
            return True
        return False

    def known(self, job_ids: Iterable[str]) -> None:
        """Waiting jobs ``job_ids`` had their counterfactual held here when the service that
        planned them was replaced (a reload: :meth:`daemon.service.Service.take_over_runs`):
        their first planning by the new one needs no :meth:`learned` (:meth:`recorded` says
        True once), as after :meth:`learn`; a reload of ~5,000 waiting jobs read each one's
        copy back from the ledger one by one."""
        self._waiting.update(job_ids)

    def learned(
        self,
        ledger: _Recorded,
        job_id: str,
        cut: Cut | None = None,
        *,
        deadline: datetime | None,
    ) -> bool:
        """:meth:`hold` of job ``job_id``'s counterfactual as the ledger stored it (a job
        first seen, as after a restart), ``cut`` as its end cut it (none where it starts at
        or after the job's ``deadline``: it never ran); False where none is recorded."""
        return self._hold_recorded(job_id, ledger.counterfactual(job_id), cut, deadline)

    def cut(self, job_id: str, cut: Cut | None) -> bool:
        """Job ``job_id``'s counterfactual run is ``cut`` short, or scaled (its owner's
        cancel was read, or it ended: :func:`ending_cut`; None: it runs on as held, its
        job ended); False where its run is not held (none recorded, cut to nothing, or
        ended by a round's now while its job did not run). A running job's copy is kept
        (:meth:`devices`), so one its success lengthens is held again here."""
        self._waiting.discard(job_id)  # it ended unplanned: not asked for
        run = self._runs.get(job_id)
        if run is None:
            return False
        if cut is None:  # kept while its job ran: now only while it holds a GPU
            if not any(job_id in self._until.get(d, {}) for d in run[0]):
                del self._runs[job_id]
            return True
        device_ids, start, duration_s, _ = run
        end = held_until(start, duration_s, cut)  # every cut names all it knows: it replaces
        for device_id in device_ids:
            holds = self._until.setdefault(device_id, {})
            if end > start:
                holds[job_id] = end
                continue
            holds.pop(job_id, None)
            if not holds:
                del self._until[device_id]
        if end <= start:
            del self._runs[job_id]
        else:
            self._runs[job_id] = (device_ids, start, duration_s, cut)
        return True

    def _hold_recorded(
        self,
        job_id: str,
        recorded: Mapping[str, Any] | None,
        cut: Cut | None,
        deadline: datetime | None,
    ) -> bool:
        if recorded is None:
            return False
        start = datetime.fromisoformat(recorded["start"])
        duration_s = float(recorded["duration_s"])
        self._hold(job_id, recorded["device_ids"], start, duration_s, cut, deadline)
        return True

    def _hold(
        self,
        job_id: str,
        device_ids: Iterable[str],
        start: datetime,
        duration_s: float,
        cut: Cut | None,
        deadline: datetime | None,
    ) -> None:
        if expires_unstarted(deadline, start):  # run-now's copy expired waiting
            return
        end = held_until(start, duration_s, cut)
        if end <= start:  # cut before it started: it never ran
            return
        devices = tuple(device_ids)
        self._runs[job_id] = (devices, start, duration_s, cut)
        for device_id in devices:
            holds = self._until.setdefault(device_id, {})
            before = holds.get(job_id)
            if before is None or end > before:
                holds[job_id] = end

    def learn(self, ledger: _Recorded, runs: Iterable[_Run], now: datetime) -> None:
        """At a restart: the counterfactual runs of the jobs ``runs`` (running; cut at their
        owner's cancel when one was asked for) and of those that ended in the last
        :data:`ENDED_LOOKBACK_S`, run or not (expired or failed waiting: their copy ran), each
        cut short as its end cuts it (:func:`ending_cut`), none starting at or after its job's
        deadline (it expired waiting); and of the jobs still waiting (cut at their owner's
        cancel when one was asked for: not yet read, it is read as they are settled), which
        their first planning asks no more of the ledger (:meth:`recorded`). Those ended by
        ``now`` are dropped at the next :meth:`devices`."""
        for run in runs:
            cancel_requested_at = ledger.ending_job(run.job_id)[1]
            cut = None if cancel_requested_at is None else Cut(at=cancel_requested_at)
            recorded = ledger.counterfactual(run.job_id)
            self._hold_recorded(run.job_id, recorded, cut, run.deadline)
        since = now - timedelta(seconds=ENDED_LOOKBACK_S)
        for ended in ledger.ended_counterfactuals(since):
            own = ended.exit_code is not None or ended.signal is not None
            cut = ending_cut(ended.state, ended_at=ended.ended_at,
                             cancel_requested_at=ended.cancel_requested_at, own_failure=own,
                             duration_s=ended.duration_s,
                             predicted_duration_s=ended.predicted_duration_s)  # fmt: skip
            self._hold_recorded(ended.job_id, ended.recorded, cut, ended.deadline)
        for w in ledger.waiting_counterfactuals():
            cut = None if w.cancel_requested_at is None else Cut(at=w.cancel_requested_at)
            self._hold(w.job_id, w.device_ids, w.start, w.duration_s, cut, w.deadline)
            self._waiting.add(w.job_id)

    def devices(
        self,
        devices: Sequence[Device],
        now: datetime,
        running: Sequence[_Running] = (),
        overrun_s: float = 0.0,
    ) -> list[Device]:
        """``devices`` with ``run_now_busy_until`` (and its holder, and when the others hold
        it until) set where a counterfactual run holds the GPU past ``now`` (last round's
        object where those are the same). The copies of the jobs ``running`` past their
        predicted end hold as their runs are turning out (:meth:`_overrunning`)."""
        going = self._overrunning(running, now, overrun_s) if running else frozenset()
        until = self._until
        for device_id in list(until):
            kept = until[device_id]
            for job_id in [k for k, end in kept.items() if end <= now]:
                del kept[job_id]
                if job_id not in going:  # a running job's copy may hold again next round
                    self._runs.pop(job_id, None)
            if not kept:
                del until[device_id]
        if not until:
            self._built.clear()
            return list(devices)
        built: dict[str, _Built] = {}
        out = []
        for device in devices:
            holds = until.get(device.device_id)
            if holds is None:
                out.append(device)
                continue
            key = _holding(holds)
            entry = self._built.get(device.device_id)
            if entry is None or entry[0] is not device or entry[1] != key:
                end, holder, others = key
                held = replace(device, run_now_busy_until=end, run_now_holder=holder,
                               run_now_others_until=others)  # fmt: skip
                entry = (device, key, held)
            built[device.device_id] = entry
            out.append(entry[2])
        self._built = built
        return out

    def _overrunning(
        self, running: Sequence[_Running], now: datetime, overrun_s: float
    ) -> frozenset[str]:
        """Hold the copies of the jobs ``running`` as each run is turning out: one past its
        expected end at ``now`` plus ``overrun_s`` (its GPUs are held that long more: the next
        round) has run ``k`` times its predicted duration by then, so its copy runs at least
        ``k`` times its own (its owner's cancel still ending it). Returns the running jobs
        whose copies are known (kept while they run, to hold again as they go on)."""
        going = set()
        runs, horizon = self._runs, now + timedelta(seconds=overrun_s)
        for run in running:
            held = runs.get(run.job_id)
            if held is None:
                continue
            going.add(run.job_id)
            started = run.started_at or run.launched_at
            scale = ratio((horizon - started).total_seconds(), run.expected_duration_s)
            device_ids, start, duration_s, cut = held
            if scale is None or scale <= 1.0:
                continue
            if cut is not None and (cut.share is not None or cut.scale is not None):
                continue  # its end is known
            at = cut.at if cut is not None else None
            end = held_until(start, duration_s, Cut(at=at, scale=scale))
            if end <= now:
                continue
            for device_id in device_ids:
                holds = self._until.setdefault(device_id, {})
                before = holds.get(run.job_id)
                if before is None or end > before:
                    holds[run.job_id] = end
        return frozenset(going)


def _holding(holds: Mapping[str, datetime]) -> tuple[datetime, str, datetime | None]:
    """The latest end of ``holds`` (by job id), its job (ties: the first id), and the latest
    end of the other jobs (None: none)."""
    end = max(holds.values())
    holder = min(j for j, e in holds.items() if e == end)
    others = [e for j, e in holds.items() if j != holder]
    return end, holder, max(others) if others else None
