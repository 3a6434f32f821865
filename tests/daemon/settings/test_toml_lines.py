"""A bad config value is named with the line of the file that sets it (``file:line: field``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.settings import ConfigError, load_settings
from daemon.settings.toml_lines import line_of

TEXT = """\
# a comment with [brackets] and key = value
state_dir = "/tmp/x"

[[regions]]
name = "qc"
zone = "CA-QC"
gpus = ["T4"]

[[regions]]
name = "ciso"
"zone" = 'US-CAL-CISO'
notes = \"\"\"
pue = 7
[policy]
\"\"\"
gpus = [
  { type = "RTX6000-Ada", count = 0 },  # ] a bracket in a comment
  "T4",
]
pue = 0.2

[regions.site]
pv_kwp = -1
[regions.site.battery]
capacity_kwh = 0

[policy]
name = "carbon-window"
intervals.plan_s = 5
"a.b".c = 1
"""


@pytest.mark.parametrize(
    ("loc", "line"),
    [
        (("state_dir",), 2),
        (("regions",), 4),
        (("regions", 0), 4),
        (("regions", 0, "zone"), 6),
        (("regions", 1), 9),
        (("regions", 1, "zone"), 11),
        (("regions", 1, "notes"), 12),
        (("regions", 1, "gpus", 0, "count"), 16),  # inside an array: the key that holds it
        (("regions", 1, "pue"), 20),  # not line 13 (inside a string) and after the array
        (("policy",), 27),  # not line 14 (inside a string)
        (("policy", "name"), 28),
        (("policy", "intervals"), 29),
        (("policy", "intervals", "plan_s"), 29),
        (("policy", "a.b", "c"), 30),
        (("policy", "plan_window"), 27),  # not in the file: its table
        (("metrics",), None),  # nothing of it in the file
        (("regions", 2, "name"), 4),  # no third region: the array's first line
        # a table of an array's entry: not the [[regions]] line (the site's errors named it)
        (("regions", 1, "site"), 22),
        (("regions", 1, "site", "pv_kwp"), 23),
        (("regions", 1, "site", "battery", "capacity_kwh"), 25),
        (("regions", 0, "site"), 4),  # the first region has none: its own line
    ],
)
def test_the_line_that_sets_a_value(loc: tuple[str | int, ...], line: int | None) -> None:
    assert line_of(TEXT, loc) == line


def test_a_bad_value_in_a_config_file_names_its_line(tmp_path: Path) -> None:
    config = tmp_path / "carbond.toml"
    config.write_text(
        f'state_dir = "{tmp_path}"\n\n[[regions]]\nname = "qc"\nzone = "CA-QC"\n'
        'gpus = ["T4"]\npue = 0.5\n\n[policy]\nname = "run-now"\nplan_window = -5\n'
    )
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert sorted(info.value.problems) == [
        f"{config}:11: policy.plan_window: Input should be greater than or equal to 1",
        f"{config}:7: regions.qc.pue: Input should be greater than or equal to 1",
    ]


def test_a_value_the_file_does_not_hold_names_the_file_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "carbond.toml"
    config.write_text(f'state_dir = "{tmp_path}"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config, policy={"name": "run-now", "plan_window": 0})
    assert info.value.problems == [
        f"{config}: policy.plan_window: Input should be greater than or equal to 1"
    ]


@given(st.text(max_size=300), st.lists(st.one_of(st.text(max_size=5), st.integers(0, 3))))
def test_any_text_gives_a_line_of_it_or_none(text: str, loc: list[str | int]) -> None:
    line = line_of(text, loc)
    assert line is None or 1 <= line <= len(text.splitlines())
