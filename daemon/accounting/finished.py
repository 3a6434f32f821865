"""The ``outcomes`` row of a finished run: what was predicted, where it ran, and the best energy
available (metered on this node, else what its executor reported, else ``estimated``) with the
realised intensity over the run, so that no finished job lacks carbon figures."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog

from daemon.accounting.methods import ESTIMATED
from daemon.accounting.realised import realised_from_samples
from daemon.accounting.run_now_priced import ratio, run_now_intensity_g_per_kwh, run_now_zone
from daemon.accounting.run_now_site import CopySites, site_blended_g_per_kwh
from daemon.accounting.unconfigured import reported_energy_columns
from daemon.accounting.unmetered import measured_energy_bound_j, unmetered_columns
from daemon.endings.rules import predicted_outcome
from daemon.executors.base import ExitStatus
from daemon.inventory import InventoryGpu
from daemon.ledger import DecisionRecord, Ledger, RunRecord, alternative_json
from daemon.logs import dropped
from policies import Alternative, PoliciesError, ZoneIntensity
from policies.footprint import DEFAULT_GPU_CATALOG, GpuCatalog
from policies.footprint.outcome import RealisedIntensity, realised_intensity

__all__ = ["estimates_logged", "finished_columns", "is_the_kept_run", "is_the_run", "like_the_run"]

log = structlog.get_logger(__name__)

Recorded = Mapping[str, Any] | Alternative
"""A run-now counterfactual as the ledger reads it back, or the Alternative it was written from
(:meth:`daemon.ledger.Ledger.counterfactual_run`: the same figures, not parsed)."""


def estimates_logged() -> bool:
    """Whether ``job_energy_estimated`` events are logged as logging is configured now."""
    return not dropped(__name__, logging.INFO)


def finished_columns(
    ledger: Ledger,
    gpu: InventoryGpu | None,
    run: RunRecord,
    started: datetime,
    decision: DecisionRecord,
    status: ExitStatus,
    measured: Mapping[str, Any],
    forecasts: Mapping[str, ZoneIntensity],
    lifetime_years: float,
    *,
    quiet: bool | None = None,
    by_device: Mapping[str, InventoryGpu] | None = None,
    catalog: GpuCatalog = DEFAULT_GPU_CATALOG,
    sites: CopySites | None = None,
) -> dict[str, Any]:
    """The row for ``run`` on ``gpu`` (its first device; None when no longer in the inventory),
    which really started at ``started`` (the executor's word, else the run row's).

    ``measured`` holds the columns the GPU meter filled (empty when nothing metered the run);
    the realised intensity comes from the ledger's samples over the run, else from the held
    forecast in ``forecasts``. Logs ``job_energy_estimated`` when the grams use the estimate
    (``quiet``: known not to be logged, :func:`estimates_logged`; None: asked here). The
    run-now counterfactual is priced at the intensity realised over its own window where
    ``by_device`` (the inventory by device id) knows its zone
    (:mod:`daemon.accounting.run_now_priced`). ``catalog`` (the site's) gives the TDP that
    bounds the executor's measured energy of a run whose GPU left the inventory. ``sites``:
    the sites, for a counterfactual at a region with one (:mod:`daemon.accounting.run_now_site`).
    """
    pue = gpu.device.pue if gpu is not None else None
    columns = predicted_outcome(started, run, decision, status, pue)
    period = columns["started_at"], columns["finished_at"]  # the run's ends, as stored
    # the counterfactual as written (not parsed: its JSON reads back as alternative_json of
    # it), else as the ledger reads it
    kept = ledger.counterfactual_run(run.job_id)
    recorded: Recorded | None = kept
    if kept is not None:
        columns["run_now_total_g"] = kept.total_g
    elif (read := ledger.counterfactual(run.job_id)) is not None:
        columns["run_now_total_g"] = read.get("total_g")  # without a figure: NULL
        recorded = read
    if gpu is not None:
        columns |= {"region": gpu.device.region, "zone": gpu.device.zone,
                    "gpu": gpu.device.gpu.name}  # fmt: skip
    else:
        columns |= {"region": decision.region, "gpu": decision.gpu}
    columns |= measured
    if gpu is None:  # its region or GPU left the configuration (a reload or restart)
        if measured.get("energy_j") is None:  # the executor's measurement, if plausible
            columns |= reported_energy_columns(run, decision, started, status, catalog)
        columns |= _no_grams(run, decision, columns)
    if measured.get("energy_j") is not None or gpu is None:
        return _as_turned_out(ledger, columns, recorded, by_device, forecasts, run, started, status,
                              planned=decision.planned_start, sites=sites)  # fmt: skip
    zone = gpu.device.zone
    from_samples = realised_from_samples(
        zone, ledger.intensity_samples(zone, *period), started, status.finished_at,
    )  # fmt: skip
    realised = from_samples or _realised_from_forecast(
        forecasts.get(zone), started, status.finished_at
    )
    columns |= unmetered_columns(
        started_at=started, finished_at=status.finished_at, gpu=gpu.device.gpu.name,
        gpus=status.gpus or len(run.device_ids), gpu_embodied_g=gpu.device.gpu.embodied_g,
        pue=gpu.device.pue, lifetime_years=lifetime_years, decision=decision,
        realised=realised, reported_energy_j=status.energy_j,
        reported_method=status.energy_method, gpu_tdp_w=gpu.device.gpu.tdp_w,
        reported_over_s=status.earlier_runs_s,
    )  # fmt: skip
    if status.energy_j is not None and columns.get("measured_energy_j") is None:
        duration_s = max(0.0, (status.finished_at - started).total_seconds())
        duration_s += status.earlier_runs_s
        gpus = status.gpus or len(run.device_ids)
        bound_j = measured_energy_bound_j(gpu.device.gpu.tdp_w, gpus, duration_s)
        log.warning("job_energy_implausible", job_id=run.job_id,
                    reported_energy_j=status.energy_j, energy_method=status.energy_method,
                    duration_s=duration_s, max_energy_j=bound_j, energy_j=columns["energy_j"],
                    reason="not finite, or more than its GPUs could draw: set aside for the "
                    "estimate")  # fmt: skip
    elif columns.get("energy_method") == ESTIMATED:
        if not (dropped(__name__, logging.INFO) if quiet is None else quiet):
            log.info("job_energy_estimated", job_id=run.job_id, energy_j=columns["energy_j"],
                     reason="no GPU meter followed it and its executor reported none")  # fmt: skip
    elif columns.get("total_g") is None:
        log.warning("job_carbon_unknown", job_id=run.job_id,
                    energy_method=columns.get("energy_method"),
                    intensity=columns.get("realised_intensity_g_per_kwh"))  # fmt: skip
    return _as_turned_out(ledger, columns, recorded, by_device, forecasts, run, started, status,
                          own=from_samples, own_read=True,
                          planned=decision.planned_start, sites=sites)  # fmt: skip


def _no_grams(
    run: RunRecord, decision: DecisionRecord, columns: Mapping[str, Any]
) -> dict[str, Any]:
    """For a run whose GPU is no longer configured (the daemon restarted without its region,
    e.g. a Slurm one it still follows to the end): no zone or PUE is known, so no grams are
    recorded; ``details_json`` says why (``no_grams``, shown by ``carbond status``), and
    ``job_carbon_unknown`` is logged with the reason."""
    device = run.device_ids[0] if run.device_ids else "?"
    why = (f"region {decision.region} (device {device}) is no longer configured: its zone "
           "and PUE are not known")  # fmt: skip
    log.warning("job_carbon_unknown", job_id=run.job_id, region=decision.region,
                energy_method=columns.get("energy_method"), reason=why)  # fmt: skip
    try:
        details = json.loads(str(columns.get("details_json") or "{}"))
    except ValueError:
        details = {}
    return {"details_json": json.dumps({**details, "no_grams": why})}


def _as_turned_out(
    ledger: Ledger,
    columns: dict[str, Any],
    recorded: Recorded | None,
    by_device: Mapping[str, InventoryGpu] | None,
    forecasts: Mapping[str, ZoneIntensity],
    run: RunRecord,
    started: datetime,
    status: ExitStatus,
    *,
    own: RealisedIntensity | None = None,
    own_read: bool = False,
    planned: datetime | None = None,
    sites: CopySites | None = None,
) -> dict[str, Any]:
    """:func:`like_the_run`, at the intensity realised over the counterfactual's own window
    (its duration scaled as the run's) where its zone is known and has samples: the samples'
    mean there; in the run's own zone, times the run's realised intensity over the samples'
    mean over the run (1 where the run's came from the samples: a meter tracks the held
    series, which may read the same grid otherwise, and the counterfactual is read the way
    the run was; ``own``: that samples' mean, where ``own_read`` says the caller read it
    already). A counterfactual that is the run itself (:func:`is_the_run`, at the start the
    run really had or the one its start decision ``planned``: a live round's launches are
    stamped by the wall clock a moment after the round's time, run-now's copy at that time;
    on its devices or as many sibling GPUs of its type in its region) costs the run's grams
    exactly: it saved nothing, not the rounding of a rescaled figure nor the intensity of the
    launch's lag. At a region with a site (``sites``) the realised intensity is that of a
    facility kWh there, the grid's blended with the site's PV and battery shares over the
    window, or, where the site's rounds did not see the window whole, the one it was priced at
    (:mod:`daemon.accounting.run_now_site`)."""
    if recorded is None or columns.get("run_now_total_g") is None:
        return columns
    total = columns.get("total_g")
    predicted_s = columns.get("predicted_duration_s")
    starts = (started,) if planned is None or planned == started else (started, planned)
    where = columns.get("region"), columns.get("gpu")
    if total is not None and any(
        is_the_kept_run(recorded, run.device_ids, start, predicted_s, where)
        if isinstance(recorded, Alternative)
        else is_the_run(recorded, run.device_ids, start, predicted_s, where)
        for start in starts
    ):
        columns["run_now_total_g"] = total
        return columns
    if isinstance(recorded, Alternative):  # as the ledger would read it back
        recorded = alternative_json(recorded)
    zone = run_now_zone(recorded, by_device)
    try:
        start = datetime.fromisoformat(str(recorded["start"]))
        duration_s = float(recorded["duration_s"])
    except (KeyError, TypeError, ValueError):
        return like_the_run(columns, recorded)
    if zone is None:
        return like_the_run(columns, recorded)
    scale = ratio(columns.get("duration_s"), columns.get("predicted_duration_s"))
    window_s = duration_s * (scale or 1.0)
    region = recorded.get("region")
    site = (
        sites.copy_site(region, start, start + timedelta(seconds=window_s))
        if sites is not None and isinstance(region, str) and 0 < window_s < math.inf
        else None
    )
    if site is not None and site.shares is None:  # what its site covered is not known
        return like_the_run(columns, recorded)
    samples = ledger.intensity_samples
    intensity = run_now_intensity_g_per_kwh(
        samples, zone, start, window_s, status.finished_at, forecasts.get(zone),
    )  # fmt: skip
    if intensity is not None and columns.get("zone") == zone:
        if not own_read:  # a metered run: its samples were not read for its own grams
            own = realised_from_samples(zone, samples(zone, started, status.finished_at),
                                        started, status.finished_at)  # fmt: skip
        bias = ratio(columns.get("realised_intensity_g_per_kwh"),
                      None if own is None else own.intensity_g_per_kwh)  # fmt: skip
        intensity *= bias or 1.0
    if intensity is not None and site is not None:
        intensity = site_blended_g_per_kwh(intensity, site)
    return like_the_run(columns, recorded, intensity)


def is_the_run(
    recorded: Mapping[str, Any],
    device_ids: Sequence[str],
    started: datetime,
    predicted_duration_s: Any,
    where: tuple[object, object] = (None, None),
) -> bool:
    """Whether the ``recorded`` counterfactual is the run itself: the start it really had
    (``started``), the duration predicted for it (to a relative 1e-9: the same estimate), and
    the same devices (``device_ids``) or, with ``where`` (the run's region and GPU type), as
    many GPUs of that type in that region (a sibling GPU: the same place, time and work, so
    the same grams but for the rounding of figures priced apart). False where a figure is
    missing or malformed."""
    try:
        start = datetime.fromisoformat(str(recorded["start"]))
        duration_s = float(recorded["duration_s"])
    except (KeyError, TypeError, ValueError):
        return False
    place = recorded.get("region"), recorded.get("gpu")
    return _same_run(start, recorded.get("device_ids") or (), duration_s, place,
                     started, device_ids, predicted_duration_s, where)  # fmt: skip


def is_the_kept_run(
    recorded: Alternative,
    device_ids: Sequence[str],
    started: datetime,
    predicted_duration_s: Any,
    where: tuple[object, object] = (None, None),
) -> bool:
    """:func:`is_the_run` of ``alternative_json(recorded)``, not formatted and parsed back
    (``recorded``: from :meth:`daemon.ledger.Ledger.counterfactual_run`, whose start is naive
    or in UTC and whose figures are plain floats)."""
    return _same_run(recorded.start, recorded.device_ids, recorded.duration_s,
                     (recorded.region, recorded.gpu), started, device_ids, predicted_duration_s,
                     where)  # fmt: skip


def _same_run(
    start: datetime,
    device_ids: Sequence[str],
    duration_s: float,
    place: tuple[object, object],
    started: datetime,
    run_device_ids: Sequence[str],
    predicted_duration_s: Any,
    where: tuple[object, object],
) -> bool:
    """Whether a counterfactual from ``start`` on ``device_ids`` (in ``place``: region, GPU
    type) for ``duration_s`` is the run that started at ``started`` on ``run_device_ids`` (in
    ``where``) with ``predicted_duration_s`` (to a relative 1e-9: the same estimate)."""
    devices = list(device_ids)
    return (
        start == started
        and isinstance(predicted_duration_s, int | float)
        and math.isclose(duration_s, predicted_duration_s, rel_tol=1e-9)
        and (
            devices == list(run_device_ids)
            or (
                all(isinstance(x, str) for x in where)
                and place == where
                and len(devices) == len(run_device_ids) > 0
            )
        )
    )


def like_the_run(
    columns: dict[str, Any],
    recorded: Mapping[str, Any] | None,
    intensity_g_per_kwh: float | None = None,
) -> dict[str, Any]:
    """``columns`` with ``run_now_total_g`` the ``recorded`` counterfactual as the run turned
    out: its operational grams scaled by the run's energy over the energy predicted for it,
    its embodied grams by the run's duration over the duration predicted (the job's own
    estimate error, which would read as a saving or a loss, is taken out: the saving is
    place and time), and its operational grams by ``intensity_g_per_kwh`` (realised over its
    window: None, the forecast it was priced at) over the intensity it was priced at.
    Unscaled where a figure is missing."""
    if recorded is None or columns.get("run_now_total_g") is None:
        return columns
    energy = ratio(columns.get("energy_j"), columns.get("predicted_energy_j"))
    duration = ratio(columns.get("duration_s"), columns.get("predicted_duration_s"))
    operational, embodied = recorded.get("operational_g"), recorded.get("embodied_g")
    if (
        energy is not None
        and duration is not None
        and isinstance(operational, int | float)
        and isinstance(embodied, int | float)
    ):
        operational *= energy * (ratio(intensity_g_per_kwh, recorded.get("intensity_g_per_kwh"))
                                 or 1.0)  # fmt: skip
        columns["run_now_total_g"] = operational + embodied * duration
    return columns


def _realised_from_forecast(
    series: ZoneIntensity | None, start: datetime, end: datetime
) -> RealisedIntensity | None:
    """The held forecast's mean over the run (no sample recorded: e.g. the refresh failed)."""
    if series is None:
        return None
    try:
        return realised_intensity(
            series, start, max(start, end), rung=str(getattr(series, "rung", "forecast")),
            signal_time=start,
        )  # fmt: skip
    except PoliciesError:
        return None
