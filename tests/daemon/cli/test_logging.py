"""CLI log events go to stderr so that ``--json`` output on stdout stays parseable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_json_stdout_is_pure_even_when_the_daemon_warns(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("carbond")
    proc = subprocess.run(
        [str(exe), "demo", "--json", "--policy", "no-such-policy", "--state-dir",
         str(tmp_path / "state")],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    json.loads(proc.stdout)  # nothing but the document
    assert "policy_fallback" in proc.stderr
