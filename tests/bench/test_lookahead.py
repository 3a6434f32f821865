"""bench_lookahead on a few hours: both policies replay every job, and it prints their ratio."""

from __future__ import annotations

import pytest

from bench import bench_lookahead


def test_bench_lookahead_replays_both_policies_and_prints_the_ratio(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ratio = bench_lookahead.main(["--jobs", "60", "--days", "0.25"])
    out = capsys.readouterr().out
    assert out.count("(60 jobs, 0 deadline misses") == 2
    assert f"carbon-lookahead / carbon-window CPU: {ratio:.1f}x" in out and ratio > 0
