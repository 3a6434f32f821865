"""An unmetered job's outcome columns: the grams compute_outcome gives, the details JSON
json.dumps writes, and running totals that add rows as one at a time would."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.accounting import predicted_alternative, unmetered_columns
from daemon.accounting.totals import add_outcome, add_outcomes
from daemon.accounting.unmetered import _details_json
from daemon.ledger import DecisionRecord
from policies.errors import InvalidOutcomeError
from policies.footprint.outcome import (
    MeasuredRun,
    RealisedIntensity,
    compute_outcome,
    measured_footprint,
)

T0 = datetime(2026, 3, 2, tzinfo=UTC)
FIGURES = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-5, 5) | st.none()


def _decision(energy_j: float | None, duration_s: float | None) -> DecisionRecord:
    return DecisionRecord("j", T0, "test", "start", "go", "qc", "T4", ("qc/0",), None,
                          duration_s, energy_j, 30.0, 0.5, 0.25, 0.75, 1.0, ())  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    energy_j=st.floats(0, 1e9) | st.none(),
    expected_s=st.floats(1, 1e5) | st.none(),
    duration_s=st.integers(0, 86_400),
    intensity=st.floats(0, 2000),
    reported=st.floats(-10, 1e9) | st.none(),
    gpus=st.integers(1, 8),
)
def test_grams_are_compute_outcomes(
    energy_j: float | None, expected_s: float | None, duration_s: int, intensity: float,
    reported: float | None, gpus: int,
) -> None:  # fmt: skip
    decision, end = _decision(energy_j, expected_s), T0 + timedelta(seconds=duration_s)
    realised = RealisedIntensity("CA-QC", intensity, "api", 5.0, 0.5)
    columns = unmetered_columns(
        started_at=T0, finished_at=end, gpu="T4", gpus=gpus, gpu_embodied_g=1.5e5, pue=1.2,
        lifetime_years=4.0, decision=decision, realised=realised, reported_energy_j=reported,
        reported_method="slurm-sacct",
    )  # fmt: skip
    if columns["energy_j"] is None:
        assert "total_g" not in columns
        return
    outcome = compute_outcome(
        MeasuredRun(T0, end, "T4", gpus, columns["energy_j"], columns["energy_method"]),
        predicted_alternative(decision, T0), realised, gpu_embodied_g=1.5e5, pue=1.2,
        lifetime_years=4.0,
    )  # fmt: skip
    assert (columns["operational_g"], columns["embodied_g"], columns["total_g"]) == (
        outcome.operational_g, outcome.embodied_g, outcome.total_g,
    )  # fmt: skip


def test_negative_energy_or_duration_is_refused_as_compute_outcome_refuses() -> None:
    with pytest.raises(InvalidOutcomeError, match=r"energy -1\.0 J and duration 5\.0 s"):
        measured_footprint(-1.0, 5.0, 100.0, 1.0)
    with pytest.raises(InvalidOutcomeError, match=r"duration -5\.0 s"):
        measured_footprint(1.0, -5.0, 100.0, 1.0)


@settings(max_examples=300, deadline=None)
@given(
    source=st.text(max_size=12) | st.sampled_from(["estimated", "slurm-sacct"]),
    coverage=FIGURES,
    power_w=FIGURES,
)
def test_details_are_the_json_dumps_text(source: str, coverage: Any, power_w: Any) -> None:
    details = {"energy_source": source, "intensity_coverage": coverage,
               "estimated_power_w": power_w}  # fmt: skip
    try:
        expected = json.dumps(details, allow_nan=False)
    except ValueError:
        with pytest.raises(ValueError, match="JSON compliant"):
            _details_json(source, coverage, power_w)
        return
    assert _details_json(source, coverage, power_w) == expected


ROWS = st.lists(
    st.tuples(
        st.fixed_dictionaries(
            {},
            optional={
                "energy_j": st.floats(0, 1e7) | st.none(),
                "total_g": st.floats(0, 1e4) | st.none(),
                "run_now_total_g": st.floats(0, 1e4) | st.none(),
                "embodied_g": st.floats(0, 10),
                "finished_at": st.sampled_from([T0, T0 + timedelta(hours=2)]).map(
                    datetime.isoformat
                ),
            },
        ),
        st.sampled_from([None, T0 + timedelta(hours=1)]),
    ),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(rows=ROWS)
def test_a_batch_adds_to_the_totals_as_one_at_a_time(
    rows: list[tuple[dict[str, Any], datetime | None]],
) -> None:
    start = {"jobs": 3.0, "total_g": 0.1}
    one_by_one = reduce(lambda totals, row: add_outcome(totals, *row), rows, start)
    assert add_outcomes(start, rows) == one_by_one
    assert start == {"jobs": 3.0, "total_g": 0.1}  # not changed in place
