"""bench.round_floor: a planning round asked again, timed by part, the replay's outcome kept."""

from __future__ import annotations

import re

import pytest

from bench import bench_replay, round_floor
from policies.incremental import PlanState

ARGS = ["--jobs", "60", "--days", "0.01", "--policy", "carbon-window"]


def _grams(out: str) -> str:
    found = re.search(r"carbon-window: .*?, ([\d,]+ g)", out)
    assert found is not None, out
    return found.group(1)


@pytest.mark.usefixtures("restore_logging")  # bench_replay configures logging
def test_the_repeated_rounds_are_timed_and_the_replay_decides_as_without_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bench_replay.main(ARGS)
    plain = _grams(capsys.readouterr().out)
    plan = PlanState.plan
    parts = round_floor.main([*ARGS, "--after", "1", "--every", "1"])
    out = capsys.readouterr().out
    assert PlanState.plan is plan
    assert _grams(out) == plain
    rounds = re.search(r"(\d+) repeated rounds, (\d+) jobs .*, (\d+) decisions a round", out)
    assert rounds is not None and int(rounds.group(1)) > 5, out
    assert 0 < int(rounds.group(3)) <= int(rounds.group(2)), out  # held ones repeat as objects
    mean, _, _ = parts["round"]
    assert mean > 0
    assert 0 < parts["held decisions"][0] < mean
