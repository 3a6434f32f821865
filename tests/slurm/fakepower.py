"""A fake node power meter: the files Slurm's ``acct_gather_energy/pm_counters`` plugin reads.

One process per node of the local cluster (``localcluster.py`` starts and stops it). Every
``TICK_S`` it reads the node's set point from ``<node_dir>/watts`` (a number, watts; rewrite the
file to change it at run time) and advances ``<node_dir>/pm_counters/energy`` by watts x elapsed
seconds, as Cray's counters do: ``energy`` holds accumulated joules (``"<int> J"``), ``power`` the
present watts (``"<int> W"``). Each slurmd sees that folder as ``/sys/cray/pm_counters`` in its
own mount namespace. Files are replaced by rename, so a reader never sees half a number.

Run as ``python3 -m tests.slurm.fakepower NODE_DIR``; stdlib only, so it needs no virtualenv.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

TICK_S = 0.1
INITIAL_ENERGY_J = 1_000.0  # pm_counters must read non-zero when slurmd starts


def read_watts(path: Path, previous_w: float) -> float:
    """The set point in ``path`` (watts); ``previous_w`` while the file is missing or mid-write."""
    try:
        return max(0.0, float(path.read_text().strip()))
    except (OSError, ValueError):
        return previous_w


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run(node_dir: Path) -> None:
    """Advance the node's counters until SIGTERM."""
    counters = node_dir / "pm_counters"
    counters.mkdir(parents=True, exist_ok=True)
    stop = False

    def _on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    energy_j = INITIAL_ENERGY_J
    watts = read_watts(node_dir / "watts", 0.0)
    last = time.monotonic()
    while not stop:
        now = time.monotonic()
        energy_j += watts * (now - last)
        last = now
        watts = read_watts(node_dir / "watts", watts)
        write_atomic(counters / "energy", f"{int(energy_j)} J\n")
        write_atomic(counters / "power", f"{round(watts)} W\n")
        time.sleep(TICK_S)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 -m tests.slurm.fakepower NODE_DIR")
    run(Path(sys.argv[1]))
