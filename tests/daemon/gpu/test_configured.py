"""``carbond doctor``'s nvml line describes the configured GPUs, checked against NVML (a fake)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from daemon.doctor.checks import run_checks
from daemon.gpu import fake_nvml
from daemon.gpu.configured import describe_configured_gpus
from daemon.gpu.fake_nvml import FakeNvml
from daemon.settings import RegionSettings, Settings
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.gpu.conftest import FakeClock, fake_gpu, make_nvml

T4_LOCAL = RegionSettings(name="qc", zone="CA-QC", executor="local", gpus=("T4",))
ADA_SIM = RegionSettings(name="ca", zone="US-CAL-CISO", executor="simulated",
                         gpus=("RTX6000-Ada",) * 2)  # fmt: skip
DISCOVER = RegionSettings(name="node", zone="CA-QC", gpus="discover")


def _describe(nvml: Any, *regions: RegionSettings, backend: str = "auto") -> tuple[str, str]:
    settings = Settings(regions=regions, gpu={"backend": backend})
    return describe_configured_gpus(settings, DEFAULT_GPU_CATALOG, nvml_module=nvml)


def test_declared_local_gpus_matching_nvml_are_metered(clock: FakeClock) -> None:
    nvml = make_nvml(clock, fake_gpu(clock, name="Tesla T4"))
    status, detail = _describe(nvml, T4_LOCAL, ADA_SIM)
    assert status == "pass"
    assert detail == (
        "NVML sees 0: Tesla T4; qc: 1x T4 (local); ca: 2x RTX6000-Ada (simulated) (metered by NVML)"
    )


def test_a_declared_gpu_nvml_does_not_have_fails(clock: FakeClock) -> None:
    nvml = make_nvml(clock, fake_gpu(clock))  # the fake's default: an A100
    status, detail = _describe(nvml, T4_LOCAL)
    assert status == "fail"
    assert detail == (
        "NVML sees 0: NVIDIA A100-SXM4-80GB; qc declares T4 at index 0, NVML has "
        "NVIDIA A100-SXM4-80GB"
    )


def test_without_nvml_the_line_says_what_is_not_metered_and_what_discover_gets(
    clock: FakeClock,
) -> None:
    nvml = FakeNvml([fake_gpu(clock)], clock, driver_loaded=False)
    status, detail = _describe(nvml, T4_LOCAL, DISCOVER)
    assert status == "pass"
    assert "qc: 1x T4 (local)" in detail
    assert "qc: not metered, grams estimated" in detail
    assert "node discover simulated A100-80GB (gpu.simulated_gpus)" in detail
    status, _ = _describe(nvml, T4_LOCAL, backend="nvml")
    assert status == "fail"


def test_regions_without_local_gpus_do_not_need_nvml(clock: FakeClock) -> None:
    assert _describe(make_nvml(clock), ADA_SIM) == (
        "skip",
        "NVML not needed: ca: 2x RTX6000-Ada (simulated)",
    )


def test_doctor_describes_the_configured_gpus_not_a_default(tmp_path: Path) -> None:
    config = tmp_path / "carbond.toml"
    config.write_text(
        f'state_dir = "{tmp_path}"\n[gpu]\nbackend = "simulated"\n'
        '[[regions]]\nname = "qc"\nzone = "CA-QC"\ngpus = ["T4", "T4"]\n'
    )
    [nvml] = [c for c in run_checks(config, datetime.now(UTC)) if c.name == "nvml"]
    assert nvml.status == "pass"
    assert nvml.detail == "gpu.backend simulated: qc: 2x T4 (local); local GPUs not metered"


def test_a_discovering_region_that_would_find_no_gpu_fails(clock: FakeClock) -> None:
    """Each passed as 'node discover simulated ' (an empty list) or 'nothing, so simulated
    A100-80GB', while the daemon's backend found no GPU and started the region without any
    (region_without_gpus), rejecting the jobs that may only run there."""
    from daemon.gpu.factory import start_backend

    cases = [  # (backend, simulated_gpus, the NVML the node has)
        ("simulated", [], make_nvml(clock, fake_gpu(clock))),
        ("auto", [], FakeNvml([fake_gpu(clock)], clock, driver_loaded=False)),
        ("nvml", ["A100-80GB"], FakeNvml([], clock)),  # NVML works, sees no GPU: no stand-in
    ]
    for backend, stand_ins, nvml in cases:
        settings = Settings(
            regions=(DISCOVER,), gpu={"backend": backend, "simulated_gpus": stand_ins}
        )
        found = start_backend(settings.gpu, DEFAULT_GPU_CATALOG, nvml_module=nvml)
        try:
            assert not found.devices()  # what the daemon's discovery gets
        finally:
            found.close()
        status, detail = describe_configured_gpus(settings, DEFAULT_GPU_CATALOG, nvml)
        assert status == "fail", (backend, detail)
        assert detail.endswith(
            "node discover no GPU (" + ("gpu.backend nvml" if backend == "nvml" else
                                        "gpu.simulated_gpus is empty")
            + ": no simulated stand-ins): the daemon starts them without GPUs and rejects the "
            "jobs that may only run there"
        )  # fmt: skip
    # with stand-ins, auto falls back to them: a pass, as before
    status, detail = _describe(FakeNvml([fake_gpu(clock)], clock, driver_loaded=False), DISCOVER)
    assert status == "pass" and "node discover simulated A100-80GB" in detail


def test_doctor_names_a_mig_gpu_as_not_schedulable(clock: FakeClock) -> None:
    """CUDA reaches a MIG instance only as ``MIG-<uuid>``; carbond gives a job its GPU's
    index and assigns no instance, so a GPU in MIG mode is not carbond's to schedule."""
    mig = fake_gpu(clock, mig_mode=fake_nvml.NVML_DEVICE_MIG_ENABLE)
    nvml = make_nvml(clock, mig, fake_gpu(clock))
    status, detail = _describe(nvml, DISCOVER)
    assert status == "pass"
    assert detail == (
        "NVML sees 0: NVIDIA A100-SXM4-80GB (MIG mode: not schedulable by carbond), "
        "1: NVIDIA A100-SXM4-80GB; no declared GPU; node discover 1: NVIDIA A100-SXM4-80GB"
    )
    a100_local = RegionSettings(name="qc", zone="CA-QC", executor="local", gpus=("A100-80GB",))
    status, detail = _describe(make_nvml(clock, mig), a100_local)
    assert status == "fail"
    assert detail.endswith(
        "qc declares A100-80GB at index 0, which is in MIG mode: carbond cannot run jobs on it"
    )
    # every GPU in MIG mode: a discovering region gets none
    status, detail = _describe(make_nvml(clock, mig), DISCOVER, backend="nvml")
    assert status == "fail" and "node discover no GPU" in detail


def test_discovery_leaves_out_mig_gpus_and_says_so(clock: FakeClock) -> None:
    from daemon.gpu.factory import schedulable, start_backend

    mig = fake_gpu(clock, mig_mode=fake_nvml.NVML_DEVICE_MIG_ENABLE, uuid="GPU-mig")
    nvml = make_nvml(clock, mig, fake_gpu(clock), fake_gpu(clock, mig_mode=None))
    backend = start_backend(Settings().gpu, DEFAULT_GPU_CATALOG, nvml_module=nvml)
    try:
        with capture_logs() as events:
            found = schedulable(backend.devices())
    finally:
        backend.close()
    assert [d.index for d in found] == [1, 2]  # MIG not supported (None) is schedulable
    [skipped] = [e for e in events if e["event"] == "gpu_not_schedulable"]
    assert (skipped["gpu"], skipped["uuid"], skipped["log_level"]) == (0, "GPU-mig", "warning")
    assert "MIG mode" in skipped["reason"]
