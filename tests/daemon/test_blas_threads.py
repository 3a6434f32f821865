"""``daemon`` runs NumPy's and SciPy's OpenBLAS on one thread unless the operator says more
(each further thread spins ~0.1 s of CPU at every ``carbond`` command's start)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# What a `carbond` command loads, then the threads of the process and the setting it ran with.
PROBE = (
    "import os, daemon.cli, numpy, scipy.optimize; "
    "print(os.environ['OPENBLAS_NUM_THREADS'], len(os.listdir('/proc/self/task')))"
)


def _probe(threads: str | None) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if threads is not None:
        env["OPENBLAS_NUM_THREADS"] = threads
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
def test_blas_runs_on_one_thread_unless_the_operator_sets_more() -> None:
    assert _probe(None) == ("1", 1)  # the interpreter's own thread only
    setting, threads = _probe("2")
    assert setting == "2"  # the operator's setting stands
    if min(os.cpu_count() or 1, len(os.sched_getaffinity(0))) > 1:  # OpenBLAS caps at the cores
        assert threads > 1
