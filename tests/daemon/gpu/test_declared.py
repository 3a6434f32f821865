"""One judgement of a declared local GPU against NVML (:func:`daemon.gpu.declared.check_declared`),
phrased by ``carbond doctor``'s ``nvml`` line and by the daemon at start and reload: they agree
on every kind. Until 2026-12-07 each judged on its own, and a board the catalog lacks (an
``NVIDIA H100 NVL`` where ``H100`` is declared) failed doctor while the daemon planned on it."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from daemon.gpu import fake_nvml
from daemon.gpu.backend import GpuDevice
from daemon.gpu.configured import describe_configured_gpus
from daemon.gpu.declared import MismatchKind, check_declared
from daemon.gpu.fake_nvml import FakeGpu, FakeNvml
from daemon.gpu.nvml import NvmlBackend
from daemon.inventory import build_inventory
from daemon.measurement.start import declared_unusable
from daemon.settings import RegionSettings, Settings
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.gpu.conftest import FakeClock, fake_gpu

_MIG = fake_nvml.NVML_DEVICE_MIG_ENABLE


def _devices(nvml: FakeNvml) -> tuple[GpuDevice, ...]:
    backend = NvmlBackend(nvml)
    backend.start()
    try:
        return tuple(backend.devices())
    finally:
        backend.close()


def _boards(clock: FakeClock, boards: list[tuple[str, bool]]) -> list[FakeGpu]:
    return [fake_gpu(clock, name=name, mig_mode=_MIG if mig else None) for name, mig in boards]


@pytest.mark.parametrize(
    ("declared", "boards", "kind"),
    [
        ("A100-80GB", [("NVIDIA A100-SXM4-80GB", False)], None),
        ("H100", [("NVIDIA H100 80GB HBM3", False)], None),  # an alias of H100-SXM
        ("A100-80GB", [], MismatchKind.ABSENT),
        ("A100-80GB", [("NVIDIA L4", False)], MismatchKind.OTHER_TYPE),
        ("A100-80GB", [("NVIDIA A100-SXM4-80GB", True)], MismatchKind.MIG),
        ("H100", [("NVIDIA H100 NVL", False)], MismatchKind.UNKNOWN_BOARD),
        # another type in MIG mode: the type is what to correct first
        ("A100-80GB", [("NVIDIA L4", True)], MismatchKind.OTHER_TYPE),
        # a board the catalog lacks in MIG mode: refused for its MIG mode
        ("H100", [("NVIDIA H100 NVL", True)], MismatchKind.MIG),
    ],
    ids=[
        "match",
        "alias",
        "absent",
        "other-type",
        "mig",
        "unknown-board",
        "other-type-mig",
        "unknown-board-mig",
    ],
)
def test_doctor_and_the_daemon_agree_on_each_kind(
    clock: FakeClock, declared: str, boards: list[tuple[str, bool]], kind: MismatchKind | None
) -> None:
    region = RegionSettings(name="qc", zone="CA-QC", executor="local", gpus=(declared,))
    catalog = DEFAULT_GPU_CATALOG
    devices = _devices(FakeNvml(_boards(clock, boards), clock))
    mismatch = check_declared(0, declared, devices, catalog)
    assert (mismatch.kind if mismatch is not None else None) is kind
    refuses = kind is not None and kind.refused

    status, detail = describe_configured_gpus(
        Settings(regions=(region,)), catalog, nvml_module=FakeNvml(_boards(clock, boards), clock)
    )
    inventory = build_inventory((region,), catalog)
    with capture_logs() as events:
        refused = declared_unusable(inventory, devices, catalog)

    assert (status == "fail") is refuses, detail
    assert ("qc/0" in refused) is refuses, refused
    assert any(e["event"] == "gpu_declared_unusable" for e in events) is refuses
    noted = [e for e in events if e["event"] == "gpu_declared_not_in_catalog"]
    if kind is MismatchKind.UNKNOWN_BOARD:
        # both say it is planned on as the declared type and how to define the board
        [event] = noted
        assert (event["device_id"], event["gpu"], event["log_level"]) == ("qc/0", 0, "warning")
        for said in (detail, event["reason"]):
            assert "NVIDIA H100 NVL" in said and "planned on as H100-SXM" in said
            assert 'nvml_names = ["NVIDIA H100 NVL"]' in said
        assert "; note: qc declares H100 at index 0, NVML has NVIDIA H100 NVL" in detail
    else:
        assert not noted


def test_an_nvml_names_entry_makes_the_board_the_declared_type(clock: FakeClock) -> None:
    """The fix both sides name: once the board is an ``nvml_names`` of the declared type, it
    matches, and neither doctor nor the daemon says anything of it."""
    catalog = DEFAULT_GPU_CATALOG.with_overrides({"H100-SXM": {"nvml_names": ("NVIDIA H100 NVL",)}})
    devices = _devices(FakeNvml(_boards(clock, [("NVIDIA H100 NVL", False)]), clock))
    assert check_declared(0, "H100", devices, catalog) is None
    region = RegionSettings(name="qc", zone="CA-QC", executor="local", gpus=("H100",))
    status, detail = describe_configured_gpus(
        Settings(regions=(region,)),
        catalog,
        nvml_module=FakeNvml(_boards(clock, [("NVIDIA H100 NVL", False)]), clock),
    )
    assert status == "pass" and "note" not in detail
