"""A bad replay input or PV CSV under ``--json``: the error document carries the file, line and
field the message names (``ReplayInputError`` and ``SolarInputError`` had them in words only,
``"file": null``), and the errors a wrapped one was raised from as ``cause``."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from daemon.cli import main
from daemon.replay.errors import ReplayInputError
from forecasts.errors import SolarInputError

_CLUSTER = '[[regions]]\nname = "quebec"\nzone = "CA-QC"\ngpus = [{ type = "T4", count = 2 }]\n'
_AZURE = "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:00.0000000,10,10\n"
_PORTAL = "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (LCA)\n"
_COLUMN = "Carbon Intensity gCO₂eq/kWh (LCA)"


def _inputs(tmp_path: Path, **texts: str) -> dict[str, Path]:
    """Good replay inputs (``jobs``, ``cluster``, ``intensity``, ``pv``), those in ``texts``
    written instead."""
    files = {
        "jobs": ("jobs.csv", _AZURE),
        "cluster": ("cluster.toml", _CLUSTER),
        "intensity": ("intensity.csv", _PORTAL + "2023-06-05 00:00:00,X,X,CA-QC,10\n"
                      "2023-06-05 01:00:00,X,X,CA-QC,12\n"),
        "pv": ("pv.csv", "datetime,power_w\n2023-06-05T00:00Z,10\n2023-06-05T01:00Z,20\n"),
    }  # fmt: skip
    paths = {}
    for key, (name, text) in files.items():
        paths[key] = tmp_path / name
        paths[key].write_text(texts.get(key, text), encoding="utf-8")
    return paths


def _replay_error(
    capsys: pytest.CaptureFixture[str], paths: dict[str, Path], *extra: str
) -> dict[str, Any]:
    argv = ["replay", "--jobs", str(paths["jobs"]), "--jobs-format", "azure",
            "--cluster", str(paths["cluster"]), "--intensity", str(paths["intensity"]),
            "--start", "2023-06-05", "--policy", "run-now", "--json", *extra]  # fmt: skip
    code = main(argv)
    out, err = capsys.readouterr()
    error: dict[str, Any] = json.loads(out)["error"]
    assert (code, error["exit_code"], error["kind"]) == (2, 2, "replay_input")
    assert err == f"carbond: error: {error['message']}\n"
    return error


def _where(error: dict[str, Any]) -> tuple[object, object, object]:
    return error["file"], error["line"], error["field"]


def test_an_option_is_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    error = _replay_error(capsys, _inputs(tmp_path), "--days", "0")
    assert error["message"] == "--days must be > 0 and finite, got 0"
    assert _where(error) == (None, None, "--days")


def test_a_request_trace_names_file_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = "TIMESTAMP,ContextTokens,GeneratedTokens,ContextTokens\n"
    paths = _inputs(tmp_path, jobs=jobs + "2023-11-16 18:15:00.0000000,10,10,3\n")
    error = _replay_error(capsys, paths)
    assert error["message"] == f"{paths['jobs']}:1: column ContextTokens given twice in the header"
    assert _where(error) == (str(paths["jobs"]), 1, "ContextTokens")


def test_a_cluster_file_names_file_line_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _inputs(tmp_path, cluster=_CLUSTER.replace('{ type = "T4", count = 2 }', '"NOPE"'))
    error = _replay_error(capsys, paths)
    assert error["message"].startswith(f"{paths['cluster']}:4: regions.quebec.gpus: unknown GPU")
    assert _where(error) == (str(paths["cluster"]), 4, "regions.quebec.gpus")


def test_an_intensity_trace_names_file_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _inputs(tmp_path, intensity=_PORTAL + "2023-06-05 00:00:00,X,X,CA-QC,abc\n")
    error = _replay_error(capsys, paths)
    assert error["message"] == f"{paths['intensity']}:2: column {_COLUMN!r}: not a number: 'abc'"
    assert _where(error) == (str(paths["intensity"]), 2, _COLUMN)
    # its cause, the TraceFormatError, says the same file, line and field: left out (until
    # 2026-12-07 repeated as "cause": {"kind": "trace_format", ...})
    assert "cause" not in error


def test_a_bad_pv_csv_is_the_cause_of_its_cluster_files_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pv = "datetime,power_w\n2023-06-05T00:00Z,10\n2023-06-05T01:00Z,-5\n"
    paths = _inputs(tmp_path, cluster=_CLUSTER + '[regions.site]\npv_csv = "pv.csv"\n', pv=pv)
    error = _replay_error(capsys, paths)
    said = f"{paths['pv']}:3: power_w: not a number from 0 to 10,000,000,000 W: '-5'"
    assert error["message"] == f"{paths['cluster']}:6: regions.quebec.site.pv_csv: {said}"
    assert _where(error) == (str(paths["cluster"]), 6, "regions.quebec.site.pv_csv")
    site = error["cause"]
    assert (site["kind"], site["region"], site["field"]) == ("site_config", "quebec", "site.pv_csv")
    assert site["cause"] == {"kind": "solar_input", "file": str(paths["pv"]), "line": 3,
                             "field": "power_w"}  # fmt: skip


@pytest.mark.parametrize(
    ("parts", "message"),
    [({"file": "t.csv", "line": 3, "field": "x"}, "t.csv:3: bad"),
     ({"file": Path("t.csv")}, "t.csv: bad"),
     ({"field": "--days"}, "bad"),
     ({}, "bad")],
)  # fmt: skip
@pytest.mark.parametrize("error_class", [ReplayInputError, SolarInputError])
def test_the_message_is_composed_of_the_parts_and_survives_pickling(
    error_class: type[ReplayInputError | SolarInputError],
    parts: dict[str, Any],
    message: str,
) -> None:
    """Pickled too: a replay worker's error reaches the parent process so."""
    error = error_class("bad", **parts)
    for one in (error, pickle.loads(pickle.dumps(error))):
        assert str(one) == message
        file = parts.get("file")
        expected = (None if file is None else str(file), parts.get("line"), parts.get("field"))
        assert (one.file, one.line, one.field, one.problem) == (*expected, "bad")
