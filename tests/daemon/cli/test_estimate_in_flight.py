"""`carbond estimate` on a continuous-batching engine says how many requests run at once.

Llama 3.1 8B on a V100 at batch 512 printed "fits": true, "batch_size": 512 and
"memory_required_gb": 37.1 beside "memory_available_gb": 28.8: vLLM admits only the requests
whose KV cache fits (249) and queues the rest, which the estimate priced but did not say.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.daemon.cli.cli_run import run_cli

V100_512 = ("estimate", "--model", "llama-3.1-8b", "--gpu", "v100", "--runtime", "vllm",
            "--precision", "bf16", "--batch-size", "512", "--input-tokens", "250",
            "--output-tokens", "250", "--zone", "CA-QC")  # fmt: skip


@pytest.fixture(autouse=True)
def _no_site_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CARBOND_CONFIG", raising=False)
    monkeypatch.setattr("daemon.settings.DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")


def test_json_gives_the_admitted_concurrency_and_memory_within_the_gpus(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_cli(capsys, *V100_512, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["fits"] is True
    assert data["batch_size"] == 512
    assert 1 <= data["batch_in_flight"] < 512
    assert data["memory_required_gb"] <= data["memory_available_gb"]


def test_the_table_title_says_how_many_run_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, *V100_512, "--json")
    assert code == 0
    in_flight = json.loads(out)["batch_in_flight"]
    code, out, _ = run_cli(capsys, *V100_512)
    assert code == 0
    assert f"batch 512 ({in_flight} in flight)" in out.splitlines()[0]


def test_a_batch_that_all_fits_prints_no_in_flight_note(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_cli(capsys, "estimate", "--model", "llama-1b", "--gpu", "t4",
                           "--batch-size", "8", "--zone", "CA-QC", "--json")  # fmt: skip
    assert code == 0
    assert json.loads(out)["batch_in_flight"] == 8
    code, out, _ = run_cli(capsys, "estimate", "--model", "llama-1b", "--gpu", "t4",
                           "--batch-size", "8", "--zone", "CA-QC")  # fmt: skip
    assert code == 0
    assert "in flight" not in out.splitlines()[0]
