"""Small trace, cluster and intensity files written by the tests themselves; each test's logging
configuration restored after it (the replay CLI configures its own)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog

from daemon.replay.inputs import ReplayInputs

START = datetime(2023, 6, 5, tzinfo=UTC)

CLUSTER = """
[[regions]]
name = "quebec"
zone = "CA-QC"
gpus = [{ type = "T4", count = 2 }]

[[regions]]
name = "california"
zone = "US-CAL-CISO"
pue = 1.1
gpus = [{ type = "RTX6000-Ada", count = 1 }]
"""


def write_azure(path: Path, rows: list[tuple[float, int, int]]) -> Path:
    """An Azure-format CSV with requests at ``rows`` (seconds, context, generated)."""
    base = datetime(2023, 11, 16, 18, 15)
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for offset, n_in, n_out in rows:
        stamp = (base + timedelta(seconds=offset)).strftime("%Y-%m-%d %H:%M:%S.%f") + "0"
        lines.append(f"{stamp},{n_in},{n_out}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_intensity(path: Path, zone: str, values: list[float], start: datetime) -> Path:
    """A portal-style CSV with hourly ``values`` from ``start``."""
    lines = ["Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (LCA)"]
    for i, value in enumerate(values):
        stamp = (start + timedelta(hours=i)).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"{stamp},X,X,{zone},{value}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The replay CLI configures logging for its process; give later tests theirs back."""
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**config)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def cluster_file(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.toml"
    path.write_text(CLUSTER, encoding="utf-8")
    return path


@pytest.fixture
def intensity_files(tmp_path: Path) -> list[Path]:
    """Eleven days from eight days before START: Quebec flat 30, California 400 with a clean
    noon."""
    begin = START - timedelta(days=8)
    ciso = [(100.0 if 10 <= h % 24 < 16 else 400.0) for h in range(11 * 24)]
    return [
        write_intensity(tmp_path / "qc.csv", "CA-QC", [30.0] * len(ciso), begin),
        write_intensity(tmp_path / "ciso.csv", "US-CAL-CISO", ciso, begin),
    ]


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    """A burst of 240 chat requests every 20 minutes of an hour-long trace."""
    rows = [(minute * 60.0 + i, 800, 150) for minute in (0, 20, 40) for i in range(80)]
    return write_azure(tmp_path / "AzureLLMInferenceTrace_conv.csv", rows)


def replay_inputs(
    trace: Path, cluster: Path, intensity: list[Path], days: float = 1.0
) -> ReplayInputs:
    """The replay of ``trace`` on ``cluster`` from START: 64 requests a job of llama-1b, a
    300 s tick, the seasonal forecaster."""
    return ReplayInputs((trace,), "azure", cluster, tuple(intensity), START, days, 64, 1.0,
                        "llama-1b", "vllm", 8, 300, "seasonal-24h")  # fmt: skip
