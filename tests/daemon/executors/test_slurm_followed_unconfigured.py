"""A Slurm job a daemon restarted without Slurm regions follows to its end (over a fake
Slurm; the real one: tests/slurm/test_restart_on_slurm.py): its outcome has no grams, since
its region's zone and PUE are gone from the configuration, and says so."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.assemble import build_daemon, build_executors
from daemon.cli import main
from daemon.executors.slurm import SlurmExecutor
from daemon.settings import RegionSettings, Settings
from tests.daemon.executors.test_slurm_executor import FakeSlurm
from tests.daemon.executors.test_slurm_service import T0, _daemon, _Dip


def test_a_job_followed_without_its_region_ends_with_no_grams_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its outcome had no zone, PUE or grams and nothing said why: ``carbond status`` showed
    no outcome line at all, ``carbond report`` counted it under "no grams" with energy method
    "unknown", and no log line named it. Its ``details_json`` now says why (``no_grams``),
    ``carbond status`` prints it, and ``job_carbon_unknown`` is logged with the reason."""
    slurm = FakeSlurm()
    slurm.ran = ("2026-12-04T21:00:01", "2026-12-04T21:10:01")
    first = _daemon(tmp_path, slurm, _Dip(T0))
    line = {"id": "j1", "model": "llama-1b", "requests": 4, "command": ["true"]}
    (tmp_path / "queue.jsonl").write_text(json.dumps(line) + "\n")
    first.service.start(T0)
    first.service.tick(T0)
    assert first.ledger.job("j1").state == "running"
    first.close()

    region = RegionSettings(name="sim", zone="CA-QC", executor="simulated", gpus=("T4",))
    settings = Settings(state_dir=tmp_path, regions=(region,), policy={"name": "run-now"},
                        intensity={"source": "static"})  # fmt: skip
    executors = build_executors(settings) | {"slurm": SlurmExecutor({}, runner=slurm)}
    again = build_daemon(settings, executors=executors)
    again.service.start(T0 + timedelta(minutes=5))
    next(iter(slurm.jobs.values())).state = "GONE"  # ended: sacct has it
    with capture_logs() as logs:
        again.service.tick(T0 + timedelta(minutes=11))
    outcome, state = again.ledger.outcome("j1"), again.ledger.job("j1").state
    again.close()

    assert outcome is not None and state == "succeeded"
    assert (outcome["region"], outcome["zone"], outcome["total_g"]) == ("qc", None, None)
    why = "region qc (device qc/0) is no longer configured: its zone and PUE are not known"
    assert json.loads(outcome["details_json"]) == {"no_grams": why}
    assert [e["reason"] for e in logs if e["event"] == "job_carbon_unknown"] == [why]
    capsys.readouterr()
    assert main(["status", "j1", "--state-dir", str(tmp_path)]) == 0
    assert f"outcome: no grams: {why}" in capsys.readouterr().out
