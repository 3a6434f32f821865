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
from tests.daemon.executors.fake_slurm import T0, FakeSlurm
from tests.daemon.executors.slurm_daemon import Dip, slurm_daemon


def test_a_job_followed_without_its_region_ends_with_no_grams_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its outcome had no zone, PUE or grams and nothing said why: ``carbond status`` showed
    no outcome line at all, ``carbond report`` counted it under "no grams" with energy method
    "unknown", and no log line named it. Its ``details_json`` now says why (``no_grams``),
    ``carbond status`` prints it, and ``job_carbon_unknown`` is logged with the reason."""
    slurm = FakeSlurm()
    slurm.ran = ("2026-12-04T21:00:01", "2026-12-04T21:10:01")
    first = slurm_daemon(tmp_path, slurm, Dip(T0))
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


@pytest.mark.parametrize(("sacct_j", "kept_j"), [("5400", 5400.0), ("1e12", None)])
def test_a_job_followed_without_its_region_keeps_slurm_s_plausible_measured_energy(
    tmp_path: Path, sacct_j: str, kept_j: float | None
) -> None:
    """Slurm's own measurement (sacct ConsumedEnergyRaw) of such a job was dropped with its
    region: its outcome had no energy at all. It is kept now, when no more than its GPUs of
    the type its decision named (T4, 70 W) could draw over the run, grams still unknown; a
    figure above that is set aside (``job_energy_implausible``)."""
    slurm = FakeSlurm()
    slurm.ran = ("2026-12-04T21:00:01", "2026-12-04T21:10:01")  # 600 s: T4 bound 841,400 J
    first = slurm_daemon(tmp_path, slurm, Dip(T0))
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
    job = next(iter(slurm.jobs.values()))
    job.state, job.energy = "GONE", sacct_j
    with capture_logs() as logs:
        again.service.tick(T0 + timedelta(minutes=11))
    outcome = again.ledger.outcome("j1")
    again.close()

    assert outcome is not None and outcome["total_g"] is None
    assert (outcome["energy_j"], outcome["measured_energy_j"]) == (kept_j, kept_j)
    assert outcome["energy_method"] == ("slurm-sacct" if kept_j else None)
    implausible = [e["max_energy_j"] for e in logs if e["event"] == "job_energy_implausible"]
    assert implausible == ([] if kept_j else [20 * 70 * 601.0])


def test_the_energy_bound_of_a_job_followed_without_its_region_is_the_site_s_tdp(
    tmp_path: Path,
) -> None:
    """Slurm's measured energy of a job followed without its region was bounded by the
    built-in catalog's TDP of its GPU type (T4: 70 W), even where the site's ``[catalog]``
    says otherwise, so a site whose T4s draw 300 W (its override) lost plausible
    measurements as implausible. The daemon's catalog, the site's, bounds it now."""
    slurm = FakeSlurm()
    slurm.ran = ("2026-12-04T21:00:01", "2026-12-04T21:10:01")  # 601 s
    first = slurm_daemon(tmp_path, slurm, Dip(T0))
    line = {"id": "j1", "model": "llama-1b", "requests": 4, "command": ["true"]}
    (tmp_path / "queue.jsonl").write_text(json.dumps(line) + "\n")
    first.service.start(T0)
    first.service.tick(T0)
    first.close()

    region = RegionSettings(name="sim", zone="CA-QC", executor="simulated", gpus=("T4",))
    settings = Settings(state_dir=tmp_path, regions=(region,), policy={"name": "run-now"},
                        intensity={"source": "static"},
                        catalog={"gpus": {"T4": {"tdp_w": 300}}})  # fmt: skip
    executors = build_executors(settings) | {"slurm": SlurmExecutor({}, runner=slurm)}
    again = build_daemon(settings, executors=executors)
    again.service.start(T0 + timedelta(minutes=5))
    job = next(iter(slurm.jobs.values()))
    job.state, job.energy = "GONE", "2000000"  # above 20 x 70 W x 601 s, below 20 x 300 W
    with capture_logs() as logs:
        again.service.tick(T0 + timedelta(minutes=11))
    outcome = again.ledger.outcome("j1")
    again.close()

    assert outcome is not None and outcome["total_g"] is None
    assert (outcome["energy_j"], outcome["energy_method"]) == (2_000_000.0, "slurm-sacct")
    assert not [e for e in logs if e["event"] == "job_energy_implausible"]
