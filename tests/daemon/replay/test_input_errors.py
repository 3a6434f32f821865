"""``carbond replay``'s errors about its options and inputs name the option or file to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.cli import main


def _replay(trace: Path, cluster: Path, intensity: list[Path], *extra: str) -> list[str]:
    args = ["replay", "--jobs", str(trace), "--jobs-format", "azure", "--cluster", str(cluster)]
    for path in intensity:
        args += ["--intensity", str(path)]
    return [*args, "--start", "2023-06-05", "--days", "0.1", *extra]


@pytest.mark.parametrize(("option", "what"), [("--model", "model"), ("--runtime", "runtime")])
def test_an_unknown_model_or_runtime_names_its_option(
    trace: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str], option: str, what: str,
) -> None:  # fmt: skip
    """``--model nope`` said "unknown model 'nope' (known: ...)", naming no option."""
    assert main(_replay(trace, cluster_file, intensity_files, option, "nope")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"carbond: error: {option} nope: unknown {what}")


def test_a_zone_without_intensity_names_its_regions_and_the_cluster_file(
    trace: Path, cluster_file: Path, intensity_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The error named the zone and the --intensity files, not which region of which cluster
    file needs it (to drop the region, or fix a mistyped zone, in that file)."""
    text = cluster_file.read_text(encoding="utf-8")
    text += (
        '\n[[regions]]\nname = "la"\nzone = "US-CAL-CISO"\ngpus = [{ type = "T4", count = 1 }]\n'
    )
    cluster_file.write_text(text.replace('zone = "CA-QC"', 'zone = "CA-QX"'), encoding="utf-8")
    assert main(_replay(trace, cluster_file, intensity_files[:1])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "carbond: error: no intensity for zone(s) CA-QX (region quebec), US-CAL-CISO (regions "
        f"california, la) of cluster file {cluster_file} in the --intensity files (found: CA-QC)"
    ]
