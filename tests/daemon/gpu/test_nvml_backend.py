"""The NVML backend over the fake NVML: discovery, units, counter unwrapping, errors."""

from __future__ import annotations

import sys
import threading
import types

import pytest
from structlog.testing import capture_logs

from daemon.gpu import fake_nvml, fake_nvml_errors
from daemon.gpu.errors import (
    GpuError,
    GpuLostError,
    GpuNotSupportedError,
    GpuPermissionError,
    NvmlUnavailableError,
)
from daemon.gpu.fake_nvml_errors import NVMLError
from daemon.gpu.nvml import NvmlBackend, _translate, load_pynvml
from tests.daemon.gpu.conftest import FakeClock, fake_gpu, make_nvml


def started(clock: FakeClock, *gpus: fake_nvml.FakeGpu) -> NvmlBackend:
    backend = NvmlBackend(make_nvml(clock, *gpus), clock=clock)
    backend.start()
    return backend


def test_discovery_converts_units_and_flags(clock: FakeClock) -> None:
    backend = started(
        clock,
        fake_gpu(clock, name="NVIDIA H100 80GB HBM3", uuid="GPU-a", power_limit_w=700.0),
        fake_gpu(clock, name="Tesla T4", uuid="GPU-b", energy_counter=False, mig_mode=None),
    )
    h100, t4 = backend.devices()
    assert (h100.index, h100.uuid, h100.name) == (0, "GPU-a", "NVIDIA H100 80GB HBM3")
    assert h100.power_limit_w == 700.0
    assert h100.mig_enabled is False
    assert h100.energy_counter is True
    assert h100.memory_gb == pytest.approx(85.9, abs=0.1)
    assert t4.energy_counter is False
    assert t4.mig_enabled is None
    assert backend.driver_version == "550.54.15"


def test_reading_is_in_watts_and_joules(clock: FakeClock) -> None:
    gpu = fake_gpu(clock, 120.0, fan_pct=None, energy_counter_start_mj=7_000_000)
    backend = started(clock, gpu)
    gpu.power.step(clock(), 300.0)
    gpu.utilisation_pct = 87
    clock.advance(10.0)
    reading = backend.read(0)
    assert reading.power_w == 300.0
    assert reading.energy_j == 3000.0  # relative to the first read, not the raw 7e6 mJ
    assert reading.utilisation_pct == 87.0
    assert reading.fan_pct is None  # passively cooled: NOT_SUPPORTED becomes None
    assert reading.sm_clock_mhz == 1410.0
    assert reading.monotonic_s == clock()


def test_energy_survives_a_64_bit_wrap(clock: FakeClock) -> None:
    backend = started(clock, fake_gpu(clock, 500.0, energy_counter_start_mj=2**64 - 1_000_000))
    clock.advance(1.0)
    assert backend.read(0).energy_j == 500.0
    clock.advance(3.0)  # the raw counter wraps during these 1500 J
    assert backend.read(0).energy_j == 2000.0


def test_a_counter_reset_continues_from_the_last_value(clock: FakeClock) -> None:
    gpu = fake_gpu(clock, 100.0, energy_counter_start_mj=5_000_000)
    backend = started(clock, gpu)
    clock.advance(1.0)
    assert backend.read(0).energy_j == 100.0
    # Driver reload: the raw counter restarts near 0 (10 J), then counts 100 J more.
    gpu.energy_counter_start_mj = 10_000 - round(gpu.power.energy_j(clock()) * 1000)
    clock.advance(1.0)
    assert backend.read(0).energy_j == 100.0 + 110.0


def test_the_counter_is_read_only_where_supported(clock: FakeClock) -> None:
    backend = started(clock, fake_gpu(clock, energy_counter=False))
    assert backend.read(0).energy_j is None


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (fake_nvml_errors.NVML_ERROR_NOT_SUPPORTED, GpuNotSupportedError),
        (fake_nvml_errors.NVML_ERROR_FUNCTION_NOT_FOUND, GpuNotSupportedError),
        (fake_nvml_errors.NVML_ERROR_GPU_IS_LOST, GpuLostError),
        (fake_nvml_errors.NVML_ERROR_RESET_REQUIRED, GpuLostError),
        (fake_nvml_errors.NVML_ERROR_NO_PERMISSION, GpuPermissionError),
        (fake_nvml_errors.NVML_ERROR_DRIVER_NOT_LOADED, NvmlUnavailableError),
        (fake_nvml_errors.NVML_ERROR_LIBRARY_NOT_FOUND, NvmlUnavailableError),
        (fake_nvml_errors.NVML_ERROR_UNINITIALIZED, NvmlUnavailableError),
        (fake_nvml_errors.NVML_ERROR_TIMEOUT, GpuError),
        (fake_nvml_errors.NVML_ERROR_UNKNOWN, GpuError),
    ],
)
def test_nvml_errors_are_translated(code: int, error: type[GpuError]) -> None:
    translated = _translate(NVMLError(code), "nvmlDeviceGetPowerUsage", 3)
    assert type(translated) is error
    assert "GPU 3" in str(translated)
    assert "nvmlDeviceGetPowerUsage" in str(translated)


def test_a_lost_gpu_raises_gpu_lost_with_its_index(clock: FakeClock) -> None:
    gpu = fake_gpu(clock)
    backend = started(clock, fake_gpu(clock), gpu)
    gpu.lost_at_s = clock()
    with pytest.raises(GpuLostError, match=r"GPU 1.*GPU is lost") as caught:
        backend.read(1)
    assert caught.value.index == 1
    assert isinstance(caught.value.__cause__, fake_nvml_errors.NVMLError_GpuIsLost)
    assert backend.read(0).power_w == 100.0  # the other device is fine


def test_no_driver_makes_nvml_unavailable(clock: FakeClock) -> None:
    nvml = make_nvml(clock)
    nvml.driver_loaded = False
    with pytest.raises(NvmlUnavailableError, match="Driver Not Loaded"):
        NvmlBackend(nvml, clock=clock).start()


def test_close_shuts_nvml_down_once(clock: FakeClock) -> None:
    nvml = make_nvml(clock)
    backend = NvmlBackend(nvml, clock=clock)
    backend.start()
    backend.close()
    backend.close()
    assert nvml.initialised == 0


def test_unofficial_pynvml_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", types.ModuleType("pynvml"))
    with pytest.raises(NvmlUnavailableError, match=r"unofficial pynvml.*pip install nvidia-ml-py"):
        load_pynvml()


def test_missing_bindings_name_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(NvmlUnavailableError, match="nvidia-ml-py"):
        load_pynvml()


def test_the_official_bindings_are_accepted() -> None:
    pytest.importorskip("pynvml", reason="nvidia-ml-py not installed")
    assert hasattr(load_pynvml(), "nvmlDeviceGetTotalEnergyConsumption")


def test_concurrent_reads_never_mistake_an_older_raw_value_for_a_reset(clock: FakeClock) -> None:
    # The sampler thread and the service (JobMeasurement._power_now_w) read the same backend.
    # A raw value read before another thread's newer one must not be taken for a counter reset
    # (which would add the whole counter since driver load, here 5000 J, to the energy).
    gpu = fake_gpu(clock, 100.0, energy_counter_start_mj=5_000_000)
    nvml = make_nvml(clock, gpu)
    backend = NvmlBackend(nvml, clock=clock)
    backend.start()
    raw_counter = nvml.nvmlDeviceGetTotalEnergyConsumption
    slow_has_read, fast_is_done = threading.Event(), threading.Event()

    def slow_counter(handle: object) -> int:
        raw = raw_counter(handle)  # type: ignore[arg-type]
        if threading.current_thread().name == "slow":
            slow_has_read.set()
            fast_is_done.wait(0.3)  # the other read goes first unless the backend serialises
        return raw

    nvml.nvmlDeviceGetTotalEnergyConsumption = slow_counter  # type: ignore[method-assign]
    slow = threading.Thread(target=backend.read, args=(0,), name="slow")
    slow.start()
    assert slow_has_read.wait(5.0)
    clock.advance(1.0)
    backend.read(0)
    fast_is_done.set()
    slow.join()
    clock.advance(1.0)
    assert backend.read(0).energy_j == 200.0


def test_a_function_the_driver_lacks_is_an_unsupported_query(clock: FakeClock) -> None:
    # pynvml raises NVMLError_FunctionNotFound where libnvidia-ml has no such symbol: an R418
    # driver has no nvmlDeviceGetMigMode (R450); that must not stop discovery.
    nvml = make_nvml(clock, fake_gpu(clock, 100.0))
    nvml.missing_functions = {"nvmlDeviceGetMigMode", "nvmlDeviceGetTotalEnergyConsumption"}
    backend = NvmlBackend(nvml, clock=clock)
    backend.start()
    (device,) = backend.devices()
    assert device.mig_enabled is None
    assert device.energy_counter is False
    assert backend.read(0).power_w == 100.0
    assert backend.read(0).energy_j is None


def test_a_driver_without_nvml_init_makes_nvml_unavailable(clock: FakeClock) -> None:
    nvml = make_nvml(clock)
    nvml.missing_functions = {"nvmlInit"}
    with pytest.raises(NvmlUnavailableError, match="Function Not Found"):
        NvmlBackend(nvml, clock=clock).start()


def test_a_mig_enabled_gpu_read_without_root(clock: FakeClock) -> None:
    # NVML: the parent's memory info needs privileges in MIG mode (NO_PERMISSION otherwise) and
    # its utilisation is not supported; neither may stop discovery or reading.
    gpu = fake_gpu(clock, 250.0, mig_mode=fake_nvml.NVML_DEVICE_MIG_ENABLE, utilisation_pct=50)
    nvml = fake_nvml.FakeNvml([gpu], clock, privileged=False)
    backend = NvmlBackend(nvml, clock=clock)
    backend.start()
    (device,) = backend.devices()
    assert device.mig_enabled is True
    assert device.memory_total_bytes is None
    assert device.memory_gb is None
    clock.advance(2.0)
    reading = backend.read(0)
    assert (reading.utilisation_pct, reading.memory_used_bytes) == (None, None)
    assert (reading.power_w, reading.energy_j) == (250.0, 500.0)


@pytest.mark.parametrize(
    ("refused", "how"),
    [
        ({"nvmlDeviceGetHandleByIndex"}, None),  # NO_PERMISSION: counted, not ours to talk to
        (set(), fake_nvml_errors.NVML_ERROR_GPU_IS_LOST),
        (set(), fake_nvml_errors.NVML_ERROR_INSUFFICIENT_POWER),
    ],
)
def test_a_device_that_cannot_be_described_is_skipped_not_fatal(
    clock: FakeClock, refused: set[str], how: int | None
) -> None:
    # NVML: nvmlDeviceGetCount_v2 counts every device even where nvmlDeviceGetHandleByIndex_v2
    # returns NO_PERMISSION for it; "update your code to handle this error".
    nvml = make_nvml(clock, fake_gpu(clock), fake_gpu(clock, denied=refused), fake_gpu(clock))
    if how is not None:
        real_handle = nvml.nvmlDeviceGetHandleByIndex

        def handle(index: int) -> object:
            if index == 1:
                raise NVMLError(how)
            return real_handle(index)

        nvml.nvmlDeviceGetHandleByIndex = handle  # type: ignore[assignment,method-assign]
    backend = NvmlBackend(nvml, clock=clock)
    backend.start()
    assert [d.index for d in backend.devices()] == [0, 2]
    assert backend.read(2).power_w == 100.0
    with pytest.raises(GpuError, match="GPU 1: no such device"):
        backend.read(1)


def test_a_discovery_that_fails_shuts_nvml_down_and_a_later_start_tries_again(
    clock: FakeClock,
) -> None:
    """``start`` marked the backend started before discovering: after a failed discovery NVML
    stayed initialised and a second ``start`` returned at once with no devices."""
    nvml = make_nvml(clock)
    count = nvml.nvmlDeviceGetCount

    def unloaded() -> int:  # the driver went away between nvmlInit and the count
        raise NVMLError(fake_nvml_errors.NVML_ERROR_DRIVER_NOT_LOADED)

    nvml.nvmlDeviceGetCount = unloaded  # type: ignore[method-assign]
    backend = NvmlBackend(nvml, clock=clock)
    for _ in range(2):
        with pytest.raises(NvmlUnavailableError):
            backend.start()
        assert nvml.initialised == 0
    nvml.nvmlDeviceGetCount = count  # type: ignore[method-assign]
    backend.start()
    assert len(backend.devices()) == 1 and nvml.initialised == 1


@pytest.mark.parametrize(
    "code",
    [
        fake_nvml_errors.NVML_ERROR_NO_PERMISSION,
        fake_nvml_errors.NVML_ERROR_UNKNOWN,
        fake_nvml_errors.NVML_ERROR_TIMEOUT,
    ],
)
def test_an_energy_counter_that_cannot_be_read_falls_back_to_sampled_power(
    clock: FakeClock, code: int
) -> None:
    """A refused (or otherwise failing) energy counter at discovery dropped the whole device,
    where an unsupported one leaves ``energy_counter=False``: the GPU can still be sampled."""
    nvml = make_nvml(clock, fake_gpu(clock, 100.0), fake_gpu(clock, 200.0))
    real_counter = nvml.nvmlDeviceGetTotalEnergyConsumption

    def counter(handle: object) -> int:
        if getattr(handle, "index", None) == 1:
            raise NVMLError(code)
        return real_counter(handle)  # type: ignore[arg-type]

    nvml.nvmlDeviceGetTotalEnergyConsumption = counter  # type: ignore[method-assign]
    backend = NvmlBackend(nvml, clock=clock)
    with capture_logs() as events:
        backend.start()
    assert [(d.index, d.energy_counter) for d in backend.devices()] == [(0, True), (1, False)]
    clock.advance(1.0)
    reading = backend.read(1)
    assert (reading.power_w, reading.energy_j) == (200.0, None)
    unreadable = [e for e in events if e["event"] == "gpu_energy_counter_unreadable"]
    assert [e["gpu"] for e in unreadable] == [1]
    assert f"NVML error {code}" in unreadable[0]["error"]


def test_a_gpu_lost_while_its_counter_is_read_is_still_skipped(clock: FakeClock) -> None:
    nvml = make_nvml(clock, fake_gpu(clock), fake_gpu(clock))

    def counter(handle: object) -> int:
        raise NVMLError(fake_nvml_errors.NVML_ERROR_GPU_IS_LOST)

    nvml.nvmlDeviceGetTotalEnergyConsumption = counter  # type: ignore[method-assign]
    backend = NvmlBackend(nvml, clock=clock)
    backend.start()
    assert backend.devices() == ()
