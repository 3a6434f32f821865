"""Fuzzing a site's measured CSVs as the daemon uses them: whatever rows ``pv_csv`` and
``other_load_csv`` hold (any start, any step, times at the ends of the calendar), the site is
built or refused with ``SiteConfigError`` naming the region and field, and a built site's
refresh, problems and power on any grid near now never raise and give powers from 0 W."""

from __future__ import annotations

import math
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from daemon.settings import SiteSettings
from daemon.sites.model import SiteConfigError, build_site
from forecasts.solar import MAX_POWER_W
from tests.fuzzing import examples

_STEPS = st.one_of(st.sampled_from([1, 300, 3600, 86_400, 10**9, 10**11]),
                   st.integers(1, 10**12))  # fmt: skip
_rows = st.tuples(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59),
                 timezones=st.just(UTC)),
    _STEPS,
    st.lists(st.floats(0, MAX_POWER_W), min_size=2, max_size=5),
)  # fmt: skip


def _csv(start: datetime, step_s: int, values: list[float]) -> str | None:
    """The CSV of those rows, None when a row's time is past the calendar."""
    lines = ["datetime,power_w"]
    for k, value in enumerate(values):
        try:
            t = start + timedelta(seconds=k * step_s)
        except OverflowError:
            return None
        lines.append(f"{t.isoformat()},{value!r}")
    return "\n".join(lines) + "\n"


@settings(max_examples=examples(0.2))
@given(_rows, _rows, st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31),
                                  timezones=st.just(UTC)))  # fmt: skip
@example(
    (datetime(9999, 12, 31, 23, 59, 58, tzinfo=UTC), 1, [1.0, 1.0]),
    (datetime(2024, 1, 1, tzinfo=UTC), 3600, [1.0, 1.0]),
    datetime(2024, 1, 1, tzinfo=UTC),
)
@example(
    (datetime(1, 1, 1, tzinfo=UTC), 15 * 10**10, [1.0, 1.0, 1.0]),
    (datetime(2024, 1, 1, tzinfo=UTC), 3600, [1.0, 1.0]),
    datetime(2024, 1, 1, tzinfo=UTC),
)
def test_any_measured_rows_build_a_site_that_never_raises(
    pv: tuple[datetime, int, list[float]],
    other: tuple[datetime, int, list[float]],
    now: datetime,
) -> None:
    pv_text, other_text = _csv(*pv), _csv(*other)
    if pv_text is None or other_text is None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        pv_path, other_path = Path(tmp) / "pv.csv", Path(tmp) / "load.csv"
        pv_path.write_text(pv_text, encoding="utf-8")
        other_path.write_text(other_text, encoding="utf-8")
        try:
            site = build_site("node", "DE", SiteSettings(pv_csv=pv_path, other_load_csv=other_path))
        except SiteConfigError as exc:
            assert exc.region == "node" and exc.field in {"site.pv_csv", "site.other_load_csv"}
            assert str(exc).startswith(f"regions.node.{exc.field}: {tmp}")
            return
        site.refresh(now)
        assert all(isinstance(line, str) for line in site.problems())
        start = now.replace(microsecond=0)
        for power in (site.pv_w(start, 300, 12), site.other_w(start, 300, 12),
                      site.pv_forecast_w(now, start, 300, 12),
                      site.other_forecast_w(now, start, 300, 12)):  # fmt: skip
            assert np.all(np.isfinite(power)) and np.all(power >= 0), power
            assert len(power) == 12 and not math.isnan(float(power.sum()))
