"""Every number in the settings is finite and every duration fits what the daemon makes of it
(timedeltas, timer waits, the loop's scheduler): a value past that is one problem naming its
field at load, not a crash or a spin once the daemon runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.triggers.interval import IntervalTrigger
from pydantic import BaseModel

from daemon.settings import ConfigError, Settings, load_settings
from daemon.settings.sections import MAX_DURATION_S, MAX_HORIZON_S, MAX_INTERVAL_S


def _float_fields(
    model: type[BaseModel], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """The dotted paths of the float settings in the sections (tables) of ``model``."""
    for name, info in model.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from _float_fields(kind, (*prefix, name))
        elif kind is float:
            yield (*prefix, name)


FLOATS = sorted(_float_fields(Settings))


def _toml(path: tuple[str, ...], value: str) -> str:
    *tables, key = path
    return (f"[{'.'.join(tables)}]\n" if tables else "") + f"{key} = {value}\n"


def _problems(tmp_path: Path, text: str) -> list[str]:
    config = tmp_path / "limits.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    return list(info.value.problems)


def test_the_sections_hold_float_settings() -> None:
    assert len(FLOATS) >= 20  # the walk reaches the nested tables (executors.local, ...)
    assert ("intervals", "plan_s") in FLOATS and ("executors", "local", "grace_s") in FLOATS


@pytest.mark.parametrize("path", FLOATS, ids=".".join)
@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_no_float_setting_takes_inf_or_nan(
    tmp_path: Path, path: tuple[str, ...], value: str
) -> None:
    (problem,) = _problems(tmp_path, _toml(path, value))
    assert f": {'.'.join(path)}: " in problem


DURATIONS = [p for p in FLOATS if p[-1].endswith("_s")]


@pytest.mark.parametrize("path", DURATIONS, ids=".".join)
def test_no_duration_is_longer_than_the_daemon_can_wait(
    tmp_path: Path, path: tuple[str, ...]
) -> None:
    (problem,) = _problems(tmp_path, _toml(path, "1e300"))
    assert f": {'.'.join(path)}: Input should be less than or equal to" in problem


@pytest.mark.parametrize(
    ("path", "value"),
    [(("intensity", "horizon_s"), MAX_HORIZON_S + 1), (("intensity", "step_s"), 86_401)],
)
def test_the_forecast_grid_is_bounded(tmp_path: Path, path: tuple[str, ...], value: int) -> None:
    (problem,) = _problems(tmp_path, _toml(path, str(value)))
    assert f": {'.'.join(path)}: " in problem


def test_the_largest_values_allowed_are_usable() -> None:
    """What the daemon builds from the bounds: the loop's trigger, deadlines, timer waits."""
    IntervalTrigger(seconds=MAX_INTERVAL_S, timezone=UTC)
    assert datetime(2100, 1, 1, tzinfo=UTC) + timedelta(seconds=MAX_DURATION_S) > datetime(
        2100, 1, 1, tzinfo=UTC
    )
    import threading

    assert MAX_DURATION_S < threading.TIMEOUT_MAX


def test_a_gpu_lifetime_too_short_to_amortise_over_is_refused_naming_the_field(
    tmp_path: Path,
) -> None:
    """``lifetime_years = 5e-324`` (only ``> 0`` was asked) made every outcome's embodied grams
    infinite; a lifetime under ``MIN_LIFETIME_YEARS`` is refused at load."""
    [problem] = _problems(tmp_path, "lifetime_years = 5e-324\n")
    assert problem.endswith("lifetime_years: Input should be greater than or equal to 0.1")
    assert load_settings(None, lifetime_years=0.1).lifetime_years == 0.1


def test_a_gpu_lifetime_no_gpu_has_is_refused_naming_the_field(tmp_path: Path) -> None:
    """``lifetime_years = 1e308`` made every outcome's embodied grams 0."""
    [problem] = _problems(tmp_path, "lifetime_years = 1e308\n")
    assert problem.endswith("lifetime_years: Input should be less than or equal to 100")
    assert load_settings(None, lifetime_years=100).lifetime_years == 100


@pytest.mark.parametrize(
    ("text", "problem"),
    [("[intensity]\nhorizon_s = 60\n", ":2: intensity.horizon_s: 60 s is less than an hour"),
     ("[intensity]\nstep_s = 7\n", ":2: intensity.step_s: 7 s is less than a minute"),
     ("[intensity]\nhorizon_s = 7200\nstep_s = 9000\n",
      ":3: intensity.step_s: 9000 s is longer than horizon_s (7200 s)")],
)  # fmt: skip
def test_a_forecast_too_short_or_too_fine_to_plan_on_is_refused(
    tmp_path: Path, text: str, problem: str
) -> None:
    """``horizon_s = 60`` and ``step_s = 7`` (a unit mistake) were taken: the planner saw a
    minute of forecast, flat after it, and each refresh built thousands of points of nothing."""
    [found] = _problems(tmp_path, text)
    assert problem in found
    assert load_settings(None, intensity={"horizon_s": 3600, "step_s": 60}).intensity.step_s == 60
