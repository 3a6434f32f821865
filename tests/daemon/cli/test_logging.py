"""CLI log events go to stderr so that ``--json`` output on stdout stays parseable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from daemon.ledger import Ledger


def test_json_stdout_is_pure_even_when_the_daemon_warns(tmp_path: Path) -> None:
    state = tmp_path / "state"
    Ledger.open(state / "ledger.db").close()
    config = tmp_path / "carbond.toml"  # the inventory warns: it discovers no GPU
    config.write_text(
        f'state_dir = "{state}"\n[gpu]\nbackend = "simulated"\nsimulated_gpus = []\n'
        '[[regions]]\nname = "a"\nzone = "CA-QC"\ngpus = "discover"\n'
    )
    exe = Path(sys.executable).with_name("carbond")
    proc = subprocess.run(
        [str(exe), "gpus", "--learned", "--json", "--config", str(config)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "factors" in json.loads(proc.stdout)  # nothing but the document
    assert "region_without_gpus" in proc.stderr


def test_a_misspelt_policy_is_refused_in_one_line(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("carbond")
    proc = subprocess.run(
        [str(exe), "demo", "--json", "--policy", "carbon-windw", "--state-dir",
         str(tmp_path / "state")],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["error"]["name"] == "carbon-windw"  # --json's error document
    assert proc.stderr.startswith("carbond: error: ")
    assert "unknown policy 'carbon-windw' (known: " in proc.stderr
    assert proc.stderr.count("\n") == 1  # one line, no traceback
