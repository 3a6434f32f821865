"""A plan that costs more than its run-now counterfactual read "(-1145% below run-now)": it
reads "(1145% above run-now)" now. The case, as a helper met it: one T4 in Quebec (held for
another half minute by a run past its expected end) and two RTX 6000 Ada in California (one
running, one held by another job's run-now counterfactual); a short job due in 30 minutes
cannot wait for the T4's next slot (its latest safe start is before it), so it starts on the
free RTX, while run-now would have taken the first GPU to free up: the T4."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

from policies import get_policy
from policies.reasons import saving
from policies.types import Alternative
from tests.policies.conftest import NOW, devices, forecast, job


def test_a_plan_dearer_than_run_now_says_above_not_minus_below() -> None:
    t4 = devices("qc", "CA-QC", "T4", 1, busy_until=NOW + timedelta(seconds=30))
    rtx = devices("ciso", "US-CAL-CISO", "RTX6000-Ada", 2)
    rtx = [
        replace(rtx[0], busy_until=NOW + timedelta(hours=1)),
        replace(rtx[1], run_now_busy_until=NOW + timedelta(hours=1), run_now_holder="other"),
    ]
    forecasts = {"CA-QC": forecast("CA-QC", [30.0] * 30),
                 "US-CAL-CISO": forecast("US-CAL-CISO", [250.0] * 30)}  # fmt: skip
    small = job("small", hours=0.5, requests=8)
    (decision,) = get_policy("carbon-window").plan(NOW, [small], t4 + rtx, forecasts)
    assert decision.action == "start" and decision.chosen is not None
    assert decision.chosen.region == "ciso"  # the T4's next slot is past its latest safe start
    assert decision.run_now is not None and decision.run_now.region == "qc"
    assert decision.chosen.total_g > decision.run_now.total_g
    share = re.search(r"\((\d+)% above run-now\)", decision.reason)
    assert share is not None, decision.reason
    assert f"{share.group(1)}%" == f"{decision.chosen.total_g / decision.run_now.total_g - 1:.0%}"
    assert "-" not in decision.reason.split("run-now")[0].split("(")[-1]


def _alt(total_g: float) -> Alternative:
    return Alternative(("d",), "r", "g", NOW, 60.0, 1.0, 1.0, total_g, 0.0)


def test_the_share_reads_below_or_above() -> None:
    assert saving(_alt(10.0), _alt(100.0)) == " (90% below run-now)"
    assert saving(_alt(250.0), _alt(100.0)) == " (150% above run-now)"
    assert saving(_alt(100.4), _alt(100.0)) == ""  # a 0% share is not quoted (either sign)
    assert saving(_alt(99.6), _alt(100.0)) == ""
    assert saving(_alt(1.0), None) == ""
