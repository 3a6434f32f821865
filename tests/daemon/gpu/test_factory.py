"""Backend choice: nvml, simulated, and auto's fallback; catalog matching."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from daemon.gpu import fake_nvml_errors
from daemon.gpu.errors import GpuError, NvmlUnavailableError
from daemon.gpu.factory import match_catalog, simulated_spec, start_backend
from daemon.gpu.fake_nvml import FakeNvml
from daemon.gpu.nvml import NvmlBackend
from daemon.gpu.simulated import SimulatedGpuBackend
from daemon.settings import GpuSettings, Settings
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.gpu.conftest import FakeClock, fake_gpu, make_nvml


def test_simulated_backend_from_catalog_names(clock: FakeClock) -> None:
    settings = GpuSettings(
        backend="simulated", simulated_gpus=("T4", "H100-SXM"), simulated_power_factor=1.3
    )
    backend = start_backend(settings, DEFAULT_GPU_CATALOG, clock=clock)
    assert isinstance(backend, SimulatedGpuBackend)
    assert [d.name for d in backend.devices()] == ["T4", "H100-SXM"]
    assert backend.read(0).power_w == pytest.approx(10.0 * 1.3)  # T4 idle 10 W


def test_unknown_simulated_gpu_names_the_setting(clock: FakeClock) -> None:
    """The settings refuse the name (tests/daemon/settings/test_catalog.py); the factory
    still names the setting for one built around them."""
    with pytest.raises(ValidationError, match=r"unknown GPU 'GTX-480'"):
        Settings(gpu=GpuSettings(backend="simulated", simulated_gpus=("GTX-480",)))
    settings = GpuSettings.model_construct(backend="simulated", simulated_gpus=("GTX-480",))
    with pytest.raises(GpuError, match=r"gpu.simulated_gpus: unknown GPU 'GTX-480'"):
        start_backend(settings, DEFAULT_GPU_CATALOG, clock=clock)


def test_nvml_backend_when_it_works(clock: FakeClock) -> None:
    nvml = make_nvml(clock, fake_gpu(clock, name="NVIDIA H100 80GB HBM3"))
    for choice in ("nvml", "auto"):
        backend = start_backend(GpuSettings(backend=choice), DEFAULT_GPU_CATALOG, nvml_module=nvml)
        assert isinstance(backend, NvmlBackend)


def test_auto_falls_back_to_simulated_without_a_driver(clock: FakeClock) -> None:
    nvml = make_nvml(clock)
    nvml.driver_loaded = False
    backend = start_backend(GpuSettings(backend="auto"), DEFAULT_GPU_CATALOG, nvml_module=nvml)
    assert backend.name == "simulated"
    with pytest.raises(NvmlUnavailableError, match="Driver Not Loaded"):
        start_backend(GpuSettings(backend="nvml"), DEFAULT_GPU_CATALOG, nvml_module=nvml)


def test_auto_falls_back_when_nvml_sees_no_gpu(clock: FakeClock) -> None:
    nvml = make_nvml(clock)
    nvml.gpus.clear()
    backend = start_backend(GpuSettings(backend="auto"), DEFAULT_GPU_CATALOG, nvml_module=nvml)
    assert backend.name == "simulated"
    assert nvml.initialised == 0


@pytest.mark.parametrize(
    ("nvml_name", "catalog_name"),
    [
        ("NVIDIA A100-SXM4-80GB", "A100-80GB"),
        ("NVIDIA H100 80GB HBM3", "H100-SXM"),
        ("Tesla T4", "T4"),
        ("NVIDIA GeForce GTX 480", None),
    ],
)
def test_devices_are_matched_to_the_catalog(
    clock: FakeClock, nvml_name: str, catalog_name: str | None
) -> None:
    backend = NvmlBackend(make_nvml(clock, fake_gpu(clock, name=nvml_name)), clock=clock)
    backend.start()
    spec = match_catalog(backend.devices(), DEFAULT_GPU_CATALOG)[0]
    assert (spec.name if spec else None) == catalog_name


def test_simulated_spec_takes_idle_and_tdp_from_the_catalog() -> None:
    spec = simulated_spec(DEFAULT_GPU_CATALOG.get("A100-80GB"))
    assert (spec.idle_power_w, spec.tdp_w, spec.memory_total_bytes) == (55.0, 400.0, 80 * 10**9)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (fake_nvml_errors.NVML_ERROR_NO_PERMISSION, "Insufficient Permissions"),
        (fake_nvml_errors.NVML_ERROR_UNKNOWN, "Unknown Error"),
    ],
)
def test_auto_falls_back_when_nvml_init_fails_otherwise(
    clock: FakeClock, code: int, message: str
) -> None:
    """NVML documents that ``nvmlInit`` returns NO_PERMISSION (no permission to talk to the
    driver) and UNKNOWN besides DRIVER_NOT_LOADED: both became a plain ``GpuError`` that
    ``auto`` did not catch, so the daemon failed to start instead of simulating."""
    nvml = FakeNvml([fake_gpu(clock)], clock, init_error=code)
    backend = start_backend(GpuSettings(backend="auto"), DEFAULT_GPU_CATALOG, nvml_module=nvml)
    assert backend.name == "simulated"
    with pytest.raises(NvmlUnavailableError, match=rf"nvmlInit failed: {message}"):
        start_backend(GpuSettings(backend="nvml"), DEFAULT_GPU_CATALOG, nvml_module=nvml)
    assert nvml.initialised == 0


def test_auto_falls_back_when_nvml_cannot_count_its_gpus(clock: FakeClock) -> None:
    """``nvmlDeviceGetCount_v2`` may return UNKNOWN: NVML started but cannot be used."""
    nvml = make_nvml(clock)

    def count() -> int:
        raise fake_nvml_errors.NVMLError(fake_nvml_errors.NVML_ERROR_UNKNOWN)

    nvml.nvmlDeviceGetCount = count  # type: ignore[method-assign]
    backend = start_backend(GpuSettings(backend="auto"), DEFAULT_GPU_CATALOG, nvml_module=nvml)
    assert backend.name == "simulated"
    assert nvml.initialised == 0
