"""Issue 14 item 2 through the daemon: the run-now counterfactual is a start the job could have
had when it was submitted, stored with its first decision, and the outcome uses that one even
after a restart (not the one each later tick recomputes)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from daemon.accounting.realised import realised_from_samples
from daemon.cli import main
from daemon.intensity.providers import EmbeddedIntensity
from daemon.inventory import build_inventory
from daemon.ledger import Ledger
from daemon.queue.ingest import Queue
from daemon.service import Service
from daemon.settings import RegionSettings, Settings
from daemon.testing import FakeClock, RecordingExecutor
from policies import get_policy
from tests.daemon.helpers import append, job_line

REGIONS = (RegionSettings(name="node", zone="CA-QC", executor="local", gpus=("A100-80GB",)),)


def _service(tmp_path: Path, executor: RecordingExecutor) -> Service:
    ledger = Ledger.open(tmp_path / "ledger.db")
    return Service(
        settings=Settings(state_dir=tmp_path, regions=REGIONS, policy={"name": "carbon-window"}),
        ledger=ledger,
        queue=Queue(tmp_path, ledger, known_regions=["node"]),
        executors={executor.name: executor},
        inventory=build_inventory(REGIONS),
        intensity=EmbeddedIntensity(),
        policy=get_policy("carbon-window"),
    )


def test_the_counterfactual_waits_for_the_busy_gpu_and_survives_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = _service(tmp_path, executor)
    service.start(clock())
    append(service.queue.path, job_line(id="first", model="llama-3.1-8b", requests=512))
    service.tick(clock())
    first = service.ledger.run("first")
    assert first is not None  # it holds the only GPU
    submitted = clock()
    append(service.queue.path, job_line(id="second", model="llama-3.2-1b", requests=64))
    service.tick(clock())
    stored = service.ledger.counterfactual("second")
    assert stored is not None
    # the GPU is busy: run-now would have started "second" when it frees up, not at once on it
    assert stored["device_ids"] == ["node/0"]
    assert stored["start"] > submitted.isoformat()
    decision = service.ledger.latest_decision("second")
    assert decision is not None
    for alternative in decision.alternatives:  # no alternative names the busy GPU now
        assert (
            alternative["start"] > submitted.isoformat()
            or "node/0" not in alternative["device_ids"]
        )
    service.ledger.close()

    clock.advance(3 * 3600)
    executor.finish("first", clock())
    restarted = _service(tmp_path, executor)  # the daemon restarts
    restarted.start(clock())
    for _ in range(3):
        restarted.tick(clock())
        clock.advance(1800)
        for job_id in executor.running():
            executor.finish(job_id, clock())
    outcome = restarted.ledger.outcome("second")
    assert outcome is not None
    # that one, as the run turned out (its energy and duration over those predicted), at the
    # intensity the ledger's samples realised over its own window (its duration so scaled)
    energy = outcome["energy_j"] / outcome["predicted_energy_j"]
    duration = outcome["duration_s"] / outcome["predicted_duration_s"]
    start = datetime.fromisoformat(stored["start"])
    end = start + timedelta(seconds=stored["duration_s"] * duration)
    zone = outcome["zone"]
    samples = restarted.ledger.intensity_samples(zone, start, end)
    realised = realised_from_samples(zone, samples, start, end)
    assert realised is not None
    intensity = realised.intensity_g_per_kwh / stored["intensity_g_per_kwh"]
    assert outcome["run_now_total_g"] == pytest.approx(
        stored["operational_g"] * energy * intensity + stored["embodied_g"] * duration
    )
    latest = restarted.ledger.latest_decision("second")
    assert latest is not None and latest.run_now_total_g != stored["total_g"]
    assert json.loads(json.dumps(stored))["total_g"] > 0
    restarted.ledger.close()

    # `carbond status` shows that same counterfactual, and no busy GPU among the alternatives
    monkeypatch.setenv("CARBOND_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("CARBOND_CONFIG", raising=False)
    monkeypatch.setattr("daemon.settings.DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")
    capsys.readouterr()
    assert main(["status", "second", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["run_now_total_g"] == stored["total_g"]
    assert shown["decision"]["run_now"] == stored
    assert shown["decision"]["run_now_total_g"] == stored["total_g"]
    assert shown["saved_g"] == pytest.approx(outcome["run_now_total_g"] - outcome["total_g"])
