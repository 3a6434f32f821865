"""The monthly location-based emissions statement (``carbond report --audit``), in Markdown.

For an ESG report's or a carbon audit's appendix: per calendar month (UTC) of the period, the
method, the data sources with their dates, the emission factors used (energy-weighted realised
intensity per region), PUE and embodied assumptions, and how much of the energy was measured
versus estimated. Every figure is a sum over the same job lines as ``carbond report``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from daemon.catalog import gpu_catalog
from daemon.ledger.accounting import Accounting
from daemon.reports.audit_sources import md_table, sources_section
from daemon.reports.lines import UNKNOWN_ZONE, JobLine, in_order, shown
from daemon.reports.render import counted, fixed, share
from daemon.settings import Settings
from policies.errors import PoliciesError

__all__ = ["audit_statement", "month_of"]

J_PER_KWH: Final = 3_600_000
# The label of each table's last row, over the whole period (jobs, kWh and grams summed).
TOTAL: Final = "total"

METHOD: Final = """\
Location-based, following the GHG Protocol Scope 2 guidance's location-based method: each
job's electricity use times the {signal} average carbon intensity of the grid zone where
its GPUs ran, time-weighted over the hours it ran, times the site's PUE. Embodied emissions of
the GPUs are added as in the Green Software Foundation's SCI: each GPU's embodied carbon,
amortised linearly over its lifetime, for the time the job held it. No market-based instrument
(RECs, PPAs, offsets) is applied. Energy is the GPUs' own: measured by the GPU's cumulative
energy counter (`nvml-counter`), by integrating its sampled power (`nvml-power-integral`), by the
batch system's energy accounting (`slurm-sacct`), or, where nothing measured a job, estimated as
the power predicted at dispatch times the real run time (`estimated`). `simulated-*` marks
simulated GPUs (replay, demo)."""

_SIGNALS: Final = {
    "lifecycle": "lifecycle (LCA)",
    "direct": "direct (combustion only, no life-cycle upstream)",
}


def method_text(settings: Settings) -> str:
    """The statement's method, naming the intensity signal the daemon records: Electricity
    Maps' ``electricitymaps.emission_factor_type`` through the fallback chain; the static
    annual and embedded signals are lifecycle averages."""
    kind = (
        settings.electricitymaps.emission_factor_type
        if settings.intensity.source == "chain"
        else "lifecycle"
    )
    return METHOD.format(signal=_SIGNALS[kind])


def month_of(line: JobLine) -> str:
    """``YYYY-MM`` of the line's end (UTC)."""
    return (line.finished_at or line.submitted_at).astimezone(UTC).strftime("%Y-%m")


def _months(
    lines: Sequence[JobLine],
    since: datetime | None,
    until: datetime | None,
    now: datetime,
    recorded: datetime | None,
) -> list[str]:
    """Every calendar month of the period the ledger covers, in order, those in which no job
    finished too: from that of ``since`` or of the ledger's first record (``recorded``),
    whichever is later, to that of the period's last instant, or of ``now`` where that is ahead
    (a month to come has no emissions yet). None for a ledger with no record. Until 2026-12-07
    only the months with a job: a month of none read as one not reported; until 2026-12-08
    from ``since``'s month whatever the ledger held: ``--since 1970-01-01`` listed 670 months
    of zeros the ledger knew nothing of."""
    ended = {month_of(line) for line in lines}
    if recorded is None:
        return sorted(ended)
    first = max(since, recorded) if since is not None else recorded
    first = first.astimezone(UTC)
    year, month = first.year, first.month
    last = min(until or now, now).astimezone(UTC) - timedelta(microseconds=1)
    while (year, month) <= (last.year, last.month):
        ended.add(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return sorted(ended)


def _uncovered(since: datetime | None, recorded: datetime | None) -> list[str]:
    """The paragraph saying which months of the period the ledger does not cover (those before
    its first record, not listed), if any."""
    if recorded is None:
        return ["The ledger holds no record (no job, no intensity sample): no month is listed.", ""]
    if since is None or since.astimezone(UTC).strftime("%Y-%m") >= _month(recorded):
        return []
    at = recorded.astimezone(UTC).isoformat()
    return [f"Months before {_month(recorded)} are not listed: the ledger's first record (a "
            f"job's submission or an intensity sample) is at {at}, and it knows nothing "
            "before.", ""]  # fmt: skip


def _month(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m")


def _kwh(joules: float) -> str:
    return fixed(joules / J_PER_KWH, 6)


def _kg(grams: float) -> str:
    return fixed(grams / 1000, 6)


def _onsite_section(
    lines: Sequence[JobLine], months: Sequence[str], settings: Settings
) -> list[str]:
    """Energy from on-site PV and batteries by month and region (regions with a site only):
    behind the meter, it is not drawn from the grid; it is charged at its own life-cycle factor
    (docs/sites.md). Empty when no job used on-site energy."""
    sited = [line for line in lines if line.site_grid_j is not None]
    if not sited:
        return []
    factors = {r.name: r.site for r in settings.regions if r.site is not None}
    rows = []
    for month in months:
        for region in in_order(line.region for line in sited if month_of(line) == month):
            rl = [line for line in sited if month_of(line) == month and line.region == region]
            site = None if region is None else factors.get(region)
            rows.append(_onsite_row(month, shown(region), rl, "-" if site is None else
                                    f"{fixed(site.pv_g_per_kwh, 6)} / "
                                    f"{fixed(site.battery_g_per_kwh, 6)}"))  # fmt: skip
    rows.append(_onsite_row(TOTAL, "all", sited, "-"))
    return [
        "## On-site energy",
        "",
        "Jobs at regions with on-site PV or batteries: facility energy (GPU energy x PUE) by "
        "source. Only the grid part is charged at the grid's intensity; PV and battery energy "
        "at their life-cycle factors.",
        "",
        *md_table(["month", "region", "facility kWh", "PV kWh", "battery kWh", "grid kWh",
                 "on-site share", "PV / battery gCO2e/kWh"], rows),
    ]  # fmt: skip


def _onsite_row(label: str, region: str, lines: Sequence[JobLine], factors: str) -> list[object]:
    """A row of "On-site energy" over ``lines``: kWh summed, the on-site share of their sum."""
    pv = sum(line.site_pv_j or 0.0 for line in lines)
    battery = sum(line.site_battery_j or 0.0 for line in lines)
    facility = sum(line.facility_j for line in lines)
    return [label, region, _kwh(facility), _kwh(pv), _kwh(battery),
            _kwh(max(facility - pv - battery, 0.0)),
            share((pv + battery) / facility) if facility > 0 else "-", factors]  # fmt: skip


def _embodied_section(lines: Sequence[JobLine], settings: Settings) -> list[str]:
    """Per GPU type: the embodied grams recorded with its jobs (what they were charged, with
    the catalog and lifetime in force when each finished) beside the catalog as of now."""
    rows = []
    unrecorded = 0
    catalog = gpu_catalog(settings)  # with the site's `[catalog]` overrides, as the daemon charges
    for gpu in in_order(line.gpu for line in lines):
        gl = [line for line in lines if line.gpu == gpu]
        recorded = [line for line in gl if line.embodied_g is not None]
        unrecorded += len(gl) - len(recorded)
        hours = sum(line.gpu_hours for line in recorded)
        grams = sum(line.embodied_g or 0.0 for line in recorded)
        try:
            if gpu is None:
                kg, method = "-", "GPU not recorded"
            else:
                spec = catalog.get(gpu)
                kg, method = fixed(spec.embodied_kg, 6), spec.embodied_method
        except PoliciesError:
            kg, method = "-", "not in the catalog"
        rows.append([shown(gpu), kg, f"{settings.lifetime_years:g}", method,
                     fixed(sum(line.gpu_hours for line in gl)),
                     _kg(grams) if recorded else "-",
                     fixed(grams / hours) if recorded and hours > 0 else "-"])  # fmt: skip
    note = (
        (
            f" {counted(unrecorded, 'job has', 'jobs have')} no embodied grams recorded "
            '("-"): for them the catalog as of now is all there is.'
        )
        if unrecorded
        else ""
    )
    return [
        "The embodied carbon per GPU, lifetime and method are the catalog as of now (this "
        "statement's settings); the embodied kgCO2e and the grams per GPU-hour are those "
        "recorded with each job when it finished, as charged then (the totals above)." + note,
        "",
        *md_table(["GPU", "embodied kgCO2e per GPU (catalog as of now)", "lifetime years "
                 "(as of now)", "method", "GPU-hours", "embodied kgCO2e (recorded)",
                 "gCO2e per GPU-hour (recorded)"], rows),
    ]  # fmt: skip


def _emissions_row(label: str, lines: Sequence[JobLine]) -> list[object]:
    """``label``'s row of "Emissions by month" over ``lines``: every column a sum."""
    measured = sum(line.energy_j or 0.0 for line in lines if line.measured)
    estimated = sum(line.energy_j or 0.0 for line in lines if not line.measured)
    operational = sum(line.operational_g or 0.0 for line in lines)
    embodied = sum(line.embodied_g or 0.0 for line in lines)
    return [label, len(lines), _kwh(measured + estimated), _kwh(measured), _kwh(estimated),
            _kwh(sum(line.facility_j for line in lines)), _kg(operational), _kg(embodied),
            _kg(operational + embodied), sum(line.total_g is None for line in lines)]  # fmt: skip


def _factor_row(
    label: str, region: str, lines: Sequence[JobLine], *, pue_mean: bool = False
) -> list[object]:
    """A row of "Emission factors and PUE" over ``lines``: the realised intensity weighted by
    the energy drawn from the grid (that weight beside it); the PUEs in force, or with
    ``pue_mean`` their energy-weighted mean (facility over GPU energy)."""
    weighted = [(line.grid_j, line.intensity_g_per_kwh) for line in lines
                if line.intensity_g_per_kwh is not None]  # fmt: skip
    energy = sum(e for e, _ in weighted)
    factor = sum(e * (i or 0.0) for e, i in weighted) / energy if energy > 0 else None
    if pue_mean:
        gpu_j = sum(line.energy_j or 0.0 for line in lines)
        pue = fixed(sum(line.facility_j for line in lines) / gpu_j) if gpu_j > 0 else "-"
    else:
        pue = ", ".join(f"{p:g}" for p in sorted({line.pue for line in lines
                                                   if line.pue is not None})) or "-"  # fmt: skip
    return [label, region, ", ".join(sorted({line.zone for line in lines})),
            "-" if factor is None else fixed(factor), _kwh(energy), pue,
            "+".join(sorted({line.intensity_source for line in lines}))]  # fmt: skip


def audit_statement(
    ledger: Accounting,
    lines: Sequence[JobLine],
    settings: Settings,
    since: datetime | None,
    until: datetime | None,
    now: datetime,
) -> str:
    """The statement over ``lines`` (finished in ``[since, until)``) as Markdown."""
    recorded = ledger.first_record()
    months = _months(lines, since, until, now, recorded)
    period = f"{since.isoformat() if since else 'the first job'} to {(until or now).isoformat()}"
    out = [
        "# Location-based GPU emissions statement (carbond)",
        "",
        f"Period: {period} (UTC), by calendar month. Generated {now.isoformat(timespec='seconds')}"
        f" from the carbond ledger; {counted(len(lines), 'finished job')}, each counted in full "
        "in the month it finished.",
        "",
        *_uncovered(since, recorded),
        "## Method",
        "",
        method_text(settings),
        "",
        "## Emissions by month",
        "",
        "GPU energy is the GPUs' own, measured or estimated (before PUE); facility energy is "
        "GPU energy times the site's PUE, and the grams are charged on it: operational kgCO2e "
        "is each region's facility energy drawn from the grid times its emission factor (the "
        "table of emission factors gives both per month and region), plus on-site PV and "
        "battery energy at their own factors where a site has them.",
        "",
    ]
    rows = [_emissions_row(m, [line for line in lines if month_of(line) == m]) for m in months]
    out += md_table(
        ["month", "jobs", "GPU energy kWh", "GPU measured kWh", "GPU estimated kWh",
         "facility energy kWh (GPU x PUE)", "operational kgCO2e", "embodied kgCO2e",
         "total kgCO2e", "jobs without grams"],
        [*rows, _emissions_row(TOTAL, lines)] if months else [],
    )  # fmt: skip
    out += _onsite_section(lines, months, settings)
    out += ["## Emission factors and PUE", ""]
    factors = []
    for month in months:
        for region in in_order(line.region for line in lines if month_of(line) == month):
            rl = [line for line in lines if month_of(line) == month and line.region == region]
            factors.append(_factor_row(month, shown(region), rl))
    if factors:  # over the period: the factor weighted by energy, the PUE facility over GPU
        factors.append(_factor_row(TOTAL, "all", lines, pue_mean=True))
    out += md_table(
        ["month", "region", "grid zone", "emission factor gCO2e/kWh (energy-weighted)",
         "grid kWh (facility energy from the grid)", "PUE", "signal rung"],
        factors,
    )  # fmt: skip
    if any(line.zone == UNKNOWN_ZONE for line in lines):
        out += [f"Grid zone {UNKNOWN_ZONE}: jobs whose outcome was recorded before outcomes "
                "stored their zone (ledger schema 1).", ""]  # fmt: skip
    out += ["## Data sources", "", *sources_section(ledger, lines)]
    out += ["## Embodied carbon assumptions", "", *_embodied_section(lines, settings)]
    out += ["## Energy measured and estimated", ""]
    total = sum(line.energy_j or 0.0 for line in lines)
    split = []
    for method in sorted({line.energy_method for line in lines}):
        ml = [line for line in lines if line.energy_method == method]
        energy = sum(line.energy_j or 0.0 for line in ml)
        part = share(energy / total) if total > 0 else "-"
        split.append([method, len(ml), _kwh(energy), part])
    if split:
        split.append([TOTAL, len(lines), _kwh(total), share(1.0) if total > 0 else "-"])
    out += md_table(["energy method", "jobs", "GPU kWh", "share of energy"], split)
    return "\n".join(out)
