"""docs/signals.md and docs/forecasts.md state the p90 errors a forecast is given where no
backtest scores it, as the constants in ``forecasts/`` have them: 25 % of each value for a
forecaster with too little history (``UNSCORED_REL_ERROR``) and 50 % for the static rung's
flat annual average (``STATIC_REL_ERROR``; until 2026-12-07 signals.md left it out)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from forecasts.chain import STATIC_REL_ERROR
from forecasts.zone_state import UNSCORED_REL_ERROR

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _percent(share: float) -> str:
    return f"{share * 100:g} %"  # as the docs write one: 25 %


@pytest.mark.parametrize("page", ["signals.md", "forecasts.md"])
def test_the_assumed_p90_errors_are_the_constants(page: str) -> None:
    text = re.sub(r"\s*\n\s*", " ", (DOCS / page).read_text(encoding="utf-8"))  # lines joined
    sentences = text.split(". ")
    unscored = [s for s in sentences if "history" in s and _percent(UNSCORED_REL_ERROR) in s]
    static = [s for s in sentences if "static" in s and _percent(STATIC_REL_ERROR) in s]
    assert unscored, f"{page} does not state the {_percent(UNSCORED_REL_ERROR)} assumed error"
    assert static, f"{page} does not state the static rung's {_percent(STATIC_REL_ERROR)}"
