"""A local region discovering a board the built-in catalog lacks (NVML's "NVIDIA H100 NVL"):
the daemon failed to build its inventory (``unknown GPU 'NVIDIA H100 NVL'``), saying nothing
of how to go on. The error now says how to define it, and a ``[catalog.gpus.NAME]`` table
with ``nvml_names`` makes the daemon discover, price and plan on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.assemble import build_daemon
from daemon.gpu.fake_nvml import FakeGpu, FakeNvml
from daemon.gpu.power_curve import PowerCurve
from daemon.settings import load_settings
from policies.errors import UnknownGpuError
from policies.footprint.gpus import DEFAULT_GPU_CATALOG, GPU_SPEC_FIELDS

_BOARD = "NVIDIA H100 NVL"
_PCIE = DEFAULT_GPU_CATALOG.get("H100-PCIe")


def _config(tmp_path: Path, defined: bool) -> Path:
    text = (f'state_dir = "{tmp_path / "state"}"\n[gpu]\nbackend = "nvml"\n[metrics]\n'
            'port = 0\n[[regions]]\nname = "qc"\nzone = "CA-QC"\nexecutor = "local"\n'
            'gpus = "discover"\n')  # fmt: skip
    if defined:
        text += "[catalog.gpus.H100-NVL]\n" + "".join(
            f"{name} = {json.dumps(getattr(_PCIE, name))}\n" for name in GPU_SPEC_FIELDS
        )
        text += 'tdp_w = 400\nembodied_kg = 31.5\nembodied_method = "vendor"\n'
        text += f"nvml_names = [{json.dumps(_BOARD)}]\n"
        text = text.replace(f"tdp_w = {json.dumps(_PCIE.tdp_w)}\n", "")
    config = tmp_path / "carbond.toml"
    config.write_text(text)
    return config


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    gpus = [FakeGpu(PowerCurve(0.0, 60.0), name=_BOARD), FakeGpu(PowerCurve(0.0, 60.0))]
    fake = FakeNvml(gpus, lambda: 1.0)
    monkeypatch.setattr("daemon.gpu.nvml.load_pynvml", lambda: fake)
    return fake


def test_an_undefined_board_says_how_to_define_it(tmp_path: Path, nvml: FakeNvml) -> None:
    settings = load_settings(_config(tmp_path, defined=False))
    with pytest.raises(UnknownGpuError) as info:
        build_daemon(settings, gpu_clock=lambda: 1.0)
    message = str(info.value)
    assert message.startswith(f"unknown GPU {_BOARD!r} (known: T4, ")
    assert f'nvml_names = ["{_BOARD}"]' in message and "docs/gpus.md" in message


def test_a_defined_board_is_discovered_priced_and_planned(tmp_path: Path, nvml: FakeNvml) -> None:
    settings = load_settings(_config(tmp_path, defined=True))
    daemon = build_daemon(settings, gpu_clock=lambda: 1.0)
    try:
        devices = [gpu.device for gpu in daemon.service.inventory]
        assert [(d.device_id, d.gpu.name) for d in devices] == [
            ("qc/0", "H100-NVL"), ("qc/1", "A100-80GB"),
        ]  # fmt: skip
        nvl = devices[0].gpu
        assert (nvl.tdp_w, nvl.embodied_kg, nvl.embodied_method) == (400.0, 31.5, "vendor")
        assert daemon.service.catalog.get(_BOARD) is nvl
    finally:
        daemon.close()
