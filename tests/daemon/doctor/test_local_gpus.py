"""``carbond doctor``'s ``config`` line fails when two local regions claim one GPU of this node
(as ``carbond run`` refuses them), and its ``gpus`` line passes one local region."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.doctor.checks import run_checks

ROOT = Path(__file__).resolve().parents[3]


def _config(tmp_path: Path, regions: str) -> Path:
    config = tmp_path / "carbond.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n[metrics]\nport = 0\n{regions}')
    return config


def _line(tmp_path: Path, regions: str, name: str) -> tuple[str, str]:
    checks = run_checks(_config(tmp_path, regions), datetime.now(UTC))
    [line] = [c for c in checks if c.name == name]
    return line.status, line.detail


def _region(name: str, zone: str, gpus: str, executor: str = "local") -> str:
    return (
        f'[[regions]]\nname = "{name}"\nzone = "{zone}"\nexecutor = "{executor}"\ngpus = {gpus}\n'
    )


def test_the_example_config_gives_this_node_s_gpus_to_one_local_region(tmp_path: Path) -> None:
    """systemd/carbond.example.toml (what install.sh puts in /etc/carbond) declared qc's T4
    and ciso's two RTX 6000 Ada, both local, from CUDA index 0: the daemon would have planned
    three GPUs and run qc's jobs and ciso's first GPU's on this node's GPU 0 at once. It now
    has one local region (regions elsewhere are Slurm partitions), and doctor passes it."""
    status, detail = _example_gpus_line(tmp_path)

    assert (status, detail) == ("pass", "qc (CA-QC, local): 1 declared")


def _example_gpus_line(tmp_path: Path) -> tuple[str, str]:
    example = ROOT / "systemd" / "carbond.example.toml"
    checks = run_checks(example, datetime.now(UTC), state_dir=tmp_path / "state")
    [gpus] = [c for c in checks if c.name == "gpus"]
    return gpus.status, gpus.detail


@pytest.mark.parametrize(
    ("regions", "shared"),
    [
        (_region("a", "CA-QC", '["T4"]') + _region("b", "DE", '["T4", "L4"]'), "GPU 0: a, b"),
        (_region("a", "CA-QC", '"discover"') + _region("b", "DE", '["T4"]'),
         "local regions a (discover: every GPU of this node) and b claim the same GPUs"),
    ],
)  # fmt: skip
def test_local_regions_sharing_a_gpu_fail_the_config_as_carbond_run_refuses_it(
    tmp_path: Path, regions: str, shared: str
) -> None:
    """Doctor's gpus line failed them while ``carbond run`` started them: the config line now
    fails with run's own refusal, at the second region's ``[[regions]]`` line."""
    status, detail = _line(tmp_path, regions, "config")

    text = (tmp_path / "carbond.toml").read_text().splitlines()
    second = text.index('name = "b"')  # b's [[regions]], the line above (1-based)
    assert status == "fail", detail
    assert detail.startswith(f"{tmp_path / 'carbond.toml'}:{second}: regions.b: "), detail
    assert shared in detail
    assert detail.endswith("give each GPU of this node to one local region (a region elsewhere "
                           "runs on slurm)")  # fmt: skip
    assert _line(tmp_path, regions, "gpus") == ("skip", "needs a valid config")


@pytest.mark.parametrize(
    "regions",
    [
        _region("a", "CA-QC", '["T4"]'),
        _region("a", "CA-QC", '["T4", "T4"]'),
        _region("a", "CA-QC", '["T4"]') + _region("b", "DE", '["L4"]', executor="simulated"),
    ],
)
def test_one_local_region_or_others_elsewhere_pass(tmp_path: Path, regions: str) -> None:
    for name in ("config", "gpus"):
        status, detail = _line(tmp_path, regions, name)
        assert status == "pass", detail
