"""The fake NVML must look like the real bindings: names, units, error classes and codes."""

from __future__ import annotations

import pytest

from daemon.gpu import fake_nvml, fake_nvml_errors
from daemon.gpu.fake_nvml import FakeNvml
from daemon.gpu.fake_nvml_errors import NVMLError
from tests.daemon.gpu.conftest import FakeClock, fake_gpu, make_nvml

FUNCTIONS = [
    "nvmlInit",
    "nvmlShutdown",
    "nvmlSystemGetDriverVersion",
    "nvmlDeviceGetCount",
    "nvmlDeviceGetHandleByIndex",
    "nvmlDeviceGetName",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetPowerManagementLimit",
    "nvmlDeviceGetEnforcedPowerLimit",
    "nvmlDeviceGetMigMode",
    "nvmlDeviceGetTotalEnergyConsumption",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetUtilizationRates",
    "nvmlDeviceGetTemperature",
    "nvmlDeviceGetFanSpeed",
    "nvmlDeviceGetClockInfo",
    "_nvmlGetFunctionPointer",
]
ERRORS = [
    ("NVMLError_Uninitialized", "NVML_ERROR_UNINITIALIZED"),
    ("NVMLError_InvalidArgument", "NVML_ERROR_INVALID_ARGUMENT"),
    ("NVMLError_NotSupported", "NVML_ERROR_NOT_SUPPORTED"),
    ("NVMLError_NoPermission", "NVML_ERROR_NO_PERMISSION"),
    ("NVMLError_NotFound", "NVML_ERROR_NOT_FOUND"),
    ("NVMLError_DriverNotLoaded", "NVML_ERROR_DRIVER_NOT_LOADED"),
    ("NVMLError_LibraryNotFound", "NVML_ERROR_LIBRARY_NOT_FOUND"),
    ("NVMLError_GpuIsLost", "NVML_ERROR_GPU_IS_LOST"),
    ("NVMLError_Unknown", "NVML_ERROR_UNKNOWN"),
]
CONSTANTS = [
    "NVML_TEMPERATURE_GPU",
    "NVML_CLOCK_GRAPHICS",
    "NVML_CLOCK_SM",
    "NVML_CLOCK_MEM",
    "NVML_DEVICE_MIG_DISABLE",
    "NVML_DEVICE_MIG_ENABLE",
]


@pytest.fixture
def real() -> object:
    return pytest.importorskip("pynvml", reason="nvidia-ml-py not installed")


@pytest.mark.parametrize("name", FUNCTIONS)
def test_fake_has_the_real_function_names(real: object, name: str, clock: FakeClock) -> None:
    assert hasattr(real, name)
    assert callable(getattr(make_nvml(clock), name))


@pytest.mark.parametrize(("klass", "code"), ERRORS)
def test_error_classes_and_codes_match_the_real_ones(real: object, klass: str, code: str) -> None:
    assert getattr(fake_nvml_errors, code) == getattr(real, code)
    error = NVMLError(getattr(fake_nvml_errors, code))
    assert type(error).__name__ == klass
    assert isinstance(error, getattr(fake_nvml_errors, klass))
    assert error.value == getattr(real, code)
    assert str(error) == str(getattr(real, klass)())


@pytest.mark.parametrize("name", CONSTANTS)
def test_constants_match(real: object, name: str) -> None:
    assert getattr(fake_nvml, name) == getattr(real, name)


def test_units_are_nvmls(clock: FakeClock) -> None:
    nvml = make_nvml(clock, fake_gpu(clock, 250.5, power_limit_w=300.0))
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    clock.advance(2.0)
    assert nvml.nvmlDeviceGetPowerUsage(handle) == 250_500  # mW
    assert nvml.nvmlDeviceGetTotalEnergyConsumption(handle) == 501_000  # mJ
    assert nvml.nvmlDeviceGetEnforcedPowerLimit(handle) == 300_000


def test_calls_before_init_raise_uninitialized(clock: FakeClock) -> None:
    with pytest.raises(fake_nvml_errors.NVMLError_Uninitialized):
        make_nvml(clock).nvmlDeviceGetCount()


def test_counter_wraps_at_64_bits(clock: FakeClock) -> None:
    gpu = fake_gpu(clock, 100.0, energy_counter_start_mj=2**64 - 50_000)
    nvml = make_nvml(clock, gpu)
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    clock.advance(1.0)  # 100 J = 100_000 mJ: past the top
    assert nvml.nvmlDeviceGetTotalEnergyConsumption(handle) == 50_000


def test_unsupported_counter_lost_gpu_and_denied_queries(clock: FakeClock) -> None:
    gpus = [
        fake_gpu(clock, energy_counter=False),
        fake_gpu(clock, lost_at_s=clock() + 1),
        fake_gpu(clock, denied={"nvmlDeviceGetPowerUsage"}),
    ]
    nvml = make_nvml(clock, *gpus)
    nvml.nvmlInit()
    h0, h1, h2 = (nvml.nvmlDeviceGetHandleByIndex(i) for i in range(3))
    with pytest.raises(fake_nvml_errors.NVMLError_NotSupported):
        nvml.nvmlDeviceGetTotalEnergyConsumption(h0)
    assert nvml.nvmlDeviceGetPowerUsage(h1) == 100_000
    clock.advance(1.0)
    with pytest.raises(fake_nvml_errors.NVMLError_GpuIsLost):
        nvml.nvmlDeviceGetPowerUsage(h1)
    with pytest.raises(fake_nvml_errors.NVMLError_NoPermission):
        nvml.nvmlDeviceGetPowerUsage(h2)


def test_driver_not_loaded(clock: FakeClock) -> None:
    nvml = make_nvml(clock)
    nvml.driver_loaded = False
    with pytest.raises(fake_nvml_errors.NVMLError_DriverNotLoaded):
        nvml.nvmlInit()


def test_every_real_error_class_is_in_the_fake_and_behaves_alike(
    real: object, clock: FakeClock
) -> None:
    names = [n for n in dir(real) if n.startswith("NVMLError_")]
    assert len(names) >= 30
    for name in names:
        real_class, fake_class = getattr(real, name), getattr(fake_nvml_errors, name)
        assert getattr(make_nvml(clock), name) is fake_class
        # pynvml's classes are built without arguments (``raise NVMLError_GpuIsLost()``)
        real_error, fake_error = real_class(), fake_class()
        assert type(fake_error).__name__ == name
        assert fake_error.value == real_error.value
        assert type(NVMLError(fake_error.value)) is fake_class  # what _nvmlCheckReturn raises
        assert fake_error == NVMLError(real_error.value)  # equal by code, as pynvml's
        if real_error.value in real.NVMLError._errcode_to_string:  # type: ignore[attr-defined]
            assert str(fake_error) == str(real_error)


def test_a_function_the_driver_lacks_raises_function_not_found(clock: FakeClock) -> None:
    nvml = FakeNvml([fake_gpu(clock)], clock, missing_functions={"nvmlDeviceGetMigMode"})
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(fake_nvml_errors.NVMLError_FunctionNotFound):
        nvml.nvmlDeviceGetMigMode(handle)


def test_a_mig_enabled_gpu_answers_as_nvml_documents(clock: FakeClock) -> None:
    gpu = fake_gpu(clock, mig_mode=fake_nvml.NVML_DEVICE_MIG_ENABLE)
    for privileged in (True, False):
        nvml = FakeNvml([gpu], clock, privileged=privileged)
        nvml.nvmlInit()
        handle = nvml.nvmlDeviceGetHandleByIndex(0)
        with pytest.raises(fake_nvml_errors.NVMLError_NotSupported):
            nvml.nvmlDeviceGetUtilizationRates(handle)
        if privileged:
            assert nvml.nvmlDeviceGetMemoryInfo(handle).total == gpu.memory_total_bytes
        else:
            with pytest.raises(fake_nvml_errors.NVMLError_NoPermission):
                nvml.nvmlDeviceGetMemoryInfo(handle)
