"""The ledger's decisions: a round's rows written in one statement, the latest decision about
a job and its run-now counterfactual (from the rows kept for the jobs this connection added,
:mod:`daemon.ledger.kept`, else read), and the JSON texts the rows store."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from daemon.isotime import isoformat
from daemon.ledger.accounting import Accounting
from daemon.ledger.kept import real
from daemon.ledger.records import DecisionRecord, LatestPlan
from daemon.ledger.values import dt, json_tuple, req_dt, ts
from policies import Alternative, Decision

if TYPE_CHECKING:
    from daemon.ledger.kept import KeptRows

__all__ = ["Decisions", "alternative_json"]


class Decisions(Accounting):
    """The decisions table: what the policy decided about each job, with its alternatives and
    run-now counterfactual (a mixin of :class:`daemon.ledger.Ledger`)."""

    # The texts earlier rounds' rows share (emptied when full).
    _texts: _DecisionTexts | None = None

    if TYPE_CHECKING:  # the Ledger's (daemon.ledger.store): the rows of the jobs added here

        @property
        def _kept(self) -> KeptRows: ...

    def record_decision(self, decision: Decision, at: datetime) -> None:
        """Store ``decision`` with its alternatives and run-now counterfactual."""
        self.record_decisions([decision], at)

    def record_decisions(self, decisions: Sequence[Decision], at: datetime) -> None:
        """:meth:`record_decision` for each of ``decisions``, in order, in one statement (the
        same rows as one by one; the caller holds the transaction, so a failure stores none).
        A round stores one row per moved plan: the texts its rows share with each other and
        with earlier rounds' (devices, regions, starts, a run-now counterfactual's figures) are
        written once (:class:`_DecisionTexts`)."""
        when = ts(at)
        texts = self._texts
        if texts is None or texts.full():
            texts = self._texts = _DecisionTexts()
        alternative, devices, time = texts.alternative, texts.devices, texts.time
        rows: list[tuple[Any, ...]] = []
        append = rows.append
        for decision in decisions:
            chosen, run_now = decision.chosen, decision.run_now
            if run_now is None:
                run_now_json, run_now_g = None, None
            else:
                run_now_json, run_now_g = alternative(run_now), run_now.total_g
            # json.dumps of a list is its items' texts joined by ", " (the run-now
            # counterfactual is often also an alternative: written once)
            alternatives = decision.alternatives
            alternatives_json = (
                "[" + ", ".join(
                    run_now_json if a is run_now and run_now_json is not None
                    else alternative(a)
                    for a in alternatives
                ) + "]"
                if alternatives else "[]"
            )  # fmt: skip
            if chosen is None:
                append((
                    decision.job_id, when, decision.policy, decision.action, decision.reason,
                    None, None, None, None, None, None, None, None, None, None,
                    run_now_g, run_now_json, alternatives_json,
                ))  # fmt: skip
                continue
            append((
                decision.job_id, when, decision.policy, decision.action, decision.reason,
                chosen.region, chosen.gpu, devices(chosen.device_ids), time(chosen.start),
                chosen.duration_s, chosen.energy_j, chosen.intensity_g_per_kwh,
                chosen.operational_g, chosen.embodied_g, chosen.total_g,
                run_now_g, run_now_json, alternatives_json,
            ))  # fmt: skip
        self._exec_many(_INSERT_DECISION, rows)
        kept = self._kept.get
        # kept as written; read back as stored (_kept_decision)
        for decision, row in zip(decisions, rows, strict=True):
            job = kept(row[0])
            if job is not None:
                job.decision = row
                if job.run_now_json is None:
                    job.run_now_json = row[_RUN_NOW_JSON]
                    total = row[_RUN_NOW_TOTAL_G]  # the JSON's total_g, as written
                    # a float or an int reads back from its JSON as itself (a NaN as a NaN)
                    if type(total) is float or type(total) is int:
                        job.run_now_total_g = total
                    run_now = decision.run_now
                    if run_now is not None and _reads_back_as_itself(run_now):
                        job.run_now = run_now

    def latest_decision(self, job_id: str, *, alternatives: bool = True) -> DecisionRecord | None:
        """The most recent decision about ``job_id``, if any. ``alternatives=False``: the
        record without its alternatives (``()``; their JSON is not parsed)."""
        kept = self._kept.get(job_id)
        if kept is not None:
            if kept.decision is None:
                return None
            return _kept_decision(kept.decision, alternatives)
        row = self._exec(
            "SELECT * FROM decisions WHERE job_id = ? ORDER BY seq DESC LIMIT 1", (job_id,)
        ).fetchone()
        return None if row is None else _decision(row, alternatives)

    def start_decisions(self, job_id: str) -> int:
        """How many ``start`` decisions about ``job_id`` are recorded, counted up to 2: more
        than one when it was started again (its launch never confirmed, it was queued again)
        or a start was not dispatched (its devices were busy), and planned again."""
        row = self._exec(
            "SELECT count(*) FROM (SELECT 1 FROM decisions"
            " WHERE job_id = ? AND action = 'start' LIMIT 2)",
            (job_id,),
        ).fetchone()
        return int(row[0])

    def latest_plans(self, job_ids: Collection[str]) -> dict[str, LatestPlan]:
        """What the latest decision about each of ``job_ids`` that has one planned, by job id
        (:meth:`latest_decision`'s action, region, GPU and planned start): those of the jobs
        added here from their kept rows, the others read together, as a restarted or
        reloaded daemon's first round needs them (one query per :data:`_IDS_PER_QUERY` jobs,
        of those four columns; each job's latest row found through the index on ``decisions
        (job_id)``, whose keys end with ``seq``: not :meth:`latest_decisions`, which groups
        every decision ever recorded)."""
        found: dict[str, LatestPlan] = {}
        kept, unread = self._kept.get, []
        for job_id in job_ids:
            job = kept(job_id)
            if job is None:
                unread.append(job_id)
            elif job.decision is not None:  # as written: its start as a read gives it
                row = job.decision
                found[job_id] = LatestPlan(row[3], row[5], row[6], dt(row[8]))
        for k in range(0, len(unread), _IDS_PER_QUERY):
            ids = unread[k : k + _IDS_PER_QUERY]
            rows = self._exec(
                "SELECT d.job_id, d.action, d.region, d.gpu, d.planned_start FROM jobs"
                " JOIN decisions d ON d.seq = (SELECT max(seq) FROM decisions"
                " WHERE decisions.job_id = jobs.job_id)"
                f" WHERE jobs.job_id IN ({','.join('?' * len(ids))})",
                ids,
            )
            for job_id, action, region, gpu, start in self._iterate(rows):
                found[job_id] = LatestPlan(action, region, gpu, dt(start))
        return found

    def counterfactual(self, job_id: str) -> dict[str, Any] | None:
        """:meth:`Accounting.counterfactual`, from the kept rows of a job added here."""
        kept = self._kept.get(job_id)
        if kept is None:
            return super().counterfactual(job_id)
        if kept.run_now_json is None:
            return None
        if kept.run_now is not None:  # its JSON would read back as this (not parsed)
            return alternative_json(kept.run_now)
        value: dict[str, Any] = json.loads(kept.run_now_json)
        return value

    def counterfactual_run(self, job_id: str) -> Alternative | None:
        """The Alternative the run-now counterfactual of a job added here was written from,
        where :meth:`counterfactual` is exactly its :func:`alternative_json` and its start is
        naive or in UTC (so it compares as the parsed text would); None: ask
        :meth:`counterfactual` (a job not kept, no counterfactual, or one that is parsed)."""
        kept = self._kept.get(job_id)
        if kept is None or kept.run_now is None:
            return None
        tz = kept.run_now.start.tzinfo
        return kept.run_now if tz is None or tz is UTC else None

    def counterfactual_total_g(self, job_id: str) -> float | None:
        """:meth:`Accounting.counterfactual_total_g`, from the kept rows of a job added here
        (the figure kept as written when its JSON reads it back the same: not parsed)."""
        kept = self._kept.get(job_id)
        if kept is None or kept.run_now_total_g is None:
            return super().counterfactual_total_g(job_id)
        return kept.run_now_total_g

    def latest_decisions(
        self, states: Sequence[str], *, alternatives: bool = True
    ) -> dict[str, DecisionRecord]:
        """The most recent decision about each job in ``states`` that has one, by job id
        (one query; a replay's final read takes :meth:`Runs.started_runs` instead, which
        reads only the columns it needs). ``alternatives=False``:
        records without their alternatives (``()``; their JSON is not parsed)."""
        rows = self._exec(
            "SELECT decisions.* FROM decisions JOIN (SELECT max(seq) AS seq FROM decisions"
            " GROUP BY job_id) latest USING (seq) JOIN jobs USING (job_id)"
            f" WHERE jobs.state IN ({','.join('?' * len(states))})",
            list(states),
        )
        return {row["job_id"]: _decision(row, alternatives) for row in rows}


_INSERT_DECISION = (
    "INSERT INTO decisions (job_id, at, policy, action, reason, region, gpu, device_ids_json,"
    " planned_start, expected_duration_s, expected_energy_j, expected_intensity_g_per_kwh,"
    " expected_operational_g, expected_embodied_g, expected_total_g, run_now_total_g,"
    " run_now_json, alternatives_json)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# job ids bound in one query of latest_plans (SQLite's limit: 999 before 3.32)
_IDS_PER_QUERY: Final = 500
# the row's places (_INSERT_DECISION's columns); 9 to 15 are REAL
_RUN_NOW_TOTAL_G = 15
_RUN_NOW_JSON = 16


def _kept_decision(row: tuple[Any, ...], alternatives: bool) -> DecisionRecord:
    """The record of a decision row as written, as a read would give it (a REAL column
    turns an int into a float and NaN into NULL)."""
    (job_id, at, policy, action, reason, region, gpu, device_ids, start,
     *figures, _run_now_json, alternatives_json) = row  # fmt: skip
    for k, value in enumerate(figures):
        if value is not None and (type(value) is not float or math.isnan(value)):
            figures[k] = real(value)
    duration, energy, intensity, operational, embodied, total, run_now = figures
    return DecisionRecord(
        job_id=job_id, at=req_dt(at), policy=policy, action=action, reason=reason,
        region=region, gpu=gpu, device_ids=json_tuple(device_ids or "[]"),
        planned_start=dt(start), expected_duration_s=duration, expected_energy_j=energy,
        expected_intensity_g_per_kwh=intensity, expected_operational_g=operational,
        expected_embodied_g=embodied, expected_total_g=total, run_now_total_g=run_now,
        alternatives=tuple(json.loads(alternatives_json)) if alternatives else (),
    )  # fmt: skip


def alternative_json(alt: Any) -> dict[str, Any]:
    """A :class:`policies.Alternative` as a JSON-safe dict."""
    return {
        "device_ids": list(alt.device_ids),
        "region": alt.region,
        "gpu": alt.gpu,
        "start": isoformat(alt.start),
        "duration_s": alt.duration_s,
        "energy_j": alt.energy_j,
        "intensity_g_per_kwh": alt.intensity_g_per_kwh,
        "operational_g": alt.operational_g,
        "embodied_g": alt.embodied_g,
        "total_g": alt.total_g,
    }


def _reads_back_as_itself(alt: Any) -> bool:
    """Whether ``json.loads`` of ``alt``'s JSON (:meth:`_DecisionTexts.alternative`) surely
    gives exactly :func:`alternative_json` of it, values and types: plain strings (its
    devices' in a tuple, which nothing changes), a plain datetime and finite floats (a float
    subclass reads back as a float, a NaN as another NaN; anything else is parsed)."""
    if type(alt.start) is not datetime or type(alt.region) is not str or type(alt.gpu) is not str:
        return False
    ids = alt.device_ids
    if type(ids) is not tuple:
        return False
    for device_id in ids:  # a loop, not all() of a generator: asked once per job
        if type(device_id) is not str:
            return False
    duration, energy, intensity = alt.duration_s, alt.energy_j, alt.intensity_g_per_kwh
    operational, embodied, total = alt.operational_g, alt.embodied_g, alt.total_g
    return (
        type(duration) is float and type(energy) is float and type(intensity) is float
        and type(operational) is float and type(embodied) is float and type(total) is float
        and math.isfinite(duration + energy + intensity + operational + embodied + total)
    )  # fmt: skip


class _DecisionTexts:
    """The JSON texts of decisions, each as ``json.dumps`` writes it, with the parts that
    repeat (device ids, regions and GPUs, start times, an alternative's figures) encoded once.
    A ledger keeps one between rounds: a held job's run-now counterfactual is written again
    each time its plan moves, and its figures (the same pool, a forecast that moved on by
    the hour) mostly read the same; :meth:`full` says when to start a new one.

    :meth:`alternative` is ``json.dumps(alternative_json(alt))``: the same keys in the same
    order, ``", "`` and ``": "`` between them, finite floats as their ``repr``; an
    alternative with any other figure is written by ``json.dumps`` itself.
    """

    KEPT: Final = 100_000  # texts kept, at most ~20 MB

    def __init__(self) -> None:
        self._devices: dict[tuple[str, ...], str] = {}
        self._strings: dict[str, str] = {}
        # by identity: equal datetimes in other time zones write other texts (the object is
        # held, so its id is not reused while it is kept)
        self._times: dict[int, tuple[datetime, str]] = {}
        # figures (all floats, finite, none zero: 0.0 and -0.0 are one key, two texts) ->
        # the text from "duration_s" on
        self._figures: dict[tuple[float, ...], str] = {}

    def full(self) -> bool:
        """Whether more than :data:`KEPT` texts are kept."""
        return len(self._figures) + len(self._times) + len(self._devices) > self.KEPT

    def devices(self, device_ids: tuple[str, ...]) -> str:
        """``json.dumps(list(device_ids))``."""
        text = self._devices.get(device_ids)
        if text is None:
            text = self._devices[device_ids] = json.dumps(list(device_ids))
        return text

    def time(self, at: datetime) -> str:
        """``at.isoformat()``."""
        seen = self._times.get(id(at))
        if seen is None:
            seen = self._times[id(at)] = (at, isoformat(at))
        return seen[1]

    def alternative(self, alt: Any) -> str:
        """``json.dumps(alternative_json(alt))``."""
        figures = (alt.duration_s, alt.energy_j, alt.intensity_g_per_kwh, alt.operational_g,
                   alt.embodied_g, alt.total_g)  # fmt: skip
        duration, energy, intensity, operational, embodied, total = figures
        # only floats are looked up (an int equals a float and writes another text)
        if (type(duration) is not float or type(energy) is not float
                or type(intensity) is not float or type(operational) is not float
                or type(embodied) is not float or type(total) is not float):  # fmt: skip
            return json.dumps(alternative_json(alt))
        rest = self._figures.get(figures)
        if rest is None:
            # a float's repr is its JSON when finite (and a sum of finite ones is finite
            # unless it overflows: then the slow way too); any other goes through json.dumps
            if not math.isfinite(duration + energy + intensity + operational + embodied + total):
                return json.dumps(alternative_json(alt))
            rest = (
                f' "duration_s": {duration!r}, "energy_j": {energy!r},'
                f' "intensity_g_per_kwh": {intensity!r}, "operational_g": {operational!r},'
                f' "embodied_g": {embodied!r}, "total_g": {total!r}}}'
            )
            if duration and energy and intensity and operational and embodied and total:
                self._figures[figures] = rest
        string = self._string
        return (
            f'{{"device_ids": {self.devices(alt.device_ids)}, "region": {string(alt.region)},'
            f' "gpu": {string(alt.gpu)}, "start": "{self.time(alt.start)}",{rest}'
        )

    def _string(self, value: Any) -> str:
        if type(value) is not str:
            return json.dumps(value)
        text = self._strings.get(value)
        if text is None:
            text = self._strings[value] = json.dumps(value)
        return text


def _decision(row: sqlite3.Row | dict[str, Any], alternatives: bool = True) -> DecisionRecord:
    return DecisionRecord(
        job_id=row["job_id"], at=req_dt(row["at"]), policy=row["policy"],
        action=row["action"], reason=row["reason"], region=row["region"], gpu=row["gpu"],
        device_ids=json_tuple(row["device_ids_json"] or "[]"),
        planned_start=dt(row["planned_start"]),
        expected_duration_s=row["expected_duration_s"],
        expected_energy_j=row["expected_energy_j"],
        expected_intensity_g_per_kwh=row["expected_intensity_g_per_kwh"],
        expected_operational_g=row["expected_operational_g"],
        expected_embodied_g=row["expected_embodied_g"],
        expected_total_g=row["expected_total_g"], run_now_total_g=row["run_now_total_g"],
        alternatives=tuple(json.loads(row["alternatives_json"])) if alternatives else (),
    )  # fmt: skip
