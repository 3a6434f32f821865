"""A job that ignores SIGTERM, and a short poll for what it leaves behind: shared by the
lost-GPU stop tests and ``prune-logs``' (a run still being stopped keeps its files)."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["STUBBORN", "wait_until"]

# argv[1]: a file the job touches once SIGTERM is ignored, so a test knows it runs
STUBBORN = (
    "import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "pathlib.Path(sys.argv[1]).touch(); time.sleep(60)"
)


def wait_until(done: Callable[[], object], what: str) -> None:
    """Poll ``done`` every 10 ms for up to 5 s; fail the test with ``what`` if it never holds."""
    for _ in range(500):
        if done():
            return
        time.sleep(0.01)
    raise AssertionError(what)
