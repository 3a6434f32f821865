"""A local region's declared GPUs against what NVML has at their indices: a GPU NVML does not
have there (never there, or lost before this start), has in MIG mode, or has as another
catalog GPU is kept out of planning from the start, as a GPU lost mid-run is, and
``health.json`` names it; the daemon goes on with the others."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.assemble import Daemon, rebuild_service
from daemon.doctor.checks import Check, run_checks
from daemon.gpu.fake_nvml import FakeGpu, FakeNvml
from daemon.gpu.power_curve import PowerCurve
from daemon.intensity.providers import EmbeddedIntensity
from daemon.inventory import build_inventory
from daemon.ledger import Ledger
from daemon.measurement import start_measurement
from daemon.queue.ingest import Queue
from daemon.service import Service
from daemon.settings import RegionSettings, Settings
from daemon.supervision.health import HEALTH_NAME, read_health
from daemon.testing import FakeClock, RecordingExecutor
from policies import get_policy
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.helpers import append, job_line

_MIG = FakeNvml.NVML_DEVICE_MIG_ENABLE


def _gpu(name: str = "NVIDIA A100-SXM4-80GB", **kwargs: object) -> FakeGpu:
    return FakeGpu(PowerCurve(0.0, 60.0), name=name, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fake", "reason"),
    [
        ([_gpu(), _gpu()], r"NVML has no GPU at index 2"),
        ([_gpu(), _gpu(), _gpu(mig_mode=_MIG)], r"in MIG mode"),
        ([_gpu(), _gpu(), _gpu("NVIDIA L4")], r"NVML has NVIDIA L4 \(L4\)"),
        # lost before this start: NVML counts it but cannot describe it (skipped at discovery)
        ([_gpu(), _gpu(), _gpu(lost_at_s=-1.0)], r"NVML has no GPU at index 2"),
    ],
    ids=["absent", "mig", "other-type", "lost-before-start"],
)
def test_a_declared_gpu_nvml_cannot_run_jobs_on_is_never_planned(
    tmp_path: Path, fake: list[FakeGpu], reason: str
) -> None:
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    regions = (RegionSettings(name="qc", zone="CA-QC", executor="local",
                              gpus=("A100-80GB",) * 3),)  # fmt: skip
    settings = Settings(state_dir=tmp_path, regions=regions)
    inventory = build_inventory(regions, DEFAULT_GPU_CATALOG)
    with capture_logs() as events:
        measurement = start_measurement(settings, DEFAULT_GPU_CATALOG, inventory, sample=False,
                                        nvml_module=FakeNvml(fake, clock.monotonic()))  # fmt: skip
    assert measurement is not None
    [refused] = [e for e in events if e["event"] == "gpu_declared_unusable"]
    assert (refused["device_id"], refused["gpu"], refused["log_level"]) == ("qc/2", 2, "error")
    assert re.search(reason, refused["reason"])
    ledger = Ledger.open(tmp_path / "ledger.db")
    service = Service(
        settings=settings,
        ledger=ledger,
        queue=Queue(tmp_path, ledger, known_regions=["qc"]),
        executors={executor.name: executor},
        inventory=inventory,
        intensity=EmbeddedIntensity(),
        policy=get_policy("run-now"),
        measurement=measurement,
    )
    service.start(clock())
    try:
        append(service.queue.path, "".join(job_line(id=j) for j in "abc"))
        for _ in range(3):
            service.tick(clock.advance(30))
        runs = [service.ledger.run(j) for j in "abc"]
        # two GPUs: two jobs run, on 0 and 1; the third waits instead of starting on GPU 2
        assert sorted(r.gpu_indices for r in runs if r is not None) == [(0,), (1,)]
        assert [launch.job_id for launch in executor.launches].count("c") <= 1
        assert all(launch.gpu_indices != (2,) for launch in executor.launches)
        service.after_step("reconcile", None, clock())  # the loop writes health.json
        [health] = [c for c in run_checks(None, clock(), state_dir=tmp_path)
                    if c.name == "health"]  # fmt: skip
        assert health.status == "fail"
        assert re.search(r"gpu:qc/2 \(for \d+ s, since [^)]+\): declared qc/2 .*" + reason,
                         health.detail)  # fmt: skip
    finally:
        service.close()
        measurement.close()
        ledger.close()


def test_a_reload_that_corrects_the_declaration_plans_on_the_gpu_and_clears_health(
    tmp_path: Path,
) -> None:
    """The operator reads ``gpu:qc/0: declared qc/0 (H100-SXM): NVML has NVIDIA L4 ...``, declares
    the L4 and reloads: the GPU was still refused until a restart, and the ``gpu:qc/0`` problem,
    set by the previous service's report, was never cleared by the new one. Now a reload checks
    the declarations again and the new service clears what the old one reported."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    wrong = (RegionSettings(name="qc", zone="CA-QC", executor="local", gpus=("H100-SXM",)),)
    settings = Settings(state_dir=tmp_path, regions=wrong, policy={"name": "run-now"},
                        intensity={"source": "static"})  # fmt: skip
    inventory = build_inventory(wrong, DEFAULT_GPU_CATALOG)
    measurement = start_measurement(settings, DEFAULT_GPU_CATALOG, inventory, sample=False,
                                    nvml_module=FakeNvml([_gpu("NVIDIA L4")],
                                                         clock.monotonic()))  # fmt: skip
    assert measurement is not None
    ledger = Ledger.open(tmp_path / "ledger.db")
    first = Service(settings=settings, ledger=ledger,
                    queue=Queue(tmp_path, ledger, known_regions=["qc"]),
                    executors={executor.name: executor}, inventory=inventory,
                    intensity=EmbeddedIntensity(), policy=get_policy("run-now"),
                    measurement=measurement)  # fmt: skip
    first.start(clock())
    daemon = Daemon(settings, ledger, {"local": executor}, first, measurement=measurement)
    try:
        append(first.queue.path, job_line(id="a"))
        first.tick(clock.advance(30))
        first.after_step("reconcile", None, clock())
        # its only GPU unavailable, as a lost one: not run (rejected: no GPU is available)
        assert ledger.run("a") is None and ledger.job("a").state == "failed"
        assert "gpu:qc/0" in _health(tmp_path, clock).detail
        right = (RegionSettings(name="qc", zone="CA-QC", executor="local", gpus=("L4",)),)
        service = rebuild_service(daemon, settings.model_copy(update={"regions": right}), None)
        append(service.queue.path, job_line(id="b"))
        for _ in range(2):
            service.tick(clock.advance(30))
        run = ledger.run("b")
        assert run is not None and run.gpu_indices == (0,)
        service.after_step("reconcile", None, clock())
        assert "gpu:qc/0" not in _health(tmp_path, clock).detail
    finally:
        daemon.close()


def _health(state_dir: Path, clock: FakeClock) -> Check:
    [health] = [c for c in run_checks(None, clock(), state_dir=state_dir) if c.name == "health"]
    return health


def test_declared_gpus_of_two_regions_at_the_same_index_each_keep_their_problem(
    tmp_path: Path,
) -> None:
    """Two local regions each declare an A100 at index 0 where NVML has an L4: both are
    refused, and ``health.json`` keyed each by its index (``gpu:0``), so one overwrote the
    other and ``carbond submit`` knew of one. Now each is keyed by its device id."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    regions = tuple(RegionSettings(name=name, zone="CA-QC", executor="local",
                                   gpus=("A100-80GB",)) for name in ("qc", "on"))  # fmt: skip
    settings = Settings(state_dir=tmp_path, regions=regions)
    inventory = build_inventory(regions, DEFAULT_GPU_CATALOG)
    measurement = start_measurement(settings, DEFAULT_GPU_CATALOG, inventory, sample=False,
                                    nvml_module=FakeNvml([_gpu("NVIDIA L4")],
                                                         clock.monotonic()))  # fmt: skip
    assert measurement is not None
    ledger = Ledger.open(tmp_path / "ledger.db")
    service = Service(settings=settings, ledger=ledger,
                      queue=Queue(tmp_path, ledger, known_regions=["qc", "on"]),
                      executors={executor.name: executor}, inventory=inventory,
                      intensity=EmbeddedIntensity(), policy=get_policy("run-now"),
                      measurement=measurement)  # fmt: skip
    service.start(clock())
    try:
        service.tick(clock.advance(30))
        service.after_step("reconcile", None, clock())
        report = read_health(tmp_path / HEALTH_NAME)
        assert report is not None
        assert report.device_ids == {"gpu:on/0": "on/0", "gpu:qc/0": "qc/0"}
        for device_id in ("on/0", "qc/0"):
            assert report.problems[f"gpu:{device_id}"].startswith(f"declared {device_id} ")
        detail = _health(tmp_path, clock).detail
        assert re.search(r"gpu:on/0 \(for \d+ s, since [^)]+\): declared on/0 ", detail)
        assert re.search(r"gpu:qc/0 \(for \d+ s, since [^)]+\): declared qc/0 ", detail)
    finally:
        service.close()
        measurement.close()
        ledger.close()
