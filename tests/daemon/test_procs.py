"""Who runs a process, read from /proc."""

from __future__ import annotations

import os
import subprocess
import sys

from daemon.procs import process_uids


def test_this_process_and_a_gone_one() -> None:
    assert process_uids(os.getpid()) == (os.getuid(), os.geteuid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert process_uids(child.pid) is None  # reaped: no /proc entry
