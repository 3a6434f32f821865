"""The config the private-queue tests (``test_private_main_queue.py``, ``test_private_spool.py``,
doctor's ``test_spool_check.py``) run under: run-now, one simulated T4 in Quebec, ``[ledger]
private`` as the test asks."""

from __future__ import annotations

from pathlib import Path

CONFIG = """
state_dir = "{state}"
[policy]
name = "run-now"
[ledger]
private = {private}
[[regions]]
name = "qc"
zone = "CA-QC"
executor = "simulated"
gpus = ["T4"]
"""


def write_config(tmp_path: Path, state: Path, private: bool) -> Path:
    """``tmp_path/carbond.toml``: that config with its state in ``state``."""
    config = tmp_path / "carbond.toml"
    config.write_text(CONFIG.format(state=state, private=str(private).lower()))
    return config
