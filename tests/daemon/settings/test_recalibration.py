"""``[recalibration]``: the evidence a (model, GPU type) needs before its learned factors are
used, from TOML or the environment, one line naming the field for a bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.settings import ConfigError, load_settings
from policies.footprint.recalibration import DEFAULT_RECALIBRATION


def test_the_defaults_are_the_recalibrations(tmp_path: Path) -> None:
    config = tmp_path / "none.toml"
    config.write_text("")
    settings = load_settings(config)
    assert settings.recalibration.min_samples == DEFAULT_RECALIBRATION.min_samples
    assert settings.recalibration.min_measured_s == DEFAULT_RECALIBRATION.min_measured_s


def test_the_thresholds_are_read_from_toml_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "recal.toml"
    config.write_text("[recalibration]\nmin_samples = 5\nmin_measured_s = 30\n")
    assert load_settings(config).recalibration.min_samples == 5
    assert load_settings(config).recalibration.min_measured_s == 30.0
    monkeypatch.setenv("CARBOND_RECALIBRATION__MIN_MEASURED_S", "0")
    assert load_settings(config).recalibration.min_measured_s == 0.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("min_samples", "0"),
        ("min_samples", "2.5"),
        ("min_samples", '"three"'),
        ("min_measured_s", "-1"),
        ("min_measured_s", "nan"),
        ("min_measured_s", "inf"),
        ("min_measured_s", '"ten minutes"'),
    ],
)
def test_a_bad_threshold_is_one_line_naming_it(tmp_path: Path, field: str, value: str) -> None:
    config = tmp_path / "recal.toml"
    config.write_text(f"[recalibration]\n{field} = {value}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(f"{config}:2: recalibration.{field}: ")


def test_an_unknown_key_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "recal.toml"
    config.write_text("[recalibration]\nmin_measured = 60\n")
    with pytest.raises(ConfigError, match=r"recalibration\.min_measured: "):
        load_settings(config)
