"""Prometheus metrics: a text endpoint on localhost with the daemon's own registry.

:class:`Metrics` has plain methods the service calls (it implements the service's
``MetricsSink`` protocol: ``observe_queue``, ``observe_past_deadline``, ``observe_decision``,
``observe_outcome``, ``observe_intensity``, ``observe_zones``, ``observe_totals``), one the loop
calls (``observe_step``) and two the composition root calls at start and after a reload
(``observe_policy``, ``observe_source``); it owns a private ``CollectorRegistry`` (never the
process-global one), and :meth:`Metrics.start` serves it over HTTP on ``127.0.0.1``
(``metrics.port`` in the settings; the composition root does not start it when the port is
0). Metric names (all prefixed ``carbond_``):

==========================================  =======  =============================================
name                                        type     labels / meaning
==========================================  =======  =============================================
``jobs``                                    gauge    ``state``: jobs in each ledger state
``jobs_past_deadline``                      gauge    running jobs past their deadline (run on)
``decisions_total``                         counter  ``policy``, ``action`` (start, hold, reject)
``expected_emissions_grams_total``          counter  ``policy``: expected gCO2e of started jobs
``run_now_emissions_grams_total``           counter  ``policy``: the run-now counterfactual's
``measured_emissions_grams_total``          counter  gCO2e of finished jobs (measured or estimated)
``measured_energy_joules_total``            counter  GPU energy measured for finished jobs
``jobs_finished_total``                     counter  ``state``: succeeded, failed, cancelled, ...
``intensity_g_per_kwh``                     gauge    ``zone``: latest carbon intensity
``intensity_age_seconds``                   gauge    ``zone``: age of that value at scrape time
``intensity_rung``                          gauge    ``zone``, ``rung``: 1 for the rung in use
``intensity_source``                        gauge    ``source``: the configured one only, at 1
``step_seconds``                            summary  ``step``: duration of each service step
``step_errors_total``                       counter  ``step``: steps that failed (not given up)
``ledger_jobs``                             gauge    finished jobs with an outcome in the ledger
``ledger_energy_joules``                    gauge    ``source`` (measured, estimated): their energy
``ledger_emissions_grams``                  gauge    ``part`` (operational, embodied, total): gCO2e
``ledger_run_now_emissions_grams``          gauge    the run-now counterfactual of the same jobs
``ledger_saved_grams``                      gauge    run-now minus real gCO2e (negative: cost more)
``ledger_deadlines_missed``                 gauge    jobs ended past their deadline or expired
==========================================  =======  =============================================

Counters start at 0 with each daemon, those whose labels are known beforehand (each step's
errors, each final state's finished jobs, the decisions and grams of the policy in use:
:meth:`Metrics.observe_policy`) with a sample at 0 (else ``increase()`` misses the first
one); the ``ledger_*`` gauges are the ledger's own sums, set when the daemon starts and after
each finished job, so totals and savings survive restarts (absent until first set: never a 0
that the ledger does not hold).
``docs/metrics.md`` explains each metric, with the example Grafana dashboard and alert rules.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import get_args
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Summary, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from daemon.errors import DaemonError
from daemon.states import FINAL_STATES, STATES
from daemon.supervision.loop import STEP_NAMES
from policies.types import Action

__all__ = ["Metrics"]


class _IntensityAge(Collector):
    """Computes each zone's intensity age when scraped, from the sample time."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._observed: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def set(self, zone: str, observed_at: datetime) -> None:
        with self._lock:
            self._observed[zone] = observed_at

    def keep(self, zones: Collection[str]) -> list[str]:
        """Forget every zone but ``zones``; return those forgotten."""
        with self._lock:
            gone = sorted(set(self._observed) - set(zones))
            for zone in gone:
                del self._observed[zone]
        return gone

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "carbond_intensity_age_seconds",
            "Age of the latest carbon-intensity value per zone, in seconds",
            labels=["zone"],
        )
        now = self._clock()
        with self._lock:
            for zone, observed in sorted(self._observed.items()):
                family.add_metric([zone], max(0.0, (now - observed).total_seconds()))
        yield family


class _LedgerTotals(Collector):
    """The ``carbond_ledger_*`` gauges: none until the ledger's totals are first set (the
    endpoint listens before the service reads the ledger; zeros then would read as a drop)."""

    def __init__(self) -> None:
        self._totals: dict[str, float] | None = None
        self._lock = threading.Lock()

    def set(self, totals: Mapping[str, float]) -> None:
        with self._lock:
            self._totals = dict(totals)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            totals = self._totals
        if totals is None:
            return
        got = totals.get
        energy_j, measured_j = got("energy_j", 0.0), got("measured_energy_j", 0.0)
        yield _gauge("jobs", "Finished jobs with an outcome row in the ledger", got("jobs", 0.0))
        yield _gauge(
            "energy_joules",
            "GPU energy of the ledger's finished jobs, measured or estimated",
            source={"measured": measured_j, "estimated": max(0.0, energy_j - measured_j)},
        )
        yield _gauge(
            "emissions_grams",
            "gCO2e of the ledger's finished jobs: operational, embodied and total",
            part={p: got(f"{p}_g", 0.0) for p in ("operational", "embodied", "total")},
        )
        yield _gauge(
            "run_now_emissions_grams",
            "gCO2e of the same jobs in the run-now counterfactual stored at submission",
            got("run_now_total_g", 0.0),
        )
        yield _gauge(
            "saved_grams",
            "Run-now counterfactual minus real gCO2e over the ledger's finished jobs",
            got("saved_g", 0.0),
        )
        yield _gauge(
            "deadlines_missed",
            "Jobs that ended after their deadline or expired before starting",
            got("deadlines_missed", 0.0),
        )


def _gauge(
    name: str, doc: str, value: float | None = None, **by_label: dict[str, float]
) -> GaugeMetricFamily:
    """``carbond_ledger_<name>``: one ``value``, or one sample per value of the one label."""
    if value is not None:
        return GaugeMetricFamily(f"carbond_ledger_{name}", doc, value=value)
    [(label, values)] = by_label.items()
    family = GaugeMetricFamily(f"carbond_ledger_{name}", doc, labels=[label])
    for key, v in values.items():
        family.add_metric([key], v)
    return family


class Metrics:
    """The daemon's metrics. Constructing it opens nothing; :meth:`start` serves them.

    Args:
        clock: wall clock for ages at scrape time (tests inject one).
    """

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._jobs = Gauge("carbond_jobs", "Jobs in each state", ["state"], registry=r)
        self._past_deadline = Gauge(
            "carbond_jobs_past_deadline", "Running jobs past their deadline", registry=r
        )
        self._decisions = Counter(
            "carbond_decisions", "Planning decisions", ["policy", "action"], registry=r
        )
        self._expected_g = Counter(
            "carbond_expected_emissions_grams",
            "Expected gCO2e (operational + embodied) of started jobs",
            ["policy"],
            registry=r,
        )
        self._run_now_g = Counter(
            "carbond_run_now_emissions_grams",
            "Expected gCO2e of the same jobs under run-now (fastest GPU free at submission, else"
            " the first to free up, from the first planning round at or after it does), stored"
            " with each job's first decision; a job run-now"
            " would have missed (that start at or after its deadline): its own expected gCO2e",
            ["policy"],
            registry=r,
        )
        self._measured_g = Counter(
            "carbond_measured_emissions_grams",
            "gCO2e of finished jobs, their energy measured or estimated (energy_method)",
            registry=r,
        )
        self._measured_j = Counter(
            "carbond_measured_energy_joules", "Measured GPU energy of finished jobs", registry=r
        )
        self._finished = Counter(
            "carbond_jobs_finished", "Jobs that reached a final state", ["state"], registry=r
        )
        for state in sorted(FINAL_STATES):  # at 0 from the start: see _step_errors
            self._finished.labels(state=state)
        self._intensity = Gauge(
            "carbond_intensity_g_per_kwh", "Latest carbon intensity per zone", ["zone"], registry=r
        )
        self._rung = Gauge(
            "carbond_intensity_rung",
            "The fallback-chain rung each zone's intensity comes from: 1 for the current one",
            ["zone", "rung"],
            registry=r,
        )
        self._rungs: dict[str, str] = {}  # zone -> the rung exported
        self._source = Gauge(
            "carbond_intensity_source",
            "The configured intensity source ([intensity] source): one series, always 1, "
            "labelled with it; the other sources have no series",
            ["source"],
            registry=r,
        )
        self._source_name: str | None = None
        self._clock = clock
        self._age = _IntensityAge(clock)
        r.register(self._age)
        self._step = Summary(
            "carbond_step_seconds", "Duration of each service step", ["step"], registry=r
        )
        self._step_errors = Counter(
            "carbond_step_errors",
            "Service steps that failed (not given up at a stop)",
            ["step"],
            registry=r,
        )
        # Every known label value at 0 from the start: Prometheus' increase() and rate() count
        # nothing for a series' first sample, so a series born at 1 loses its first error.
        for step in STEP_NAMES:
            self._step_errors.labels(step=step)
        self._ledger = _LedgerTotals()
        r.register(self._ledger)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- what the composition root calls ------------------------------------------------------

    def observe_policy(self, policy: str) -> None:
        """``policy`` plans from now on (at start, after a reload): its decision and grams
        series are exported at 0 before its first decision, so increase() counts that one."""
        for action in get_args(Action):
            self._decisions.labels(policy=policy, action=action)
        self._expected_g.labels(policy=policy)
        self._run_now_g.labels(policy=policy)

    def observe_source(self, source: str) -> None:
        """``[intensity] source`` (``chain``, ``static``, ``embedded``) feeds the intensities
        from now on (at start, after a reload); the previous one is no longer exported. Only
        the chain falls back: a ``static`` rung under a ``static`` source is no fallback."""
        if self._source_name is not None and self._source_name != source:
            self._source.remove(self._source_name)
        self._source.labels(source=source).set(1)
        self._source_name = source

    # -- what the service calls (daemon.metrics.sink.MetricsSink) ---------------------------

    def observe_queue(self, depth_by_state: Mapping[str, int]) -> None:
        """Queue depth: jobs per state (states absent from the mapping are set to 0)."""
        for state in sorted({*STATES, *depth_by_state}):  # each state, 0 when empty
            self._jobs.labels(state=state).set(depth_by_state.get(state, 0))

    def observe_past_deadline(self, running: int) -> None:
        """Running jobs past their deadline, after each reconcile."""
        self._past_deadline.set(running)

    def observe_decision(
        self,
        policy: str,
        action: str,
        expected_total_g: float | None,
        run_now_total_g: float | None,
    ) -> None:
        """One recorded decision; a ``start`` adds its expected and run-now gCO2e."""
        self._decisions.labels(policy=policy, action=action).inc()
        if action == "start":
            self.observe_started(policy, expected_total_g, run_now_total_g)

    def observe_started(
        self, policy: str, expected_total_g: float | None, run_now_total_g: float | None
    ) -> None:
        """A job started (at a ``start`` decision, or by its executor at its held plan's
        start): adds its expected and run-now gCO2e (None: not counted)."""
        if expected_total_g is not None:
            self._expected_g.labels(policy=policy).inc(max(0.0, expected_total_g))
        if run_now_total_g is not None:
            self._run_now_g.labels(policy=policy).inc(max(0.0, run_now_total_g))

    def observe_outcome(
        self,
        job_id: str,
        state: str,
        measured_total_g: float | None,
        measured_energy_j: float | None = None,
    ) -> None:
        """A job reached final ``state``; adds its measured gCO2e and energy when known."""
        self._finished.labels(state=state).inc()
        if measured_total_g is not None:
            self._measured_g.inc(max(0.0, measured_total_g))
        if measured_energy_j is not None:
            self._measured_j.inc(max(0.0, measured_energy_j))

    def observe_intensity(
        self, zone: str, intensity_g_per_kwh: float, age_s: float, rung: str = "live"
    ) -> None:
        """The latest intensity of ``zone``, ``age_s`` old now (the age grows until the next),
        from the fallback chain's ``rung`` (the static annual value has no age to grow)."""
        self._intensity.labels(zone=zone).set(intensity_g_per_kwh)
        self._age.set(zone, self._clock() - timedelta(seconds=max(0.0, age_s)))
        before = self._rungs.get(zone)
        if before is not None and before != rung:
            self._rung.remove(zone, before)
        self._rung.labels(zone=zone, rung=rung).set(1)
        self._rungs[zone] = rung

    def observe_zones(self, zones: Collection[str]) -> None:
        """Only ``zones`` have an intensity and an age now: a zone a reload removed is dropped
        (else its age grows for ever and a staleness alert fires for a zone not planned in)."""
        for zone in self._age.keep(zones):
            self._intensity.remove(zone)
            rung = self._rungs.pop(zone, None)
            if rung is not None:
                self._rung.remove(zone, rung)

    def observe_totals(self, totals: Mapping[str, float]) -> None:
        """The ledger's sums (:meth:`daemon.ledger.Ledger.outcome_totals`); the ``ledger_*``
        gauges are exported from the first call on (a scrape before has none, not zeros)."""
        self._ledger.set(totals)

    # -- what the loop calls ----------------------------------------------------------------

    def observe_step(self, step: str, duration_s: float, *, failed: bool = False) -> None:
        """One run of a service step (``ingest``, ``plan``, ...), in seconds."""
        self._step.labels(step=step).observe(duration_s)
        if failed:
            self._step_errors.labels(step=step).inc()

    # -- the endpoint -------------------------------------------------------------------------

    def start(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on ``host:port`` in a daemon thread; return the bound port.

        Port 0 binds any free port (tests). Raises:
            DaemonError: the port cannot be bound.
        """
        if self._server is not None:
            return self.port
        try:
            self._server, self._thread = start_http_server(port, host, registry=self.registry)
        except OSError as exc:
            raise DaemonError(f"metrics: cannot listen on {host}:{port}: {exc}") from exc
        return self.port

    @property
    def port(self) -> int:
        """The bound port (0 when not serving)."""
        return 0 if self._server is None else int(self._server.server_port)

    def close(self) -> None:
        """Stop serving (idempotent)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self) -> Metrics:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
