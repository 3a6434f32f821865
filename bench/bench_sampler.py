"""Sampler overhead: 8 simulated GPUs sampled at 10 Hz against the same process without sampling.

Two child processes run side by side for the same wall time (default 10 minutes; ``--minutes``
or ``$CARBOND_BENCH_MINUTES``): both build the simulated backend with 8 A100-80GB, an energy meter
and one running job per GPU; only the ``on`` arm starts the sampler thread (100 ms period, meter
curves fed). Each child reports its CPU time (user + system, from ``getrusage``) and memory
(peak and current RSS); the parent prints both arms and the on/off ratios.

    python -m bench.bench_sampler --minutes 10
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_GPUS = 8
_PERIOD_S = 0.1


def _rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child(arm: str, seconds: float) -> dict[str, Any]:
    from daemon.gpu import EnergyMeter, Sampler, SimulatedGpuBackend
    from daemon.gpu.factory import simulated_spec
    from policies.footprint import DEFAULT_GPU_CATALOG

    spec = simulated_spec(DEFAULT_GPU_CATALOG.get("A100-80GB"))
    backend = SimulatedGpuBackend([spec] * _GPUS)
    backend.start()
    sampler = Sampler(backend, period_s=_PERIOD_S)
    meter = EnergyMeter(backend, sampler)
    sampler.add_listener(meter.observe)
    for index in range(_GPUS):
        meter.begin(f"job-{index}", [index])
        backend.set_utilisation(index, 0.7)
    cpu_setup_s, rss_setup_mib = _cpu_s(), _rss_mib()
    if arm == "on":
        sampler.start()
    time.sleep(seconds)
    sampler.close()
    cpu_end_s = _cpu_s()
    energy_j = sum(meter.end(f"job-{i}").energy_j for i in range(_GPUS))
    return {
        "arm": arm,
        "wall_s": seconds,
        "rounds": sampler.rounds,
        "cpu_total_s": cpu_end_s,
        "cpu_run_s": cpu_end_s - cpu_setup_s,
        "rss_setup_mib": rss_setup_mib,
        "rss_end_mib": _rss_mib(),
        "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "energy_j": energy_j,
    }


def _run_arms(minutes: float) -> dict[str, dict[str, Any]]:
    seconds = minutes * 60
    procs = {
        arm: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.bench_sampler",
                "--child",
                arm,
                "--minutes",
                str(minutes),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for arm in ("on", "off")
    }
    results = {}
    for arm, proc in procs.items():
        out, _ = proc.communicate(timeout=seconds + 120)
        if proc.returncode != 0:
            raise SystemExit(f"bench_sampler: arm {arm} exited {proc.returncode}")
        results[arm] = json.loads(out.strip().splitlines()[-1])
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_sampler", description=__doc__.split("\n")[0])
    default = float(os.environ.get("CARBOND_BENCH_MINUTES", "10"))
    parser.add_argument("--minutes", type=float, default=default, help="wall time per arm")
    parser.add_argument("--child", choices=("on", "off"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv if argv is not None else [])
    if args.child:
        print(json.dumps(_child(args.child, args.minutes * 60)), flush=True)
        return
    on, off = (r := _run_arms(args.minutes))["on"], r["off"]
    print(f"{_GPUS} simulated GPUs, {1 / _PERIOD_S:.0f} Hz, {args.minutes:g} min wall per arm")
    print(
        f"{'arm':<4} {'rounds':>7} {'cpu_total_s':>12} {'cpu_run_s':>10} {'rss_end_mib':>12} "
        f"{'maxrss_mib':>11}"
    )
    for row in (on, off):
        cpu = f"{row['cpu_total_s']:>12.2f} {row['cpu_run_s']:>10.2f}"
        rss = f"{row['rss_end_mib']:>12.1f} {row['maxrss_mib']:>11.1f}"
        print(f"{row['arm']:<4} {row['rounds']:>7} {cpu} {rss}")
    wall_s = args.minutes * 60
    print(
        f"cpu_ratio_on_off={on['cpu_total_s'] / off['cpu_total_s']:.2f} "
        f"rss_ratio_on_off={on['rss_end_mib'] / off['rss_end_mib']:.3f} "
        f"sampler_cpu_pct_of_one_core={100 * (on['cpu_run_s'] - off['cpu_run_s']) / wall_s:.2f} "
        f"rss_growth_on_mib={on['rss_end_mib'] - on['rss_setup_mib']:.1f} "
        f"achieved_hz={on['rounds'] / wall_s:.2f}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
