"""The audit statement's "Data sources": the intensity samples that priced its jobs.

A job is priced from its grid zone's samples over its run (:func:`daemon.accounting.realised.
realised_from_samples`): the sample in force when it started (else the first one before it
ended) and those taken while it ran. A job that started in the previous month was priced partly
from samples taken before the period, so the samples taken within the period are not the ones
to list (until 2026-12-08 they were): these are found from the jobs' run intervals.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from datetime import datetime

from daemon.ledger.accounting import Accounting
from daemon.reports.lines import UNKNOWN_ZONE, JobLine
from daemon.reports.render import counted, fixed

__all__ = ["md_table", "priced_sources", "sources_section"]

HEADINGS = ["grid zone", "intensity source", "samples", "first", "last", "mean gCO2e/kWh"]


def _used(times: Sequence[datetime], start: datetime, end: datetime) -> range:
    """Indices into ``times`` (a zone's sample times, oldest first) of the samples that priced
    a run over ``[start, end]``, as ``realised_from_samples`` reads them: the one in force at
    ``start`` (the first one at or before ``end`` when none was), then those strictly inside."""
    inside = bisect_right(times, start)  # the first sample after start
    first = inside - 1 if inside > 0 else 0
    if first >= len(times) or times[first] > end:
        return range(0)
    return range(first, max(first + 1, bisect_left(times, end)))


def priced_sources(
    ledger: Accounting, lines: Sequence[JobLine]
) -> tuple[list[list[object]], int, int]:
    """Per (zone, source), the samples that priced ``lines`` (each sample once): ``[zone,
    source, samples, first, last, mean g/kWh]`` by zone then source; with the number of jobs
    no sample priced (their factor is the one stored with the outcome: a forecast's, or the
    static rung's) and of jobs whose zone the ledger did not record (ledger schema 1)."""
    runs: dict[str, list[tuple[datetime, datetime]]] = {}
    untraced = 0
    for line in lines:
        if line.started_at is None or line.finished_at is None:
            continue  # it never ran: no grams from the grid
        if line.zone == UNKNOWN_ZONE:
            untraced += 1
        else:
            runs.setdefault(line.zone, []).append((line.started_at, line.finished_at))
    rows: list[list[object]] = []
    unpriced = 0
    for zone in sorted(runs):
        start = min(s for s, _ in runs[zone])
        samples = ledger.intensity_samples(zone, start, max(e for _, e in runs[zone]))
        times = [at for at, _, _ in samples]
        used: set[int] = set()
        for s, e in runs[zone]:
            picked = _used(times, s, e)
            unpriced += not picked
            used.update(picked)
        by_source: dict[str, list[tuple[datetime, float]]] = {}
        for i in sorted(used):
            at, value, source = samples[i]
            by_source.setdefault(source, []).append((at, value))
        for source, taken in sorted(by_source.items()):
            mean = sum(v for _, v in taken) / len(taken)
            rows.append([zone, source, len(taken), taken[0][0].isoformat(),
                         taken[-1][0].isoformat(), fixed(mean)])  # fmt: skip
    return rows, unpriced, untraced


def sources_section(ledger: Accounting, lines: Sequence[JobLine]) -> list[str]:
    """The samples that priced ``lines`` (:func:`priced_sources`) with what the table covers,
    or, when there are none, one line saying why (an empty table said nothing)."""
    rows, unpriced, untraced = priced_sources(ledger, lines)
    priced_none = untraced_note = ""
    if unpriced:
        rungs = "+".join(sorted({line.intensity_source for line in lines}))
        priced_none = (f"{counted(unpriced, 'job was', 'jobs were')} priced by no sample (none "
                       "was recorded in its zone by the time it ended): the emission factor "
                       f"stored with its outcome stands (signal rung: {rungs}).")  # fmt: skip
    if untraced:
        untraced_note = (f"{counted(untraced, 'job has', 'jobs have')} no grid zone recorded "
                         f"({UNKNOWN_ZONE}, ledger schema 1): its samples cannot be "
                         "traced.")  # fmt: skip
    if rows:
        return [
            "The intensity samples that priced the period's jobs, per grid zone and source: "
            "for each job, the sample in force when it started and those taken while it ran "
            "(so samples from before the period for a job that started before it); samples "
            "that priced no job are not listed.",
            "",
            *_tail(priced_none, untraced_note),
            *md_table(HEADINGS, rows),
        ]
    recorded = ledger.intensity_sources()
    if not lines:
        why = "no job finished in the period, so no sample priced one."
    elif not recorded:
        rungs = "+".join(sorted({line.intensity_source for line in lines}))
        why = ("the ledger holds no intensity sample at all (the daemon records one per zone "
               "at each intensity refresh); the emission factors above are those stored with "
               f"each job's outcome (signal rung: {rungs}).")  # fmt: skip
    else:
        first = min(str(r["first_at"]) for r in recorded)
        last = max(str(r["last_at"]) for r in recorded)
        why = (f"none priced the period's jobs (the ledger's samples run from {first} to "
               f"{last}); the emission factors above are those stored with each job's "
               "outcome.")  # fmt: skip
    return [f"No intensity samples: {why}", "", *_tail(untraced_note)]


def _tail(*notes: str) -> list[str]:
    """The non-empty ``notes``, then an empty line (nothing when all are empty)."""
    shown = [note for note in notes if note]
    return [*shown, ""] if shown else []


def md_table(headings: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A Markdown table of ``rows`` under ``headings``, then an empty line."""
    out = ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return [*out, ""]
