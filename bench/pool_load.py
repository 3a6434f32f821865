"""Where a replay's jobs ran and how busy each region's GPUs were, from its ``jobs.csv``.

``python -m bench.pool_load OUT/slack_4h/jobs.csv --cluster examples/cluster-paper.toml``
reads the per-job file that ``carbond replay --out OUT`` writes for each slack and prints, per
policy and region: the jobs that ran there, by trace (the job id's prefix, ``code`` or
``conv`` for the Azure traces) with their median wait and median run time, the grams, the grams per
kWh of GPU energy, and the share of the region's GPU-hours that runs held over ``--days``
(default 7; runs that drain after the span can take it past 100 %). One GPU per run, as the
replay's llama-3b jobs use; docs/policies.md ("Under estimate error") uses it to show why
more slack can cost grams on a cluster whose clean GPUs are full.
"""

from __future__ import annotations

import argparse
import csv
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from daemon.replay.cluster import load_cluster

__all__ = ["RegionLoad", "main", "region_loads"]

J_PER_KWH = 3_600_000


@dataclass(frozen=True, slots=True)
class RegionLoad:
    """One policy's jobs in one region."""

    policy: str
    region: str
    jobs: int
    jobs_by_trace: Mapping[str, int]
    median_wait_s_by_trace: Mapping[str, float]
    median_run_s_by_trace: Mapping[str, float]
    total_g: float
    energy_kwh: float
    busy_share: float  # GPU-hours of runs / (the region's GPUs x the span)

    @property
    def g_per_kwh(self) -> float:
        """Grams (operational + embodied) per kWh of GPU energy; 0 with no energy."""
        return self.total_g / self.energy_kwh if self.energy_kwh else 0.0


def region_loads(
    rows: Iterable[Mapping[str, str]], gpus: Mapping[str, int], span_s: float
) -> list[RegionLoad]:
    """Per policy and region of ``gpus`` (region -> GPU count, in that order), the load of
    ``rows`` (``jobs.csv`` rows); regions no job ran in are listed with zeros."""
    by: dict[tuple[str, str], list[Mapping[str, str]]] = defaultdict(list)
    policies: list[str] = []
    for row in rows:
        if row["policy"] not in policies:
            policies.append(row["policy"])
        by[(row["policy"], row["region"])].append(row)
    out = []
    for policy in policies:
        for region, count in gpus.items():
            here = by.get((policy, region), [])
            waits: dict[str, list[float]] = defaultdict(list)
            runs: dict[str, list[float]] = defaultdict(list)
            for row in here:
                trace = row["job_id"].split("-", 1)[0]
                waits[trace].append(float(row["wait_s"]))
                runs[trace].append(_run_s(row))
            held_s = sum(sum(r) for r in runs.values())
            out.append(
                RegionLoad(
                    policy, region, len(here),
                    {trace: len(w) for trace, w in sorted(waits.items())},
                    {trace: statistics.median(w) for trace, w in sorted(waits.items())},
                    {trace: statistics.median(r) for trace, r in sorted(runs.items())},
                    sum(float(r["total_g"]) for r in here),
                    sum(float(r["energy_j"]) for r in here) / J_PER_KWH,
                    held_s / (count * span_s) if count and span_s > 0 else 0.0,
                )
            )  # fmt: skip
    return out


def _run_s(row: Mapping[str, str]) -> float:
    started = datetime.fromisoformat(row["started_at"])
    return (datetime.fromisoformat(row["ended_at"]) - started).total_seconds()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pool_load", description=__doc__)
    parser.add_argument("jobs_csv", type=Path, help="a jobs.csv written by carbond replay --out")
    parser.add_argument("--cluster", type=Path, required=True, help="the replay's cluster file")
    parser.add_argument("--days", type=float, default=7.0, help="the replayed span (default 7)")
    args = parser.parse_args(argv)
    cluster = load_cluster(args.cluster)
    gpus = {region.name: region.gpu_count for region in cluster.regions}
    with args.jobs_csv.open(newline="") as handle:
        loads = region_loads(csv.DictReader(handle), gpus, args.days * 86_400.0)
    for load in loads:
        traces = ", ".join(
            f"{n} {trace} (median wait {load.median_wait_s_by_trace[trace] / 60:.0f} min, "
            f"run {load.median_run_s_by_trace[trace] / 60:.0f} min)"
            for trace, n in load.jobs_by_trace.items()
        )
        print(
            f"{load.policy:14} {load.region:12} {load.jobs:5} jobs: {traces or '-'}; "
            f"{load.total_g:,.0f} g, {load.g_per_kwh:.0f} g/kWh, GPUs busy {load.busy_share:.0%}"
        )


if __name__ == "__main__":
    main()
