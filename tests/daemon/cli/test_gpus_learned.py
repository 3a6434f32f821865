"""``carbond gpus --learned``: the recalibration factors a restart would fold from the ledger
(its checkpoint plus the runs since, or every run), per (model, GPU type), read-only: while the
daemon holds the ledger and after it stopped, on an empty ledger, as JSON and as a table."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon.cli import gpus_learned, main
from daemon.learning.checkpoint import restore
from daemon.ledger import Ledger
from tests.daemon.learning.measured_runs import CONFIG as FOLD_CONFIG
from tests.daemon.learning.measured_runs import (
    INVENTORY,
    T0,
    fold_from_scratch,
    record_run,
    sample_run,
)

ROOT = Path(__file__).resolve().parents[3]
CONFIG = """
[recalibration]
min_samples = 2
min_measured_s = 0

[[regions]]
name = "qc"
zone = "CA-QC"
executor = "local"
gpus = ["A100-80GB", "T4"]
"""


@pytest.fixture(autouse=True)
def _no_site_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CARBOND_CONFIG", raising=False)
    monkeypatch.setattr("daemon.settings.DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "carbond.toml"
    path.write_text(CONFIG)
    return path


def _learned(capsys: pytest.CaptureFixture[str], config: Path, state: Path) -> dict[str, Any]:
    args = ["gpus", "--learned", "--config", str(config), "--state-dir", str(state), "--json"]
    assert main(args) == 0
    payload: dict[str, Any] = json.loads(capsys.readouterr().out)
    return payload


def _expected(ledger: Ledger) -> list[dict[str, object]]:
    """Every key a fold of every measured run from scratch learns, each (model, GPU type)
    before its runtimes and precisions (the test module's inventory and thresholds are this
    config's)."""
    learned, _ = fold_from_scratch(ledger)
    rows = []
    for f in learned.factors.values():
        level = learned.level(f.model, f.gpu, f.runtime, f.precision)
        rows.append({
            "model": f.model, "gpu": f.gpu, "runtime": f.runtime or None,
            "precision": f.precision or None, "energy_factor": f.energy_factor,
            "duration_factor": f.duration_factor, "samples": f.samples,
            "measured_s": f.measured_s, "in_use": learned.in_use(*f.key),
            "uses": "none" if level is None else "coarse" if level.coarse else "fine",
        })  # fmt: skip
    return sorted(rows, key=lambda row: (str(row["model"]).lower(), str(row["gpu"]).lower(),
                                         row["runtime"] is not None, str(row["runtime"]),
                                         str(row["precision"])))  # fmt: skip


def _coarse(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The (model, GPU type) rows of ``payload``'s factors."""
    return [r for r in payload["factors"] if r["runtime"] is None and r["precision"] is None]


def test_the_factors_a_restart_would_fold_while_the_daemon_holds_the_ledger(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    ledger = Ledger.open(state / "ledger.db")  # the daemon's, open (with its WAL) throughout
    for n in range(9):
        record_run(ledger, f"j{n}", sample_run(n))
    record_run(ledger, "elsewhere", sample_run(9, gpu="H100"))  # a type no region has: not folded
    payload = _learned(capsys, config, state)
    assert payload["factors"] == _expected(ledger)
    assert [(r["model"], r["gpu"], r["runtime"], r["precision"], r["samples"], r["uses"])
            for r in payload["factors"]] == [
        ("llama-3.1-8b", "A100-80GB", None, None, 3, "coarse"),
        ("llama-3.1-8b", "A100-80GB", "hf-eager", "fp16", 3, "fine"),
        ("llama-3.2-1b", "A100-80GB", None, None, 3, "coarse"),
        ("llama-3.2-1b", "A100-80GB", "hf-eager", "fp16", 3, "fine"),
        ("llama-3.2-3b", "A100-80GB", None, None, 3, "coarse"),
        ("llama-3.2-3b", "A100-80GB", "hf-eager", "fp16", 3, "fine"),
    ]  # fmt: skip
    assert {k: payload[k] for k in ("min_samples", "min_measured_s", "runs", "measured_rows",
                                    "from_checkpoint", "checkpoint_discarded")} == {
        "min_samples": 2, "min_measured_s": 0.0, "runs": 9, "measured_rows": 10,
        "from_checkpoint": False, "checkpoint_discarded": None,
    }  # fmt: skip
    assert ledger.recalibration_checkpoint() is None  # read-only: nothing written

    # the daemon restarts (checkpoint), then learns more: the checkpoint plus the runs since
    restore(ledger, INVENTORY, FOLD_CONFIG, T0 + timedelta(hours=1))
    stored = ledger.recalibration_checkpoint()
    assert stored is not None
    for n in range(10, 14):
        record_run(ledger, f"j{n}", sample_run(n, minute=60 + n))
    payload = _learned(capsys, config, state)
    assert payload["from_checkpoint"] is True
    assert payload["runs"] == 13
    assert payload["factors"] == _expected(ledger)
    assert ledger.recalibration_checkpoint() == stored  # not moved on by the CLI
    ledger.close()

    # after it stopped (no WAL: the file opened immutable), and as a table
    assert main(["gpus", "--learned", "--config", str(config), "--state-dir", str(state)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("13 of 14 measured rows taught the factors; factors in use from 2 "
                          "samples covering 0 s\n")  # fmt: skip
    assert "| llama-3.2-1b | A100-80GB | *        | *         | 3.211         | 2.118 " in out
    assert "| llama-3.2-1b | A100-80GB | hf-eager | fp16      | 3.211         | 2.118 " in out


def test_in_use_follows_the_configured_thresholds(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    with Ledger.open(state / "ledger.db") as ledger:
        for n in range(4):
            record_run(ledger, f"j{n}", sample_run(n))
    config.write_text(CONFIG.replace("min_samples = 2", "min_samples = 3"))
    assert all(row["in_use"] is False for row in _learned(capsys, config, state)["factors"])
    assert {row["uses"] for row in _learned(capsys, config, state)["factors"]} == {"none"}
    config.write_text(CONFIG)
    rows = _coarse(_learned(capsys, config, state))
    assert [(r["samples"], r["in_use"]) for r in rows] == [(2, True), (1, False), (1, False)]


def test_runs_counts_only_the_runs_that_taught(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a meter that read 0 J: the recalibration rejects the run, which taught nothing, yet
    # 'runs' counted it, from scratch and from the checkpoint
    state = tmp_path / "state"
    state.mkdir()
    with Ledger.open(state / "ledger.db") as ledger:
        for n in range(6):
            record_run(
                ledger, f"j{n}", sample_run(n) if n % 3 else replace(sample_run(n), energy_j=0.0)
            )
        payload = _learned(capsys, config, state)
        assert payload["runs"] == sum(r["samples"] for r in _coarse(payload)) == 4
        assert payload["measured_rows"] == 6
        restore(ledger, INVENTORY, FOLD_CONFIG, T0 + timedelta(hours=1))
        record_run(ledger, "j6", replace(sample_run(6, minute=70), energy_j=0.0))
        record_run(ledger, "j7", sample_run(7, minute=71))
        payload = _learned(capsys, config, state)
        assert payload["from_checkpoint"] is True
        assert payload["runs"] == sum(r["samples"] for r in _coarse(payload)) == 5


def test_an_empty_ledger_has_learned_nothing(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    Ledger.open(state / "ledger.db").close()
    payload = _learned(capsys, config, state)
    assert (payload["factors"], payload["runs"], payload["measured_rows"]) == ([], 0, 0)
    assert main(["gpus", "--learned", "--config", str(config), "--state-dir", str(state)]) == 0
    assert capsys.readouterr().out == (
        "0 of 0 measured rows taught the factors; factors in use"
        " from 2 samples covering 0 s\nnothing learned\n"
    )


def test_no_ledger_is_one_line_and_exit_2(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gpus", "--learned", "--config", str(config), "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("carbond: error: ") and "no ledger" in err
    with pytest.raises(SystemExit):
        main(["gpus", "--learned", "--live"])  # one or the other


def test_each_runtime_and_precision_shows_the_level_it_uses(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the 8B model on A100s eagerly three times, once with vLLM: vLLM's estimates use the
    # pair's factors until its own have min_samples (2 here) runs
    state = tmp_path / "state"
    state.mkdir()
    with Ledger.open(state / "ledger.db") as ledger:
        for n in (0, 3, 6):
            record_run(ledger, f"j{n}", sample_run(n))
        record_run(ledger, "v", replace(sample_run(9), runtime="vllm"))
        payload = _learned(capsys, config, state)
        assert payload["factors"] == _expected(ledger)
    rows = [(r["runtime"], r["precision"], r["samples"], r["in_use"], r["uses"])
            for r in payload["factors"]]  # fmt: skip
    assert rows == [(None, None, 4, True, "coarse"), ("hf-eager", "fp16", 3, True, "fine"),
                    ("vllm", "fp16", 1, False, "coarse")]  # fmt: skip
    assert main(["gpus", "--learned", "--config", str(config), "--state-dir", str(state)]) == 0
    table = capsys.readouterr().out
    assert "| model        | gpu       | runtime  | precision | energy_factor |" in table
    assert "| no     | coarse |" in table.splitlines()[-2]  # the vLLM row, last


_DAEMON_STARTS = """
import sys
from pathlib import Path
from daemon.ledger import Ledger
with Ledger.open(Path(sys.argv[1])) as ledger, ledger.transaction():
    ledger._exec("CREATE TABLE daemon_wrote (n INTEGER)")
"""


def test_a_daemon_starting_during_the_gpus_discovery_spoils_no_read(
    tmp_path: Path,
    config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ledger was opened (without locks: no daemon ran) before the GPUs were discovered
    (NVML, Slurm: seconds), so a daemon that started and wrote it meanwhile failed the
    command ("the daemon started and wrote the ledger while this command read it") though
    nothing had been read yet. It is opened once they are."""
    state = tmp_path / "state"
    state.mkdir()
    Ledger.open(state / "ledger.db").close()
    discover = gpus_learned._inventory

    def slow_discovery(settings: Any) -> Any:  # a real second process writes the ledger
        subprocess.run([sys.executable, "-c", _DAEMON_STARTS, str(state / "ledger.db")],
                       check=True, cwd=ROOT)  # fmt: skip
        return discover(settings)

    monkeypatch.setattr(gpus_learned, "_inventory", slow_discovery)
    payload = _learned(capsys, config, state)  # was: exit 1, the line above
    assert (payload["factors"], payload["runs"]) == ([], 0)
