"""The planner's warm-up: the configured policy's compiled loops compiled before the first plan."""

from __future__ import annotations

import subprocess
import sys

# The loops a carbon-window round enters (their callees compile with them); a fresh process
# (this one's tests may have compiled them already), numba's cache shared with the tests'.
_CHECK = """
from daemon.settings import Settings
from daemon.supervision.warmup import warm_planner
from policies import capacity, greedy, means, now_cells, round_alternatives, scoring
loops = {"greedy.assign_kernel": greedy.assign_kernel,
         "means._pool_means": means._pool_means,
         "scoring._cells": scoring._cells, "capacity._build": capacity._build,
         "now_cells._score": now_cells._score,
         "round_alternatives._first_ready": round_alternatives._first_ready}
warm_planner(Settings())
print(sorted(name for name, loop in loops.items() if not loop.signatures))
"""


def test_the_warmup_compiles_the_loops_of_a_plan_round() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CHECK], capture_output=True, text=True, check=True, timeout=300
    )
    assert done.stdout.strip() == "[]"
