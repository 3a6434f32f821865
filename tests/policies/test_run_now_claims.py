"""The run-now counterfactual of a round is what ``run-now`` would have done with the same
arrivals (policies/run_now_claims.py): the round's jobs claim GPUs first come, first served,
the counterfactual runs of earlier rounds hold theirs (``Device.run_now_busy_until``), and a
job whose counterfactual is recorded already (``JobSpec.run_now_recorded``) claims none, and
does not wait for its own recorded run (``Device.run_now_holder``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from policies import Decision, Device, JobSpec, get_policy
from policies.planner import WindowParameters, plan_window
from tests.policies.conftest import NOW, FakeForecast, devices, forecast, job

POLICIES = ["carbon-window", "wait-awhile", "lowest-energy", "spatial"]


@pytest.fixture
def one_each() -> tuple[list[Device], dict[str, FakeForecast]]:
    """One fast GPU (California's RTX 6000 Ada) and one slow one (Quebec's T4)."""
    devs = devices("ca", "US-CAL-CISO", "RTX6000-Ada", 1) + devices("qc", "CA-QC", "T4", 1)
    return devs, {
        "CA-QC": forecast("CA-QC", [30.0] * 30),
        "US-CAL-CISO": forecast("US-CAL-CISO", [400.0] * 30),
    }


def _run_now(name: str, jobs: list[JobSpec], devs: list[Device],
             fcs: dict[str, FakeForecast]) -> dict[str, Decision]:  # fmt: skip
    decisions = get_policy(name).plan(NOW, jobs, devs, fcs)
    return {d.job_id: d for d in decisions}


@pytest.mark.parametrize("name", POLICIES)
def test_the_jobs_of_one_round_do_not_share_a_gpu(
    name: str, one_each: tuple[list[Device], dict[str, FakeForecast]]
) -> None:
    """Three jobs arrive together on one fast and one slow GPU: under run-now the first takes
    the fast GPU, the second the slow one and the third waits for the first to free up. Each
    used to be counted on the fast GPU now, as if it were free for every job."""
    devs, fcs = one_each
    got = _run_now(name, [job("c"), job("a"), job("b")], devs, fcs)
    a, b, c = (got[k].run_now for k in "abc")
    assert a is not None and b is not None and c is not None
    assert (a.device_ids, a.start) == (("ca-0",), NOW)
    assert (b.device_ids, b.start) == (("qc-0",), NOW)
    first_end = min(NOW + timedelta(seconds=x.duration_s) for x in (a, b))
    assert c.start >= first_end
    end = {x.device_ids[0]: x.start + timedelta(seconds=x.duration_s) for x in (a, b)}
    assert c.start >= end[c.device_ids[0]]  # not while a or b holds that GPU


@pytest.mark.parametrize("name", POLICIES)
def test_a_waiting_counterfactual_starts_when_its_gpu_frees_up(
    name: str, one_each: tuple[list[Device], dict[str, FakeForecast]]
) -> None:
    """Earlier rounds' runs hold both GPUs for 7 and 9 minutes, and the first of two arriving
    jobs runs ~1 min: the second starts when that run ends, not at the next 15-min slot. It
    used to start at a slot boundary, so one GPU served one copy per slot and on a busy day
    the copies queued for hours (their savings inflated)."""
    devs, fcs = one_each
    until = {"ca": NOW + timedelta(minutes=7), "qc": NOW + timedelta(minutes=9)}
    held = [replace(d, run_now_busy_until=until[d.region]) for d in devs]
    got = _run_now(name, [job("a"), job("b", submitted=NOW + timedelta(seconds=1))], held, fcs)
    a, b = got["a"].run_now, got["b"].run_now
    assert a is not None and (a.device_ids, a.start) == (("ca-0",), until["ca"])
    a_end = a.start + timedelta(seconds=a.duration_s)
    assert b is not None and a_end < until["qc"]
    assert (b.device_ids, b.start) == (("ca-0",), a_end)


@pytest.mark.parametrize("name", POLICIES)
def test_earlier_rounds_counterfactual_runs_hold_their_gpus(
    name: str, one_each: tuple[list[Device], dict[str, FakeForecast]]
) -> None:
    """The fast GPU is free in reality, but an earlier round's counterfactual run holds it
    for 2 h: the new job's counterfactual is the slow GPU now."""
    devs, fcs = one_each
    held = [replace(d, run_now_busy_until=NOW + timedelta(hours=2)) if d.region == "ca" else d
            for d in devs]  # fmt: skip
    got = _run_now(name, [job("a")], held, fcs)["a"].run_now
    assert got is not None and (got.device_ids, got.start) == (("qc-0",), NOW)


@pytest.mark.parametrize("name", POLICIES)
def test_a_recorded_counterfactual_claims_no_gpu(
    name: str, one_each: tuple[list[Device], dict[str, FakeForecast]]
) -> None:
    """Job "a" (first in FIFO order) has its counterfactual recorded in an earlier round: it
    claims nothing now, so the new job "b" gets the fast GPU now."""
    devs, fcs = one_each
    got = _run_now(name, [replace(job("a"), run_now_recorded=True), job("b")], devs, fcs)
    b = got["b"].run_now
    assert b is not None and (b.device_ids, b.start) == (("ca-0",), NOW)


@pytest.mark.parametrize("name", POLICIES)
def test_a_recorded_counterfactual_does_not_wait_for_its_own_run(
    name: str, one_each: tuple[list[Device], dict[str, FakeForecast]]
) -> None:
    """Job "a"'s recorded counterfactual run holds the fast GPU for 2 h. Its counterfactual,
    rebuilt for its reason, is that GPU now (it used to wait 2 h for its own run, its "% below
    run-now" moving with that wait); a new job "b" still sees the GPU held."""
    devs, fcs = one_each
    held = [replace(d, run_now_busy_until=NOW + timedelta(hours=2), run_now_holder="a")
            if d.region == "ca" else d for d in devs]  # fmt: skip
    got = _run_now(name, [replace(job("a"), run_now_recorded=True), job("b")], held, fcs)
    a, b = got["a"].run_now, got["b"].run_now
    assert a is not None and (a.device_ids, a.start) == (("ca-0",), NOW)
    assert b is not None and (b.device_ids, b.start) == (("qc-0",), NOW)


@pytest.mark.parametrize("name", POLICIES)
def test_a_recorded_counterfactual_waits_for_the_others_runs(
    name: str, one_each: tuple[list[Device], dict[str, FakeForecast]]
) -> None:
    """The fast GPU is held by "a"'s run for 2 h and by another job's for 1 h (the slow one
    for 3 h): "a"'s own counterfactual waits for the other run only."""
    devs, fcs = one_each
    hold = {"ca": (NOW + timedelta(hours=2), "a", NOW + timedelta(hours=1)),
            "qc": (NOW + timedelta(hours=3), "x", None)}  # fmt: skip
    held = [replace(d, run_now_busy_until=hold[d.region][0], run_now_holder=hold[d.region][1],
                    run_now_others_until=hold[d.region][2]) for d in devs]  # fmt: skip
    got = _run_now(name, [replace(job("a"), run_now_recorded=True)], held, fcs)["a"].run_now
    assert got is not None and got.device_ids == ("ca-0",)
    assert NOW + timedelta(hours=1) <= got.start < NOW + timedelta(hours=2)


@pytest.mark.parametrize("held", [False, True])
def test_the_fast_path_claims_as_the_full_replan(
    one_each: tuple[list[Device], dict[str, FakeForecast]], held: bool
) -> None:
    """Over ticks with arrivals and recorded counterfactuals, the kept rows give the full
    re-plan's counterfactuals (but a repeated held decision's, :mod:`policies.incremental`);
    ``held``: with GPUs held by recorded runs, two of them the longest by recorded jobs."""
    devs, fcs = one_each
    devs = devs + devices("ca2", "US-CAL-CISO", "RTX6000-Ada", 1)
    if held:
        hold = {"ca": (NOW + timedelta(hours=2), "a", NOW + timedelta(minutes=30)),
                "ca2": (NOW + timedelta(hours=1), "b", None),
                "qc": (NOW + timedelta(minutes=40), "x", None)}  # fmt: skip
        devs = [replace(d, run_now_busy_until=hold[d.region][0], run_now_holder=hold[d.region][1],
                        run_now_others_until=hold[d.region][2]) for d in devs]  # fmt: skip
    policy = get_policy("carbon-window")
    params = WindowParameters()
    jobs = [job(k, requests=2048) for k in ("a", "b", "c", "d")]
    last: dict[str, Decision] = {}
    for tick in range(4):
        now = NOW + timedelta(minutes=5 * tick)
        got = policy.plan(now, jobs, devs, fcs)
        full = plan_window("carbon-window", now, jobs, devs, fcs, params)
        for mine, want in zip(got, full, strict=True):
            if mine is not last.get(mine.job_id):
                assert mine.run_now == want.run_now, (tick, mine.job_id)
        last = {d.job_id: d for d in got}
        jobs = [replace(j, run_now_recorded=True) for j in jobs[: 2 + tick]] + jobs[2 + tick :]
        jobs.append(job(f"new{tick}", submitted=now))


@pytest.mark.parametrize("name", POLICIES)
@pytest.mark.parametrize(("hours", "claims"), [(1.0, False), (2.0, False), (2.5, True)])
def test_a_counterfactual_starting_at_or_after_its_deadline_claims_no_gpu(
    name: str, hours: float, claims: bool, one_each: tuple[list[Device], dict[str, FakeForecast]]
) -> None:
    """Earlier rounds' counterfactual runs hold the fast GPU for 2 h and the slow one for 3 h.
    Job "a" (first in FIFO order) would start on the fast GPU in 2 h: with its deadline
    before then, or then, run-now expires it waiting, so its copy claims nothing and "b"
    starts on that GPU in 2 h (it used to wait for "a"'s copy, a run that never happens). "a"
    keeps its counterfactual (what that start would have cost). With a deadline after that
    start "a"'s copy runs, and "b" waits for it."""
    devs, fcs = one_each
    until = {"ca": NOW + timedelta(hours=2), "qc": NOW + timedelta(hours=3)}
    held = [replace(d, run_now_busy_until=until[d.region]) for d in devs]
    got = _run_now(name, [job("a", hours=hours), job("b", submitted=NOW + timedelta(seconds=1))],
                   held, fcs)  # fmt: skip
    a, b = got["a"].run_now, got["b"].run_now
    assert a is not None and (a.device_ids, a.start) == (("ca-0",), until["ca"])
    assert b is not None
    if claims:
        assert b.start > until["ca"]
    else:
        assert (b.device_ids, b.start) == (("ca-0",), until["ca"])
