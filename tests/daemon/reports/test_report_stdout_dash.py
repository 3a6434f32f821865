"""``carbond report -o -`` writes the report to stdout, as ``carbond export ... -`` does (until
2026-12-07 it wrote a file named ``-``); ``-o ./-`` is a file named ``-``. ``--plot -`` is
refused: a figure is written to a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.daemon.reports.conftest import Run

_UNTIL = ["--until", "2099-01-01"]  # the same period in both runs: "until" is in the report


@pytest.mark.parametrize(
    "flags", [["--format", "csv"], ["--json"], ["--format", "md"], [], ["--audit"]]
)
def test_output_dash_is_stdout(
    demo_state: Path, carbond: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    base = ["report", "--state-dir", str(demo_state), *_UNTIL, *flags]
    expected = carbond(*base)

    assert carbond(*base, "-o", "-") == expected
    assert carbond(*base, "--output=-") == expected
    assert expected and not (tmp_path / "-").exists()


def test_output_dot_slash_dash_is_a_file_named_dash(
    demo_state: Path, carbond: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    base = ["report", "--state-dir", str(demo_state), *_UNTIL, "--format", "csv"]
    assert carbond(*base, "-o", "./-") == ""
    assert (tmp_path / "-").read_text() == carbond(*base)


def test_plot_dash_is_refused(
    demo_state: Path, carbond: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    err = carbond("report", "--state-dir", str(demo_state), "--plot", "-", code=2)
    assert err == (
        "carbond: error: --plot -: a figure cannot go to stdout: name a file (./- for one "
        "named -)\n"
    )
    assert not (tmp_path / "-").exists()
