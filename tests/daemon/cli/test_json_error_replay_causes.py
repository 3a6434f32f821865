"""A replay's errors that wrap another, or are about one option, zone or ledger job, under
``--json``: the document carries what the message names (until 2026-12-07 a ledger's errors,
intensity coverage and ``--truth-factor``/``--duration-noise`` were ``"file": null``,
``"field": null`` and named their job or zone in words only)."""

from __future__ import annotations

import json
import pickle
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon.cli import main
from daemon.ledger import Ledger
from daemon.queue import JobRequest, parse_line
from daemon.replay.errors import ReplayInputError

_START = datetime(2023, 6, 5, tzinfo=UTC)
_CLUSTER = '[[regions]]\nname = "quebec"\nzone = "CA-QC"\ngpus = [{ type = "T4", count = 2 }]\n'
_AZURE = "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:00.0000000,10,10\n"
_PORTAL = "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (LCA)\n"


def _intensity(path: Path, hours: int, start: datetime) -> Path:
    rows = [f"{start + timedelta(hours=h):%Y-%m-%d %H:%M:%S},X,X,CA-QC,{100 + h % 24}\n"
            for h in range(hours)]  # fmt: skip
    path.write_text(_PORTAL + "".join(rows), encoding="utf-8")
    return path


def _replay_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, *extra: str, jobs: Path | None = None,
    intensity: Path | None = None,
) -> dict[str, Any]:  # fmt: skip
    cluster = tmp_path / "cluster.toml"
    cluster.write_text(_CLUSTER, encoding="utf-8")
    if intensity is None:
        intensity = _intensity(tmp_path / "i.csv", 24 * 30, _START - timedelta(days=10))
    if jobs is None:
        jobs = tmp_path / "jobs.csv"
        jobs.write_text(_AZURE, encoding="utf-8")
    fmt = "ledger" if jobs.suffix == ".db" else "azure"
    argv = ["replay", "--jobs", str(jobs), "--jobs-format", fmt, "--cluster", str(cluster),
            "--intensity", str(intensity), "--start", "2023-06-05", "--policy", "run-now",
            "--json", *extra]  # fmt: skip
    code = main(argv)
    out, err = capsys.readouterr()
    error: dict[str, Any] = json.loads(out)["error"]
    assert (code, error["exit_code"], error["kind"]) == (2, 2, "replay_input")
    assert err == f"carbond: error: {error['message']}\n"
    return error


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--truth-factor", "0", "--truth-factor must be > 0 and <= 100, got 0"),
     ("--truth-factor", "nan", "--truth-factor must be > 0 and <= 100, got nan"),
     ("--duration-noise", "5", "--duration-noise must be from 0 to 3, got 5")],
)  # fmt: skip
def test_an_option_out_of_range_is_the_field_and_the_message_names_it_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, message: str
) -> None:
    """Was one message naming both options, whichever was wrong, and ``"field": null``."""
    error = _replay_error(capsys, tmp_path, option, value)
    assert (error["message"], error["field"], error["file"]) == (message, option, None)


def test_intensity_that_does_not_cover_the_replay_names_its_zone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    short = _intensity(tmp_path / "short.csv", 24, _START)
    error = _replay_error(capsys, tmp_path, intensity=short)
    assert error["message"].startswith("intensity for CA-QC covers 2023-06-05 00:00 to ")
    assert (error["zone"], error["field"]) == ("CA-QC", "--intensity")


def test_a_ledger_that_cannot_be_read_is_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = tmp_path / "ledger.db"
    ledger.write_bytes(b"not a database " * 100)
    error = _replay_error(capsys, tmp_path, jobs=ledger)
    assert error["message"] == f"{ledger}: cannot read the ledger: file is not a database"
    assert (error["file"], error["line"], error["field"]) == (str(ledger), None, None)


def _ledger_job(path: Path, model: str) -> Path:
    """A ledger at ``path`` of one job, "j1", whose model the catalog names ``model`` now."""
    at = _START + timedelta(days=200)
    line = {"id": "j1", "command": ["x"], "model": "llama-1b", "input_tokens": 5,
            "output_tokens": 5}  # fmt: skip
    request = parse_line(json.dumps(line), at)
    assert isinstance(request, JobRequest)
    with Ledger.open(path) as ledger:
        ledger.add_job(request, 1000, 1000, "queue.jsonl", at)
    with sqlite3.connect(path) as db:  # a catalog that no longer has the model
        db.execute("UPDATE jobs SET spec_json = json_set(spec_json, '$.model', ?)", (model,))
    db.close()
    return path


def test_a_ledger_job_no_longer_valid_names_the_job_and_its_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = _ledger_job(tmp_path / "ledger.db", "gone-model")
    error = _replay_error(capsys, tmp_path, jobs=ledger)
    assert error["message"].startswith(f"{ledger}: job j1: ")
    assert (error["file"], error["job_id"]) == (str(ledger), "j1")
    assert (error["cause"]["kind"], error["cause"]["name"]) == ("unknown_model", "gone-model")


def test_zone_and_job_id_survive_pickling_and_keep_the_message() -> None:
    """A replay worker's error reaches the parent process pickled."""
    error = ReplayInputError("bad", file="l.db", zone="CA-QC", job_id="j1")
    again = pickle.loads(pickle.dumps(error))
    assert (str(again), again.file, again.zone, again.job_id) == (
        "l.db: bad",
        "l.db",
        "CA-QC",
        "j1",
    )
