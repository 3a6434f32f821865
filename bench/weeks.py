"""Week-long policy tables against the LP bound (issue 15): ``make weeks``.

Replays the Azure 2023 LLM traces (conversation + code, 2,048 requests per job) through every
policy for a whole week on four cluster shapes, at slack 0, 4 h and 12 h, each with
``carbond replay --bound --json``, and prints Markdown tables: every policy's grams and gap to
the LP bound, jobs run / rejected / missed, the spatial and temporal parts of its saving, and
the temporal-only potential of the same grids. Data is read in place from ``../shared/data``
(or ``$CARBOND_SHARED_DATA``); without it the command says so and does nothing.

``python -m bench.weeks`` runs everything (2 replays at a time, one ``carbond replay`` process
per cluster and slack, each replaying its policies one after another: ``--workers 1``; results
in ``out/weeks/<cluster>_<slack>.json`` with the command and the CPU time beside them);
``--cluster june --slack 4h --days 1`` narrows it; ``--render`` only prints the tables from the
JSON already there.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import REPO_ROOT, shared_data_dir
from daemon.reports.render import unsigned_zero

POLICIES = (
    "run-now", "lowest-energy", "spatial", "wait-awhile", "carbon-window", "carbon-lookahead",
    "oracle",
)  # fmt: skip
SLACKS = ("0", "4h", "12h")
TRACES = (
    "llm_traces/azure_2023/AzureLLMInferenceTrace_conv.csv",
    "llm_traces/azure_2023/AzureLLMInferenceTrace_code.csv",
)
_HPE = "carbon_intensity/electricitymaps_hpe_sustain-cluster"


@dataclass(frozen=True, slots=True)
class Cluster:
    """One cluster shape and the week it is replayed over."""

    name: str
    title: str
    config: str
    intensity: tuple[str, ...]
    start: str


CLUSTERS = (
    Cluster("june", "paper cluster (Quebec 4 x T4, California and PACE 2 x RTX 6000 Ada), "
            "5-11 June 2023", "examples/cluster-paper.toml",
            ("carbon_intensity/electricitymaps_srmadani/CA-QC_2023_hourly.csv",
             f"{_HPE}/US-CAL-CISO_2023_hourly.csv",
             "carbon_intensity/electricitymaps_jasonm-jones/US-NW-PACE_2023_hourly.csv"),
            "2023-06-05"),
    Cluster("europe", "Frankfurt (A100, H100, 2 x L4) and London (2 x L4), 9-15 October 2023",
            "examples/cluster-europe.toml",
            (f"{_HPE}/DE-LU_2023_hourly.csv", f"{_HPE}/GB_2023_hourly.csv"), "2023-10-09"),
    Cluster("us3", "ERCOT 2 x A100-80GB, PJM 2 x H100-SXM, CAISO 2 x L4, 13-19 March 2023",
            "examples/cluster-us3.toml",
            (f"{_HPE}/US-TEX-ERCO_2023_hourly.csv", f"{_HPE}/US-MIDA-PJM_2023_hourly.csv",
             f"{_HPE}/US-CAL-CISO_2023_hourly.csv"), "2023-03-13"),
    Cluster("germany", "one German site (2 x A100, 2 x H100, 4 x L4), 10-16 April 2023",
            "examples/cluster-germany.toml", (f"{_HPE}/DE-LU_2023_hourly.csv",), "2023-04-10"),
)  # fmt: skip


def command(
    cluster: Cluster, slack: str, days: float, policies: Sequence[str], bound: bool = True
) -> list[str]:
    """The ``carbond replay`` argv for one cluster and slack."""
    data = shared_data_dir()
    argv = [sys.executable, "-m", "daemon", "replay", "--jobs-format", "azure"]
    for trace in TRACES:
        argv += ["--jobs", str(data / trace)]
    for series in cluster.intensity:
        argv += ["--intensity", str(data / series)]
    return [
        *argv, "--cluster", str(REPO_ROOT / cluster.config), "--requests-per-job", "2048",
        "--start", cluster.start, "--days", f"{days:g}", "--slack", slack,
        "--policy", ",".join(policies), "--json", *(["--bound"] if bound else []),
        "--workers", "1",  # this script runs `--workers` replays at a time itself
    ]  # fmt: skip


def _run(argv: list[str], out: Path) -> str:
    """Run one replay, write its rows with the command and the CPU time it took."""
    started = time.monotonic()
    with out.with_suffix(".log").open("w") as log:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, text=True, cwd=REPO_ROOT)
        assert proc.stdout is not None
        stdout = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)  # the child's own CPU time
    code = os.waitstatus_to_exitcode(status)
    wall_s = time.monotonic() - started
    if code != 0:
        return f"FAILED ({code}) after {wall_s:.0f} s: see {out.with_suffix('.log')}"
    payload = {
        "command": ["python", *argv[1:]],
        "wall_s": wall_s,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rows": json.loads(stdout),
    }
    out.write_text(json.dumps(payload, indent=1))
    return f"done in {wall_s:.0f} s wall, {payload['cpu_s']:.0f} s CPU"


def run_all(clusters: Sequence[Cluster], slacks: Sequence[str], days: float,
            policies: Sequence[str], out_dir: Path, workers: int, bound: bool = True,
            tag: str = "") -> None:  # fmt: skip
    """Every (cluster, slack) replay, ``workers`` at a time, printing each as it ends."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = [(c, s) for c in clusters for s in slacks]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)

    def one(task: tuple[Cluster, str]) -> None:
        cluster, slack = task
        path = out_dir / f"{cluster.name}_{slack}{tag}.json"
        result = _run(command(cluster, slack, days, policies, bound), path)
        print(f"{cluster.name} slack {slack}: {result}", flush=True)

    print(f"{len(tasks)} replays of {days:g} days, {workers} at a time -> {out_dir}", flush=True)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, tasks))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    print(f"all replays: {cpu:.0f} s of CPU", flush=True)


def _g(value: Any) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _pct(value: Any, sign: bool = False) -> str:
    if value is None:
        return "—"
    text = f"{value:+.1%}" if sign else f"{value:.1%}"
    return unsigned_zero(text) if not sign else text  # no "-0.0%": a float-noise share


def _rows(out_dir: Path, cluster: str, slack: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Every row of ``<cluster>_<slack>*.json`` (runs may be split over several files: the
    first file naming a policy with its parameters wins) and a note per file."""
    rows: dict[str, dict[str, Any]] = {}
    notes = []
    for path in sorted(out_dir.glob(f"{cluster}_{slack}.json")) + sorted(
        out_dir.glob(f"{cluster}_{slack}-*.json")
    ):
        payload = json.loads(path.read_text())
        for row in payload["rows"]:
            rows.setdefault(f"{row['policy']} {sorted((row.get('params') or {}).items())}", row)
        cost = f"{payload['cpu_s']:.0f} s CPU, {payload['wall_s']:.0f} s wall"
        notes.append(f"{path.name}: {cost}")
    return list(rows.values()), notes


def render(clusters: Sequence[Cluster], slacks: Sequence[str], out_dir: Path) -> str:
    """Markdown tables (one per cluster) from the JSON in ``out_dir``. A policy's gap to the
    bound is its grams over the bound's, minus 1, when it ran every job the bound covers."""
    lines: list[str] = []
    for cluster in clusters:
        runs = [(s, *_rows(out_dir, cluster.name, s)) for s in slacks]
        runs = [run for run in runs if run[1]]
        if not runs:
            continue
        lines += [f"**{cluster.name}**: {cluster.title}.", ""]
        lines.append("| slack | policy | total g | run / rejected / missed | vs run-now "
                     "| spatial | temporal | gap to LP bound |")  # fmt: skip
        lines.append("|---|---|---:|---|---:|---:|---:|---:|")
        notes = []
        for slack, rows, files in runs:
            policy_rows = [r for r in rows if r["policy"] != "lp-bound"]
            bound = next((r for r in rows if r["policy"] == "lp-bound"), None)
            gaps = {}
            for r in policy_rows:
                complete = bound is not None and r["jobs"] == bound["jobs"] and not r["rejected"]
                gaps[id(r)] = r["total_g"] / bound["total_g"] - 1 if complete and bound else None
            best = min(
                (r["total_g"] for r in policy_rows
                 if r["policy"] != "oracle" and not r["deadline_misses"] and not r["rejected"]),
                default=None,
            )  # fmt: skip
            for r in policy_rows:
                params = ", ".join(f"{k}={v}" for k, v in (r.get("params") or {}).items())
                name = f"`{r['policy']}`" + (f" ({params})" if params else "")
                total = _g(r["total_g"])
                if best is not None and r["total_g"] == best:
                    name, total = f"**{name}**", f"**{total}**"
                lines.append(
                    f"| {slack} | {name} | {total} | {r['jobs']} / {r['rejected']} / "
                    f"{r['deadline_misses']} | {_pct(r.get('savings_vs_run_now'))} | "
                    f"{_pct(r.get('spatial_saving'))} | {_pct(r.get('temporal_saving'))} | "
                    f"{_pct(gaps[id(r)], sign=True)} |"
                )
            if bound is not None:
                lines.append(
                    f"| {slack} | LP bound | {_g(bound['total_g'])} | {bound['jobs']} | "
                    f"{_pct(bound.get('savings_vs_run_now'))} | — | "
                    f"{_pct(bound.get('temporal_only_potential'))} (temporal-only potential) | — |"
                )
                notes.append(f"slack {slack}: {bound.get('note', '')}")
            notes.append(f"slack {slack} replays: " + "; ".join(files))
        lines.append("")
        lines += [f"- {n}" for n in notes]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.weeks", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--cluster",
        default=",".join(c.name for c in CLUSTERS),
        help="comma list of " + ", ".join(c.name for c in CLUSTERS),
    )
    parser.add_argument("--slack", default=",".join(SLACKS), help="comma list (0,4h,12h)")
    parser.add_argument("--days", type=float, default=7.0, help="replayed span (default 7)")
    parser.add_argument("--policy", default=",".join(POLICIES), help="comma list")
    parser.add_argument("--workers", type=int, default=2, help="replays at a time (default 2)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "out" / "weeks")
    parser.add_argument("--render", action="store_true", help="only print the tables")
    parser.add_argument("--no-bound", action="store_true", help="replays without --bound")
    parser.add_argument(
        "--tag",
        default="",
        help="suffix of the JSON files (-TAG), so that policies run apart are rendered together",
    )
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    by_name = {c.name: c for c in CLUSTERS}
    unknown = sorted(set(args.cluster.split(",")) - set(by_name))
    if unknown:
        parser.error(f"--cluster: unknown {', '.join(unknown)} (known: {', '.join(by_name)})")
    clusters = [by_name[n] for n in args.cluster.split(",")]
    slacks = args.slack.split(",")
    if not args.render:
        if not shared_data_dir().is_dir():
            print(f"skipped: third-party data not found at {shared_data_dir()} "
                  "(set CARBOND_SHARED_DATA)", file=sys.stderr)  # fmt: skip
            return 0
        tag = f"-{args.tag}" if args.tag else ""
        run_all(clusters, slacks, args.days, args.policy.split(","), args.out, args.workers,
                not args.no_bound, tag)  # fmt: skip
    print(render(clusters, slacks, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
