"""bench_bound on a small day: it prints both bounds, and the windowed one with the dual is at
least the windows' sum and at most the one LP."""

from __future__ import annotations

import pytest

from bench import bench_bound


def test_bench_bound_prints_both_ways_and_the_dual_tightens_the_windows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    one, split = bench_bound.main(["--jobs", "300", "--window", "3600"])
    out = capsys.readouterr().out
    assert "one LP (HiGHS)" in out and "of the one LP" in out
    assert split.windows > 1 and split.windows_g is not None and split.dual_g is not None
    assert split.windows_g <= split.total_g == max(split.windows_g, split.dual_g)
    assert one.windows == 1 and split.total_g <= one.total_g * (1 + 1e-9)
