"""bench.pool_load: per policy and region, jobs, waits, grams and GPU busy share."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.pool_load import main, region_loads

HOUR = 3600.0


def _row(policy: str, job_id: str, region: str, start_h: float, run_h: float,
         wait_s: float, total_g: float, energy_kwh: float) -> dict[str, str]:  # fmt: skip
    start = f"2023-06-05T{int(start_h):02d}:{int(start_h % 1 * 60):02d}:00+00:00"
    end_h = start_h + run_h
    end = f"2023-06-05T{int(end_h):02d}:{int(end_h % 1 * 60):02d}:00+00:00"
    return {"policy": policy, "job_id": job_id, "region": region, "started_at": start,
            "ended_at": end, "wait_s": str(wait_s), "total_g": str(total_g),
            "energy_j": str(energy_kwh * 3_600_000)}  # fmt: skip


def test_region_loads_count_jobs_waits_grams_and_busy_share() -> None:
    rows = [
        _row("carbon-window", "code-000001", "pace", 1.0, 0.5, 600.0, 6.0, 0.01),
        _row("carbon-window", "code-000002", "pace", 2.0, 1.0, 1800.0, 12.0, 0.02),
        _row("carbon-window", "code-000003", "pace", 3.0, 0.5, 3000.0, 6.0, 0.01),
        _row("carbon-window", "conv-000001", "quebec", 0.0, 2.0, 0.0, 1.0, 0.1),
        _row("run-now", "conv-000001", "pace", 0.0, 2.0, 0.0, 24.0, 0.04),
    ]
    loads = region_loads(rows, {"quebec": 4, "pace": 2}, span_s=10 * HOUR)
    assert [(x.policy, x.region, x.jobs) for x in loads] == [
        ("carbon-window", "quebec", 1), ("carbon-window", "pace", 3),
        ("run-now", "quebec", 0), ("run-now", "pace", 1),
    ]  # fmt: skip
    pace = loads[1]
    assert pace.jobs_by_trace == {"code": 3}
    assert pace.median_wait_s_by_trace == {"code": 1800.0}
    assert pace.median_run_s_by_trace == {"code": 0.5 * HOUR}
    assert pace.total_g == pytest.approx(24.0)
    assert pace.g_per_kwh == pytest.approx(24.0 / 0.04)
    assert pace.busy_share == pytest.approx(2.0 / (2 * 10))  # 2 GPU-hours of 20
    assert loads[0].busy_share == pytest.approx(2.0 / (4 * 10))
    assert loads[2].g_per_kwh == 0.0 and loads[2].busy_share == 0.0


def test_main_prints_one_line_per_policy_and_region(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = tmp_path / "cluster.toml"
    cluster.write_text(
        '[[regions]]\nname = "quebec"\nzone = "CA-QC"\ngpus = [{ type = "T4", count = 4 }]\n'
    )
    jobs = tmp_path / "jobs.csv"
    row = _row("carbon-window", "conv-000001", "quebec", 0.0, 6.0, 120.0, 3.0, 0.1)
    jobs.write_text(",".join(row) + "\n" + ",".join(row.values()) + "\n")
    main([str(jobs), "--cluster", str(cluster), "--days", "0.25"])
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert "1 conv (median wait 2 min, run 360 min)" in out[0]
    assert "30 g/kWh" in out[0] and "GPUs busy 25%" in out[0]  # 6 GPU-h of 4 x 6 h
