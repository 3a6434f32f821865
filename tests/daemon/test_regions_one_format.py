"""One ``[[regions]]`` format: the daemon reads a replay cluster file and ``carbond replay
--cluster`` reads the daemon's config (issue 14, item 11)."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.replay.cluster import load_cluster
from daemon.replay.errors import ReplayInputError
from daemon.settings import ConfigError, load_settings

REPO = Path(__file__).resolve().parents[2]

DAEMON_CONFIG = """
state_dir = "{state}"

[policy]
name = "carbon-window"

[intervals]
plan_s = 60

[[regions]]
name = "qc"
zone = "CA-QC"
executor = "local"
gpus = ["T4", "t4"]

[[regions]]
name = "ciso"
zone = "US-CAL-CISO"
pue = 1.2
gpus = [{{ type = "RTX6000-Ada", count = 2 }}, "A100-80GB"]
"""


def test_the_daemon_reads_a_replay_cluster_file(tmp_path: Path) -> None:
    settings = load_settings(REPO / "examples" / "cluster-paper.toml", state_dir=tmp_path)
    by_name = {r.name: r for r in settings.regions}
    assert by_name["quebec"].gpus == ("T4",) * 4
    assert by_name["california"].gpus == ("RTX6000-Ada",) * 2
    assert by_name["pace"].zone == "US-NW-PACE"


def test_replay_reads_the_daemons_config(tmp_path: Path) -> None:
    config = tmp_path / "carbond.toml"
    config.write_text(DAEMON_CONFIG.format(state=tmp_path), encoding="utf-8")
    cluster = load_cluster(config)
    assert [r.name for r in cluster.regions] == ["qc", "ciso"]
    assert [(spec.name, n) for spec, n in cluster.regions[1].gpus] == [
        ("RTX6000-Ada", 2),
        ("A100-80GB", 1),
    ]
    assert [d.device_id for d in cluster.devices()][-3:] == ["ciso/0", "ciso/1", "ciso/2"]
    assert cluster.devices()[-1].pue == 1.2
    # ... and the daemon reads the same file into the same GPUs, in the same order
    settings = load_settings(config)
    assert settings.regions[1].gpus == ("RTX6000-Ada", "RTX6000-Ada", "A100-80GB")


def test_replay_refuses_a_region_that_discovers_its_gpus(tmp_path: Path) -> None:
    config = tmp_path / "carbond.toml"
    config.write_text('[[regions]]\nname = "a"\nzone = "DE"\ngpus = "discover"\n')
    with pytest.raises(ReplayInputError, match=r"regions\.a\.gpus: .*declared"):
        load_cluster(config)


@pytest.mark.parametrize(
    ("gpus", "message"),
    [
        ("[{ type = 'T4', count = 0 }]", r"regions\.a\.gpus: entry 0: count"),
        ("['T4', { type = 'T4' }]", r"regions\.a\.gpus: entry 1: count: Field required"),
        ("[{ type = 'T4', count = 1, colour = 'red' }]", r"entry 0: colour"),
        ("[{ type = 'Z9', count = 1 }]", "Z9"),
    ],
)
def test_a_bad_gpu_table_names_its_entry_and_field(tmp_path: Path, gpus: str, message: str) -> None:
    config = tmp_path / "carbond.toml"
    config.write_text(f'[[regions]]\nname = "a"\nzone = "DE"\ngpus = {gpus}\n')
    with pytest.raises(ConfigError, match=message):
        load_settings(config)
    with pytest.raises(ReplayInputError, match=message):
        load_cluster(config)
