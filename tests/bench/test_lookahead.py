"""bench_lookahead on a short queue and a few hours: both policies plan and replay every job,
and it prints the ratios."""

from __future__ import annotations

import pytest

from bench import bench_lookahead


def test_bench_lookahead_times_both_policies_and_prints_the_ratios(
    capsys: pytest.CaptureFixture[str],
) -> None:
    tick, day = bench_lookahead.main(["--queue", "30", "--jobs", "60", "--days", "0.25"])
    out = capsys.readouterr().out
    assert out.count("tick over 30 waiting jobs") == 2
    assert out.count("(60 jobs, 0 deadline misses") == 2
    assert f"a tick: {tick:.0f}x" in out and f"a day of replay: {day:.1f}x" in out
    assert tick > 0 and day > 0
