"""The ledger's accounting queries: intensity samples over a run, the run-now counterfactual
stored at submission, and finished jobs' outcomes over a period (for reports and metrics)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from daemon.ledger.base import Connection
from daemon.ledger.records import EndedCounterfactual, WaitingCounterfactual
from daemon.ledger.samples import KeptSamples
from daemon.ledger.values import dt, req_dt, ts
from daemon.natural_order import SQL_FUNCTION, register
from policies.run_now_claims import expires_unstarted

__all__ = ["Accounting", "IntensitySample", "missed_by_run_now", "period_where"]

IntensitySample = tuple[datetime, float, str]
"""``(at, intensity_g_per_kwh, source)``."""


class Accounting(Connection):
    """Read-only queries over outcomes, decisions and intensity samples."""

    # The samples of the zones this connection records (daemon.ledger.samples).
    _kept_samples: KeptSamples | None = None

    @property
    def _samples(self) -> KeptSamples:
        if self._kept_samples is None:
            self._kept_samples = KeptSamples()
        return self._kept_samples

    def intensity_samples(
        self, zone: str, since: datetime | str, until: datetime | str
    ) -> list[IntensitySample]:
        """``zone``'s samples at ``since`` .. ``until``, oldest first, led by the last sample
        before ``since`` (the value in force when the interval began), if any. Each end is a
        datetime or its stored text (``ts``: an ending has formatted both already)."""
        start = since if isinstance(since, str) else since.isoformat()
        end = until if isinstance(until, str) else until.isoformat()
        if self._samples.kept(zone):
            return self._samples.between(zone, start, end)
        before = self._exec(
            "SELECT at, intensity_g_per_kwh, source FROM intensity_samples"
            " WHERE zone = ? AND at < ? ORDER BY at DESC LIMIT 1",
            (zone, start),
        ).fetchall()
        inside = self._exec(
            "SELECT at, intensity_g_per_kwh, source FROM intensity_samples"
            " WHERE zone = ? AND at >= ? AND at <= ? ORDER BY at",
            (zone, start, end),
        ).fetchall()
        return [(req_dt(r[0]), float(r[1]), str(r[2])) for r in [*before, *inside]]

    def counterfactual(self, job_id: str) -> dict[str, Any] | None:
        """The run-now counterfactual recorded with ``job_id``'s first decision that had one
        (made when the job was ingested, so: the start it could have had at submission), as
        the decision stored it (``alternative_json``), or None."""
        row = self._exec(
            "SELECT run_now_json FROM decisions WHERE job_id = ? AND run_now_json IS NOT NULL"
            " ORDER BY seq LIMIT 1",
            (job_id,),
        ).fetchone()
        if row is None:
            return None
        value: dict[str, Any] = json.loads(row[0])
        return value

    def ended_counterfactuals(self, since: datetime) -> list[EndedCounterfactual]:
        """The run-now counterfactuals (:meth:`counterfactual`) of the jobs whose outcome
        finished at or after ``since``, and of the jobs that expired or failed without
        running (no outcome) since then, by job id, each with how its job ended (two queries:
        a restart learns the counterfactual runs that may still hold GPUs, cut short where the
        job's end cuts them, :mod:`daemon.run_now_busy`; a job cancelled before it ran cut its
        copy at its cancel, before now, and is not read)."""
        first = (
            "(SELECT d.run_now_json FROM decisions d WHERE d.job_id = j.job_id"
            " AND d.run_now_json IS NOT NULL ORDER BY d.seq LIMIT 1) AS run_now_json"
        )
        ran = self._exec(
            f"SELECT j.job_id, {first}, j.state, o.finished_at, j.cancel_requested_at,"
            " r.exit_code, r.signal, o.duration_s, o.predicted_duration_s, j.deadline"
            " FROM outcomes o JOIN jobs j USING (job_id) LEFT JOIN runs r USING (job_id)"
            " WHERE o.finished_at >= ?",
            (ts(since),),
        ).fetchall()
        unran = self._exec(
            f"SELECT j.job_id, {first}, j.state, j.updated_at AS finished_at,"
            " j.cancel_requested_at, NULL AS exit_code, NULL AS signal, NULL AS duration_s,"
            " NULL AS predicted_duration_s, j.deadline FROM jobs j"
            " WHERE j.state IN ('expired', 'failed') AND j.updated_at >= ?"
            " AND NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.job_id = j.job_id)",
            (ts(since),),
        ).fetchall()
        rows = sorted(ran + unran, key=lambda row: str(row["job_id"]))
        return [_ended(row) for row in rows if row["run_now_json"] is not None]

    def waiting_counterfactuals(self) -> list[WaitingCounterfactual]:
        """The run-now counterfactual runs (:meth:`counterfactual`: its devices, start and
        duration) of the jobs still waiting (``queued`` or ``planned``) that have one, by job
        id, each with its cancel request and deadline (one query, only the run's three fields
        read out of the stored JSON: a restart learns the counterfactual runs the jobs outside
        the planning window hold, :mod:`daemon.run_now_busy`)."""
        rows = self._exec(
            "SELECT job_id, (SELECT group_concat(value, char(31))"
            " FROM json_each(r, '$.device_ids')), json_extract(r, '$.start'),"
            " json_extract(r, '$.duration_s'), cancel_requested_at, deadline FROM ("
            " SELECT j.job_id, j.cancel_requested_at, j.deadline,"
            " (SELECT d.run_now_json FROM decisions d WHERE d.job_id = j.job_id"
            " AND d.run_now_json IS NOT NULL ORDER BY d.seq LIMIT 1) AS r"
            " FROM jobs j WHERE j.state IN ('queued', 'planned'))"
            " WHERE r IS NOT NULL ORDER BY job_id"
        ).fetchall()
        out = []
        for job_id, ids, start, duration_s, asked, deadline in rows:
            if ids and start and duration_s is not None:  # a malformed record holds nothing
                out.append(WaitingCounterfactual(str(job_id), tuple(ids.split("\x1f")),
                                                 datetime.fromisoformat(start), float(duration_s),
                                                 dt(asked), dt(deadline)))  # fmt: skip
        return out

    def counterfactual_total_g(self, job_id: str) -> float | None:
        """The ``total_g`` of :meth:`counterfactual` (None: no counterfactual): what an
        outcome row records as the run-now grams."""
        value = self.counterfactual(job_id)
        return None if value is None else value["total_g"]

    def run_now_claim_g(
        self,
        job_id: str,
        deadline: datetime | None,
        expected_g: float | None,
        run_now_g: float | None,
        run_now_start: datetime | None,
    ) -> float | None:
        """The run-now grams a started job's saving is claimed against: those of the
        counterfactual stored at submission (:meth:`counterfactual`; without one ``run_now_g``,
        its copy starting at ``run_now_start``), but the job's own ``expected_g`` where run-now
        would have missed its deadline (:func:`missed_by_run_now`): it claims no saving, as its
        outcome row does."""
        stored = self.counterfactual(job_id)
        start: datetime | str | None = run_now_start
        if stored is not None:
            run_now_g, start = stored["total_g"], stored.get("start")
        return expected_g if missed_by_run_now(deadline, start) else run_now_g

    def finished_outcomes(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        by_job: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Outcome rows of jobs that finished in ``[since, until)`` (open ends: unbounded),
        oldest first (``by_job``: in natural job id order, :mod:`daemon.natural_order`), each
        with its job's ``uid``, ``name``, ``state``, ``submitted_at``, ``deadline`` and
        ``spec_json``: every outcome column but
        ``details_json`` (a job's power curves, which no report reads and which, over many
        jobs, would not fit in memory). Read one at a time as they are iterated: a report over
        200,000 jobs held every row as a dict beside its line, 0.4 GB of its 0.7.

        Raises:
            LedgerError: SQLite failed (a column an unmigrated ledger lacks is named here)."""
        sql = (
            f"SELECT {_OUTCOME_COLUMNS}, jobs.uid, jobs.name, jobs.state, jobs.submitted_at,"
            " jobs.deadline, jobs.spec_json FROM outcomes JOIN jobs USING (job_id) WHERE 1 = 1"
        )
        where, params = period_where("outcomes.finished_at", since, until)
        order = "outcomes.finished_at, outcomes.job_id"
        if by_job:  # natural order (r2 before r10), as a report sorted in memory lists them
            register(self._db)
            order = f"{SQL_FUNCTION}(outcomes.job_id), outcomes.job_id"
        sql += f"{where} ORDER BY {order}"
        return (dict(r) for r in self._iterate(self._exec(sql, params)))

    def expired_unstarted(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> int:
        """How many jobs expired before they started (a missed deadline, with no outcome row)
        whose deadline, when they expired, fell in ``[since, until)`` (open ends: unbounded)."""
        where, params = period_where("deadline", since, until)
        sql = f"SELECT count(*) FROM jobs WHERE state = 'expired'{where}"
        return int(self._exec(sql, params).fetchone()[0])

    def run_now_missed(self, since: datetime | None = None, until: datetime | None = None) -> int:
        """How many jobs whose outcome finished in ``[since, until)`` (open ends: unbounded)
        run-now would have missed: their run-now counterfactual (:meth:`counterfactual`)
        starts at or after their deadline, where run-now expires them waiting
        (:func:`missed_by_run_now`: they claim no saving, :mod:`daemon.endings.finishing`)."""
        where, params = period_where("o.finished_at", since, until)
        sql = (
            "SELECT j.deadline, (SELECT json_extract(d.run_now_json, '$.start') FROM decisions d"
            " WHERE d.job_id = o.job_id AND d.run_now_json IS NOT NULL ORDER BY d.seq LIMIT 1)"
            f" FROM outcomes o JOIN jobs j USING (job_id) WHERE j.deadline IS NOT NULL{where}"
        )
        return sum(
            1
            for deadline, start in self._exec(sql, params)
            if isinstance(start, str) and missed_by_run_now(req_dt(deadline), start)
        )

    def running_at(self, at: datetime) -> int:
        """How many jobs were running at ``at``: an outcome that started before it and ended
        at or after it, or a ``running`` job with no outcome whose run started before it (a
        report of the jobs that finished before ``at`` has none of them)."""
        row = self._exec(
            "SELECT (SELECT count(*) FROM outcomes WHERE started_at < ? AND finished_at >= ?)"
            " + (SELECT count(*) FROM jobs JOIN runs USING (job_id) WHERE jobs.state = 'running'"
            "    AND coalesce(runs.started_at, runs.launched_at) < ?"
            "    AND NOT EXISTS (SELECT 1 FROM outcomes WHERE outcomes.job_id = jobs.job_id))",
            (ts(at), ts(at), ts(at)),
        ).fetchone()
        return int(row[0])

    def outcome_totals(self) -> dict[str, float]:
        """Sums over every outcome row: ``jobs``, ``energy_j``, ``measured_energy_j``,
        ``operational_g``, ``embodied_g``, ``total_g``; over the jobs with grams and a
        counterfactual, ``run_now_total_g`` and ``saved_g`` (run-now minus real); and
        ``deadlines_missed``: jobs that ended after their deadline or expired unstarted."""
        row = self._exec(
            "SELECT count(*), coalesce(sum(energy_j), 0), coalesce(sum(measured_energy_j), 0),"
            " coalesce(sum(operational_g), 0), coalesce(sum(embodied_g), 0),"
            " coalesce(sum(total_g), 0),"
            " coalesce(sum(CASE WHEN total_g IS NOT NULL THEN run_now_total_g END), 0),"
            " coalesce(sum(run_now_total_g - total_g), 0) FROM outcomes"
        ).fetchone()
        names = ("jobs", "energy_j", "measured_energy_j", "operational_g", "embodied_g",
                 "total_g", "run_now_total_g", "saved_g")  # fmt: skip
        totals = {name: float(value) for name, value in zip(names, row, strict=True)}
        late = self._exec(
            "SELECT (SELECT count(*) FROM outcomes JOIN jobs USING (job_id)"
            "        WHERE jobs.deadline IS NOT NULL AND outcomes.finished_at > jobs.deadline)"
            " + (SELECT count(*) FROM jobs WHERE state = 'expired')"
        ).fetchone()[0]
        totals["deadlines_missed"] = float(late)
        return totals

    def first_record(self) -> datetime | None:
        """The ledger's earliest record: a job's submission or an intensity sample, whichever
        came first (None for an empty ledger). Before it, the ledger knows nothing."""
        firsts = [
            dt(self._exec(f"SELECT min({column}) FROM {table}").fetchone()[0])
            for table, column in (("jobs", "submitted_at"), ("intensity_samples", "at"))
        ]
        known = [f if f.tzinfo else f.replace(tzinfo=UTC) for f in firsts if f is not None]
        return min(known) if known else None

    def intensity_sources(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Per (zone, source) of the samples in ``[since, until)``: ``zone``, ``source``,
        ``samples``, ``first_at``, ``last_at`` and ``mean_g_per_kwh``, by zone then source."""
        sql = (
            "SELECT zone, source, count(*) AS samples, min(at) AS first_at, max(at) AS last_at,"
            " avg(intensity_g_per_kwh) AS mean_g_per_kwh FROM intensity_samples WHERE 1 = 1"
        )
        where, params = period_where("at", since, until)
        sql += where + " GROUP BY zone, source ORDER BY zone, source"
        return [dict(r) for r in self._exec(sql, params)]


# The outcome columns reports read: all but ``details_json``.
_OUTCOME_COLUMNS = ", ".join(
    f"outcomes.{name}"
    for name in ("job_id", "started_at", "finished_at", "duration_s", "gpus", "measured_energy_j",
                 "energy_method", "realised_intensity_g_per_kwh", "intensity_source",
                 "intensity_age_s", "pue", "operational_g", "embodied_g", "total_g",
                 "predicted_energy_j", "predicted_duration_s", "predicted_intensity_g_per_kwh",
                 "predicted_total_g", "run_now_total_g", "recorded_at", "energy_j", "region",
                 "zone", "gpu", "site_pv_j", "site_battery_j", "site_grid_j")
)  # fmt: skip


def missed_by_run_now(deadline: datetime | None, start: datetime | str | None) -> bool:
    """Whether a job due at ``deadline`` is one run-now would have missed: its run-now
    counterfactual's ``start`` (as stored: ISO text, one without an offset in UTC) is at or
    after it (:func:`policies.run_now_claims.expires_unstarted`: run-now expires it waiting,
    its copy never runs), the start the copy was built with (at the planning round run-now
    would start it in), so the ledger and the policy count the same copies missed. False
    without a deadline or a readable start."""
    if deadline is None or start is None:
        return False
    if isinstance(start, str):
        try:
            start = datetime.fromisoformat(start)
        except ValueError:
            return False
    return expires_unstarted(deadline, start if start.tzinfo else start.replace(tzinfo=UTC))


def period_where(
    column: str, since: datetime | None, until: datetime | None
) -> tuple[str, list[Any]]:
    """`` AND column >= ? AND column < ?`` for the ends given, and their parameters."""
    where, params = "", list[Any]()
    if since is not None:
        where, params = where + f" AND {column} >= ?", [*params, ts(since)]
    if until is not None:
        where, params = where + f" AND {column} < ?", [*params, ts(until)]
    return where, params


def _ended(row: Any) -> EndedCounterfactual:
    """An :meth:`Accounting.ended_counterfactuals` row's record."""
    return EndedCounterfactual(
        row["job_id"], json.loads(row["run_now_json"]), row["state"], req_dt(row["finished_at"]),
        dt(row["cancel_requested_at"]), row["exit_code"], row["signal"], row["duration_s"],
        row["predicted_duration_s"], dt(row["deadline"]),
    )  # fmt: skip
