"""``carbond submit`` against a running daemon's ``health.json``: a job that fits only GPUs the
daemon keeps out of planning (a declared GPU NVML cannot run jobs on, a lost GPU) is one the
daemon rejects at once, and submit says so, naming the GPUs and the daemon's problem."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.gpu.fake_nvml import FakeGpu, FakeNvml
from daemon.gpu.power_curve import PowerCurve
from daemon.intensity.providers import EmbeddedIntensity
from daemon.inventory import build_inventory
from daemon.ledger import Ledger
from daemon.measurement import start_measurement
from daemon.queue.ingest import Queue
from daemon.service import Service
from daemon.settings import RegionSettings, Settings
from daemon.supervision.health import read_health
from daemon.testing import FakeClock, RecordingExecutor
from policies import get_policy
from policies.footprint import DEFAULT_GPU_CATALOG

# GPU 0 an L4 on both sides; GPU 1 declared an A100 where NVML has none
_CONFIG = '[[regions]]\nname = "qc"\nzone = "CA-QC"\ngpus = ["L4", "A100-80GB"]\n'


@dataclass
class _Daemon:
    service: Service
    clock: FakeClock
    config: Path

    def plan(self) -> None:
        for _ in range(2):
            self.service.tick(self.clock.advance(30))


def _gpu(name: str, **kwargs: object) -> FakeGpu:
    return FakeGpu(PowerCurve(0.0, 60.0), name=name, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[_Daemon]:
    """A daemon whose declared GPU 1 NVML does not have."""
    with _running(tmp_path, [_gpu("NVIDIA L4")]) as running:
        yield running


@contextmanager
def _running(tmp_path: Path, fake: list[FakeGpu]) -> Iterator[_Daemon]:
    """The daemon of ``_CONFIG`` over ``fake`` NVML GPUs, as ``carbond run`` builds it, its
    ``health.json`` written; this process holds its ledger open, as the daemon."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    regions = (RegionSettings(name="qc", zone="CA-QC", executor="local",
                              gpus=("L4", "A100-80GB")),)  # fmt: skip
    settings = Settings(state_dir=tmp_path, regions=regions)
    inventory = build_inventory(regions, DEFAULT_GPU_CATALOG)
    nvml = FakeNvml(fake, clock.monotonic())
    measurement = start_measurement(settings, DEFAULT_GPU_CATALOG, inventory, sample=False,
                                    nvml_module=nvml)  # fmt: skip
    assert measurement is not None
    ledger = Ledger.open(tmp_path / "ledger.db")
    service = Service(settings=settings, ledger=ledger,
                      queue=Queue(tmp_path, ledger, known_regions=["qc"]),
                      executors={executor.name: executor}, inventory=inventory,
                      intensity=EmbeddedIntensity(), policy=get_policy("run-now"),
                      measurement=measurement)  # fmt: skip
    service.start(clock())
    config = tmp_path / "carbond.toml"
    config.write_text(f'state_dir = "{tmp_path}"\n{_CONFIG}')
    try:
        service.tick(clock.advance(30))
        service.after_step("reconcile", None, clock())  # the loop writes health.json
        yield _Daemon(service, clock, config)
    finally:
        service.close()
        measurement.close()
        ledger.close()


def _submit(
    daemon: _Daemon, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[str, list[str]]:
    code = main(["submit", "--config", str(daemon.config), "--json", *argv, "--", "/bin/true"])
    out, err = capsys.readouterr()
    assert code == 0, err
    record = json.loads(out)
    assert err.splitlines() == [f"carbond: warning: {w}" for w in record["warnings"]]
    return str(record["job_id"]), list(record["warnings"])


def test_a_job_only_a_declared_gpu_nvml_lacks_could_run(
    daemon: _Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id, warnings = _submit(daemon, capsys, "--model", "llama-1b", "--gpu-type", "A100-80GB")
    assert warnings == [
        "fits only GPU(s) the running daemon does not plan on (health.json: gpu:qc/1: declared "
        "qc/1 (A100-80GB): NVML has no GPU at index 1; not planned on): fits no admissible "
        "device: no available A100-80GB GPU (there are L4): the daemon will reject it"
    ]
    daemon.plan()  # and it does, with that reason
    job = daemon.service.ledger.job(job_id)
    assert job is not None and job.state == "failed"
    [*_, last] = daemon.service.ledger.transitions(job_id)
    assert last.reason.endswith("no available A100-80GB GPU (there are L4)"), last.reason


def test_a_job_another_gpu_can_run_is_not_warned_about(
    daemon: _Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id, warnings = _submit(daemon, capsys, "--model", "llama-1b")
    assert warnings == []
    daemon.plan()
    run = daemon.service.ledger.run(job_id)
    assert run is not None and run.gpu_indices == (0,)


def test_a_stopped_daemons_health_is_not_used(
    daemon: _Daemon, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A daemon that starts again checks its declared GPUs again: what the stopped one found
    is no reason to warn (the pid written is no longer the daemon)."""
    health = tmp_path / "health.json"
    record = json.loads(health.read_text())
    record["pid"] = _dead_pid()
    health.write_text(json.dumps(record))
    _, warnings = _submit(daemon, capsys, "--model", "llama-1b", "--gpu-type", "A100-80GB")
    assert warnings == []


def _dead_pid() -> int:
    with subprocess.Popen(["true"]) as ended:
        pass  # waited for: its pid names no process
    return ended.pid


def test_a_deadline_only_a_gpu_the_daemon_does_not_plan_on_could_meet(
    daemon: _Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    """About 58 min on the A100 NVML lacks, about 2.2 h on the L4 the daemon runs it on."""
    _, warnings = _submit(daemon, capsys, "--model", "llama-3.1-8b", "--requests", "20000",
                          "--batch-size", "32", "--deadline", "+90m")  # fmt: skip
    [warning] = warnings
    assert warning.startswith("the job needs about 2.2 h on the fastest configured GPU (L4) "), (
        warning
    )


def test_a_job_only_a_lost_gpu_could_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A GPU lost while the daemon ran is reported by its device id (``gpu:qc/1: lost: ...``)."""
    fake = [_gpu("NVIDIA L4"), _gpu("NVIDIA A100-SXM4-80GB", lost_at_s=40.0)]
    with _running(tmp_path, fake) as daemon:
        _, before = _submit(daemon, capsys, "--model", "llama-1b", "--gpu-type", "A100-80GB")
        assert before == []  # not lost yet: it runs there
        daemon.plan()
        daemon.service.after_step("reconcile", None, daemon.clock())
        capsys.readouterr()  # the daemon's own log lines
        job_id, [warning] = _submit(
            daemon, capsys, "--model", "llama-1b", "--gpu-type", "A100-80GB"
        )
        assert re.fullmatch(
            r"fits only GPU\(s\) the running daemon does not plan on \(health\.json: gpu:qc/1: "
            r"lost: .+\): fits no admissible device: no available A100-80GB GPU \(there are "
            r"L4\): the daemon will reject it",
            warning,
        ), warning
        daemon.plan()
        assert daemon.service.ledger.job(job_id).state == "failed"


def test_a_lost_gpus_problem_names_its_device(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``health.json`` names a lost GPU's device id and board, in its message and as a field,
    as it does a declared one's: submit no longer works out which GPU a meter index means."""
    fake = [_gpu("NVIDIA L4"), _gpu("NVIDIA A100-SXM4-80GB", lost_at_s=40.0)]
    with _running(tmp_path, fake) as daemon:
        _submit(daemon, capsys, "--model", "llama-1b", "--gpu-type", "A100-80GB")
        daemon.plan()  # it runs there, and the GPU is lost under it
        daemon.service.after_step("reconcile", None, daemon.clock())
        problems = json.loads((tmp_path / "health.json").read_text())["problems"]
        lost = problems["gpu:qc/1"]
        assert lost["message"].startswith("lost: qc/1 (A100-80GB): GPU 1 lost: "), lost
        assert lost["device_id"] == "qc/1"
        report = read_health(tmp_path / "health.json")
        assert report is not None and report.device_ids == {"gpu:qc/1": "qc/1"}
