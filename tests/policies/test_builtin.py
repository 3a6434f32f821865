"""Built-in policies as tables: what each decides on small hand-made clusters."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from datetime import timedelta

import pytest

from policies import PoliciesError, get_policy, policy_names, with_recalibration
from policies.candidates import estimate_on
from policies.footprint.recalibration import Recalibration, RecalibrationFactor
from policies.types import Decision, Device, JobSpec
from tests.policies.conftest import NOW, FakeForecast, devices, forecast, job

Cluster = tuple[list[Device], dict[str, FakeForecast]]
ALL = ("run-now", "lowest-energy", "spatial", "wait-awhile", "carbon-window", "oracle")


def test_every_builtin_is_registered() -> None:
    assert set(ALL) <= set(policy_names())


@pytest.mark.parametrize("name", ALL)
def test_one_decision_per_job_in_input_order(name: str, two_regions: Cluster) -> None:
    devs, fcs = two_regions
    jobs = [job(f"j{i}", regions=("ca", "qc")) for i in range(5)] + [job("big", model="llama-70b")]
    decisions = get_policy(name).plan(NOW, jobs, devs, fcs)
    assert [d.job_id for d in decisions] == [j.job_id for j in jobs]
    assert decisions[-1].action == "reject"
    started = [d for d in decisions if d.action == "start"]
    ids = [i for d in started for i in d.chosen.device_ids]  # type: ignore[union-attr]
    assert len(ids) == len(set(ids)), "a device was given to two jobs"
    assert all(d.reason for d in decisions)


@pytest.mark.parametrize(
    ("name", "regions", "action", "region", "start_hour"),
    [
        ("run-now", ("ca", "qc"), "start", "ca", 0),  # fastest GPU
        ("lowest-energy", ("ca", "qc"), "start", "qc", 0),  # T4 draws less energy
        ("spatial", ("ca", "qc"), "start", "qc", 0),  # clean grid now
        ("wait-awhile", ("ca", "qc"), "hold", "ca", 6),  # home region, clean window at 6 h
        ("carbon-window", ("ca", "qc"), "start", "qc", 0),  # Quebec beats waiting
        ("carbon-window", ("ca",), "hold", "ca", 6),  # only California: wait for the window
        ("oracle", ("ca",), "hold", "ca", 6),
    ],
)
def test_what_each_policy_chooses(
    name: str, regions: tuple[str, ...], action: str, region: str, start_hour: int,
    two_regions: Cluster,
) -> None:  # fmt: skip
    devs, fcs = two_regions
    (decision,) = get_policy(name).plan(NOW, [job("a", regions=regions)], devs, fcs)
    assert decision.action == action
    assert decision.chosen is not None
    assert decision.chosen.region == region
    assert decision.chosen.start == NOW + timedelta(hours=start_hour)


@pytest.mark.parametrize(
    ("deadline_h", "margin", "action"),
    [
        (12.0, 0.0, "hold"),
        (2.0, 0.0, "start"),  # the window opens after the deadline
        (6 + 12 / 60, 0.0, "hold"),  # the window's first slot is still safe
        (6 + 12 / 60, 10.0, "start"),  # ... but not with a 10x estimate margin
    ],
)
def test_deadline_safety(
    deadline_h: float, margin: float, action: str, two_regions: Cluster
) -> None:
    devs, fcs = two_regions
    policy = get_policy("carbon-window", duration_margin=margin, guard_s=0.0)
    (decision,) = policy.plan(NOW, [job("a", hours=deadline_h, regions=("ca",))], devs, fcs)
    assert decision.action == action


@pytest.mark.parametrize("name", ["carbon-window", "wait-awhile", "oracle"])
@pytest.mark.parametrize("into_slot_s", [0, 41])
def test_a_job_without_deadline_runs_as_soon_as_possible(
    name: str, into_slot_s: int, two_regions: Cluster
) -> None:
    """DESIGN.md: no deadline = run as soon as possible; only a deadline buys waiting time."""
    devs, fcs = two_regions
    now = NOW + timedelta(seconds=into_slot_s)
    (asap,) = get_policy(name).plan(now, [job("a", hours=None, regions=("ca",))], devs, fcs)
    assert asap.action == "start"
    assert asap.chosen is not None and asap.chosen.start == now
    (patient,) = get_policy(name).plan(now, [job("b", hours=12.0, regions=("ca",))], devs, fcs)
    assert patient.action == "hold"
    busy = [replace(d, busy_until=NOW + timedelta(minutes=20)) for d in devs]
    (waiting,) = get_policy(name).plan(now, [job("c", hours=None, regions=("ca",))], busy, fcs)
    assert waiting.action == "hold" and waiting.chosen is not None
    assert waiting.chosen.start == NOW + timedelta(minutes=30)  # the first start a GPU is free


@pytest.mark.parametrize("name", ["carbon-window", "oracle"])
def test_an_urgent_job_goes_where_it_still_finishes_in_time(
    name: str, two_regions: Cluster
) -> None:
    """Past its latest safe start, the cheapest GPU (a Quebec T4) would end after the deadline:
    the job runs on the faster California GPU, which still meets it."""
    devs, fcs = two_regions
    probe = job("probe", regions=("qc", "ca"))
    t4 = estimate_on(probe, devs[0]).duration_s
    rtx = estimate_on(probe, devs[-1]).duration_s
    assert rtx < t4
    hours = (rtx + t4) / 2 / 3600  # in time on the RTX 6000 Ada only
    (decision,) = get_policy(name).plan(NOW, [job("a", hours=hours, regions=("qc", "ca"))],
                                        devs, fcs)  # fmt: skip
    assert decision.action == "start"
    assert decision.chosen is not None and decision.chosen.gpu == "RTX6000-Ada"


def test_a_job_past_its_latest_start_runs_now(two_regions: Cluster) -> None:
    devs, fcs = two_regions
    late = job("late", hours=0.01, regions=("ca",))
    (decision,) = get_policy("carbon-window").plan(NOW, [late], devs, fcs)
    assert decision.action == "start"


def test_an_urgent_job_takes_another_pool_when_its_own_is_busy() -> None:
    busy = devices("qc", "CA-QC", "T4", 1, busy_until=NOW + timedelta(minutes=5))
    devs = busy + devices("ca", "US-CAL-CISO", "RTX6000-Ada", 1)
    fcs = {z: forecast(z, [v] * 4) for z, v in (("CA-QC", 30.0), ("US-CAL-CISO", 400.0))}
    urgent = job("u", hours=0.2)
    relaxed = job("r", hours=10.0, submitted=NOW - timedelta(minutes=1))
    decisions = get_policy("carbon-window").plan(NOW, [urgent, relaxed], devs, fcs)
    by_id = {d.job_id: d for d in decisions}
    assert by_id["u"].action == "start"
    assert by_id["u"].chosen is not None and by_id["u"].chosen.region == "ca"
    assert by_id["r"].action == "hold"


def _planned_starts(decisions: list[Decision]) -> Counter[object]:
    return Counter(d.chosen.start for d in decisions if d.chosen is not None)


def test_capacity_limits_how_many_jobs_share_a_window() -> None:
    devs = devices("ca", "US-CAL-CISO", "RTX6000-Ada", 1)
    ciso = [400.0] * 6 + [100.0] * 2 + [400.0] * 22
    fcs = {"US-CAL-CISO": forecast("US-CAL-CISO", ciso)}
    jobs = [job(f"j{i}", hours=24, requests=6000) for i in range(6)]  # ~46 min each
    decisions = get_policy("carbon-window", herd_penalty=0.0).plan(NOW, jobs, devs, fcs)
    plans = sorted((d.chosen.start, d.chosen.duration_s) for d in decisions if d.chosen)
    assert len({start for start, _ in plans}) == len(plans), "two runs planned at once on 1 GPU"
    window = (NOW + timedelta(hours=5), NOW + timedelta(hours=8))
    busy_s = sum(duration for start, duration in plans if window[0] <= start < window[1])
    assert 0 < busy_s <= 3 * 3600 + 900  # one GPU cannot run more than the window holds


@pytest.mark.parametrize(("penalty", "min_distinct"), [(0.0, 1), (1.0, 3)])
def test_anti_herding_spreads_short_jobs(penalty: float, min_distinct: int) -> None:
    devs = devices("ca", "US-CAL-CISO", "RTX6000-Ada", 24)  # all could start at once
    ciso = [400.0] * 6 + [100.0, 101.0, 102.0, 103.0] + [400.0] * 20
    fcs = {"US-CAL-CISO": forecast("US-CAL-CISO", ciso)}
    jobs = [job(f"j{i}", hours=24, requests=300) for i in range(24)]  # ~80 s each
    decisions = get_policy("carbon-window", herd_penalty=penalty).plan(NOW, jobs, devs, fcs)
    starts = _planned_starts(decisions)
    assert len(starts) >= min_distinct
    if penalty == 0.0:
        assert max(starts.values()) > len(jobs) // 2


@pytest.mark.parametrize(("risk", "action"), [(0.0, "hold"), (1.0, "start")])
def test_risk_aversion_distrusts_uncertain_windows(risk: float, action: str) -> None:
    devs = devices("ca", "US-CAL-CISO", "RTX6000-Ada", 1)
    values = [400.0] * 6 + [100.0] * 6 + [400.0] * 18
    upper = [420.0] * 6 + [500.0] * 6 + [420.0] * 18  # the clean window is a guess
    fcs = {"US-CAL-CISO": forecast("US-CAL-CISO", values, upper=upper)}
    (decision,) = get_policy("carbon-window", risk_aversion=risk).plan(NOW, [job("a")], devs, fcs)
    assert decision.action == action


@pytest.mark.parametrize(("min_saving", "action"), [(0.01, "hold"), (0.2, "start")])
def test_small_gains_do_not_justify_waiting(min_saving: float, action: str) -> None:
    devs = devices("ca", "US-CAL-CISO", "RTX6000-Ada", 1)
    fcs = {"US-CAL-CISO": forecast("US-CAL-CISO", [400.0] * 6 + [360.0] * 24)}
    policy = get_policy("carbon-window", min_saving=min_saving)
    (decision,) = policy.plan(NOW, [job("a")], devs, fcs)
    assert decision.action == action


def test_replanning_is_a_pure_function_of_the_inputs(two_regions: Cluster) -> None:
    devs, fcs = two_regions
    policy = get_policy("carbon-window")
    jobs = [job(f"j{i}", regions=("ca",)) for i in range(2)]  # two GPUs in ca
    assert policy.plan(NOW, jobs, devs, fcs) == policy.plan(NOW, jobs, devs, fcs)
    flat = {**fcs, "US-CAL-CISO": forecast("US-CAL-CISO", [100.0] * 30)}
    assert {d.action for d in policy.plan(NOW, jobs, devs, flat)} == {"start"}


def test_decisions_carry_the_run_now_counterfactual(two_regions: Cluster) -> None:
    devs, fcs = two_regions
    (decision,) = get_policy("carbon-window").plan(NOW, [job("a")], devs, fcs)
    assert decision.run_now is not None and decision.chosen is not None
    assert decision.run_now.gpu == "RTX6000-Ada"  # the fastest
    assert decision.chosen.total_g < decision.run_now.total_g
    assert decision.alternatives and decision.alternatives[0].region != decision.chosen.region


@pytest.mark.parametrize(
    ("params", "match"),
    [({"herd": 1}, "unknown parameter"),
     # out of range: the message says what is allowed
     ({"risk_aversion": 2.0}, r"risk_aversion=2.0: must be 0 to 1$"),
     ({"min_saving": -1}, r"min_saving=-1: must be 0 or more and below 1$"),
     ({"slot_s": 0}, "slot_s=0: must be more than 0 and at most 86400"),
     # a value of the wrong type (a replay's `--policy carbon-window:min_saving=abc`, a TOML
     # string): named, not a TypeError from comparing it
     ({"min_saving": "abc"}, "min_saving='abc': not a number"),
     ({"home_only": "yes"}, "home_only='yes': not true or false"),
     # sizes that would allocate a cube without end or overflow a time, and NaN
     ({"horizon_slots": 10**9}, "horizon_slots"), ({"slot_s": 10**12}, "slot_s"),
     ({"duration_margin": math.inf}, "duration_margin"), ({"guard_s": math.nan}, "guard_s"),
     ({"lifetime_years": math.inf}, "lifetime_years"), ({"alternatives": -1}, "alternatives")],
)  # fmt: skip
def test_bad_parameters_are_rejected(params: dict[str, object], match: str) -> None:
    with pytest.raises(PoliciesError, match=match):
        get_policy("carbon-window", **params)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [("carbon-window", {"alternatives": 2.5}, "alternatives=2.5: not a whole number"),
     ("carbon-window", {"horizon_slots": 9.5}, "horizon_slots=9.5: not a whole number"),
     ("carbon-window", {"min_saving": True}, "min_saving=True: not a number"),
     ("run-now", {"foo": 1}, "run-now: unknown parameter(s) foo (known: lifetime_years)"),
     ("run-now", {"name": "x"}, "run-now: unknown parameter(s) name"),
     ("run-now", {"recalibration": 3}, "run-now: unknown parameter(s) recalibration"),
     ("run-now", {"lifetime_years": "abc"}, "lifetime_years='abc': not a number"),
     ("run-now", {"lifetime_years": -1}, "lifetime_years=-1: must be 0.1 to 100 years"),
     # a lifetime of 5e-324 years made every job's embodied grams infinite
     ("run-now", {"lifetime_years": 5e-324}, "lifetime_years=5e-324: must be 0.1 to 100"),
     # and one of 1e308 years made them 0
     ("run-now", {"lifetime_years": 1e308}, "lifetime_years=1e+308: must be 0.1 to 100"),
     ("spatial", {"foo": 1}, "spatial: unknown parameter(s) foo (known: alternatives, lifetime"),
     ("spatial", {"alternatives": 1.5}, "alternatives=1.5: not a whole number"),
     ("lowest-energy", {"alternatives": -1}, "alternatives=-1: must be 0 or more"),
     ("lowest-energy", {"lifetime_years": math.nan}, "lifetime_years=nan: must be 0.1 to 100")],
)  # fmt: skip
def test_every_policy_names_a_bad_parameter(
    name: str, params: dict[str, object], message: str
) -> None:
    """Each of these built a policy that failed in its first plan with a TypeError or
    AttributeError (or, for a negative lifetime, planned with negative embodied grams)."""
    with pytest.raises(PoliciesError) as caught:
        get_policy(name, **params)
    assert message in str(caught.value)
    assert get_policy(name, lifetime_years=3).plan(NOW, [], [], {}) == []  # good ones still build


@pytest.mark.parametrize("name", ["carbon-window", "wait-awhile"])
def test_chunked_cubes_decide_like_one_cube(name: str, two_regions: Cluster) -> None:
    devs, fcs = two_regions
    jobs = [job(f"j{i}", hours=4 + i, regions=("ca", "qc")) for i in range(7)]
    whole = get_policy(name).plan(NOW, jobs, devs, fcs)
    assert get_policy(name, chunk_jobs=2).plan(NOW, jobs, devs, fcs) == whole


def test_a_job_is_never_planned_onto_a_gpu_still_running_another() -> None:
    """The GPU frees at 35 min: the 30-min slot is the cleanest and its GPU-seconds would
    hold a 2-minute job, but the GPU is busy when the slot starts."""
    busy_until = NOW + timedelta(minutes=35)
    devs = devices("ca", "US-CAL-CISO", "RTX6000-Ada", 1, busy_until=busy_until)
    values = [400.0, 400.0, 100.0, 150.0] + [400.0] * 100
    fcs = {"US-CAL-CISO": forecast("US-CAL-CISO", values, step_s=900)}
    (decision,) = get_policy("carbon-window").plan(NOW, [job("a", regions=("ca",))], devs, fcs)
    assert decision.action == "hold"
    assert decision.chosen is not None and decision.chosen.start == NOW + timedelta(minutes=45)


def test_a_late_job_waits_for_a_fast_gpu_rather_than_end_late_on_a_free_slow_one() -> None:
    """Past its latest safe start: the T4 is free but would end after the deadline, the RTX 6000
    Ada frees in 5 minutes and can start at the next slot (15 min) and still end in time."""
    fast = devices("ca", "US-CAL-CISO", "RTX6000-Ada", 1, busy_until=NOW + timedelta(minutes=5))
    devs = devices("qc", "CA-QC", "T4", 1) + fast
    fcs = {z: forecast(z, [v] * 30) for z, v in (("CA-QC", 30.0), ("US-CAL-CISO", 300.0))}
    t4_s, rtx_s = 5977.2, 4719.2  # llama-3b, 6,000 requests on each GPU (estimated)
    late = job("late", hours=(900 + rtx_s + 180) / 3600, requests=6000, model="llama-3b")
    assert t4_s > (late.deadline - NOW).total_seconds()  # type: ignore[operator]
    (decision,) = get_policy("carbon-window").plan(NOW, [late], devs, fcs)
    assert decision.action == "hold", decision.reason
    assert decision.chosen is not None and decision.chosen.gpu == "RTX6000-Ada"
    assert decision.chosen.start == NOW + timedelta(minutes=15)
    # Both past their latest safe start, both end in time with the 25 % margin: the cleaner.
    safe = job("ok", hours=(t4_s * 1.25 + 120) / 3600, requests=6000, model="llama-3b")
    (decision,) = get_policy("carbon-window").plan(NOW, [safe], devs, fcs)
    assert decision.action == "start" and decision.chosen is not None
    assert decision.chosen.gpu == "T4", decision.reason


@pytest.mark.parametrize("name", ALL)
def test_with_recalibration_plans_a_copy_on_the_learned_factors(
    name: str, two_regions: Cluster
) -> None:
    devs, fcs = two_regions
    policy = get_policy(name)
    (base,) = policy.plan(NOW, [job("a", hours=None)], devs, fcs)
    assert base.chosen is not None
    model = job("a").model.name
    doubled = Recalibration.from_factors(
        RecalibrationFactor(model, gpu, samples=5, energy_log=math.log(2), measured_s=3600.0)
        for gpu in ("T4", "RTX6000-Ada")
    )
    (tuned,) = with_recalibration(policy, doubled).plan(NOW, [job("a", hours=None)], devs, fcs)
    assert tuned.chosen is not None and tuned.chosen.gpu == base.chosen.gpu
    assert tuned.chosen.energy_j == pytest.approx(2 * base.chosen.energy_j)
    assert policy.plan(NOW, [job("a", hours=None)], devs, fcs) == [base]  # original unchanged


@pytest.mark.parametrize(("urgent_s", "t4_goes_to"), [(3600.0, "big"), (math.inf, "small")])
def test_a_scarce_clean_gpu_goes_to_the_job_that_saves_most_on_it(
    urgent_s: float, t4_goes_to: str
) -> None:
    """One clean T4 (free in 2 h) can take only one of two relaxed jobs before its latest safe
    start; the other runs on a dirty GPU. Planned by regret, the big job (which would lose
    more grams elsewhere) gets the T4 although the small one is more urgent; in urgency order
    (``urgent_s`` inf) the small one takes it and the total is higher."""
    free_at = 2 * 3600.0
    t4 = devices("qc", "CA-QC", "T4", 1, busy_until=NOW + timedelta(seconds=free_at))
    devs = t4 + devices("ca", "US-CAL-CISO", "RTX6000-Ada", 1)
    fcs = {z: forecast(z, [v] * 30) for z, v in (("CA-QC", 30.0), ("US-CAL-CISO", 400.0))}
    big, small = job("big", requests=4000), job("small", requests=800)
    d_big, d_small = (estimate_on(j, t4[0]).duration_s for j in (big, small))
    assert d_small / 2 > 60.0

    def due(spec: JobSpec, latest_s: float, d: float) -> JobSpec:  # latest safe start on a T4
        return replace(spec, deadline=NOW + timedelta(seconds=latest_s + 1.25 * d + 900.0))

    small = due(small, free_at + 60.0, d_small)  # more urgent than big ...
    big = due(big, free_at + d_small / 2, d_big)  # ... but neither fits after the other
    policy = get_policy("carbon-window", urgent_s=urgent_s)
    decisions = {d.job_id: d for d in policy.plan(NOW, [small, big], devs, fcs)}
    on_t4 = [k for k, d in decisions.items() if d.chosen is not None and d.chosen.gpu == "T4"]
    assert on_t4 == [t4_goes_to]
    other = "small" if t4_goes_to == "big" else "big"
    assert decisions[other].chosen is not None and decisions[other].chosen.region == "ca"
    total = sum(d.chosen.total_g for d in decisions.values() if d.chosen is not None)
    regret_total = sum(
        d.chosen.total_g
        for d in get_policy("carbon-window").plan(NOW, [small, big], devs, fcs)
        if d.chosen is not None
    )
    assert regret_total <= total
    if urgent_s == math.inf:
        assert regret_total < total


@pytest.mark.parametrize("name", ["wait-awhile", "carbon-window"])
def test_a_job_its_home_cannot_run_goes_elsewhere_not_rejected(
    name: str, two_regions: Cluster
) -> None:
    """Home in Quebec, but it needs more memory than a T4 has: under wait-awhile's home-only
    mask it has no allowed pool, and it takes the rescue path to California instead of being
    rejected (it fits an admissible device)."""
    devs, fcs = two_regions
    big = replace(job("big", regions=("qc", "ca")), min_gpu_memory_gb=20.0)
    (decision,) = get_policy(name).plan(NOW, [big], devs, fcs)
    assert decision.action != "reject"
    assert decision.chosen is not None and decision.chosen.region == "ca"
    nowhere = replace(big, min_gpu_memory_gb=1000.0)
    assert get_policy(name).plan(NOW, [nowhere], devs, fcs)[0].action == "reject"


@pytest.mark.parametrize("name", ["carbon-window", "carbon-lookahead", "wait-awhile"])
def test_a_job_past_its_latest_safe_start_starts_now_when_a_device_is_free(name: str) -> None:
    """A 30-minute guard puts the job's latest safe start 10 minutes in the past, though the
    next slot, 15 minutes away and ten times cleaner, would still end in time with the
    duration margin. The rescue path does not hold a late job for a cheaper slot when a
    device is free now: it starts at once."""
    devs = devices("qc", "CA-QC", "T4", 1)
    fcs = {"CA-QC": forecast("CA-QC", [300.0] + [30.0] * 40, step_s=900)}
    d = estimate_on(job("probe", regions=("qc",)), devs[0]).duration_s
    late = replace(job("late", regions=("qc",)), deadline=NOW + timedelta(seconds=1.25 * d + 1200))
    params = {} if name == "wait-awhile" else {"guard_s": 1800}
    (decision,) = get_policy(name, **params).plan(NOW, [late], devs, fcs)
    assert decision.action == "start", decision.reason
    assert decision.chosen is not None and decision.chosen.start == NOW
    assert "past its latest safe start" in decision.reason


def test_lookahead_lets_a_short_job_run_clean_before_a_long_one() -> None:
    """One clean T4, one dirty RTX 6000 Ada. The long job has the larger regret, so the greedy
    gives it the T4 now and the short job, which must start within ~1.5 h, starts at once on
    the dirty GPU. The look-ahead LP runs the short job on the T4 first and holds the long one
    for the T4 right after: both run clean, deadlines kept."""
    devs = devices("qc", "CA-QC", "T4", 1) + devices("pace", "US-NW-PACE", "RTX6000-Ada", 1)
    fcs = {"CA-QC": forecast("CA-QC", [30.0] * 30),
           "US-NW-PACE": forecast("US-NW-PACE", [600.0] * 30)}  # fmt: skip
    long = job("long", hours=12.0, requests=16384, regions=("qc", "pace"))
    short_d = estimate_on(job("probe", requests=512), devs[0]).duration_s
    short = replace(
        job("short", requests=512, regions=("qc", "pace")),
        deadline=NOW + timedelta(seconds=5400 + 1.25 * short_d + 900),
    )
    greedy = {d.job_id: d for d in get_policy("carbon-window").plan(NOW, [long, short], devs, fcs)}
    joint = {
        d.job_id: d for d in get_policy("carbon-lookahead").plan(NOW, [long, short], devs, fcs)
    }
    assert greedy["short"].chosen is not None and greedy["short"].chosen.region == "pace"
    assert joint["short"].action == "start"
    assert joint["short"].chosen is not None and joint["short"].chosen.region == "qc"
    assert joint["long"].action == "hold"
    assert joint["long"].chosen is not None and joint["long"].chosen.region == "qc"
    assert joint["long"].chosen.start >= NOW + timedelta(seconds=short_d)


@pytest.mark.parametrize("name", ["carbon-window", "run-now", "spatial", "lowest-energy"])
def test_run_now_is_a_start_the_job_could_have_had(name: str, two_regions: Cluster) -> None:
    """Issue 14 item 2: the fastest GPU (California) is held by another job for 3 h, so the
    counterfactual is the fastest *free* one (Quebec's T4) now, and no alternative names a GPU
    that is busy at its start."""
    devs, fcs = two_regions
    busy_until = NOW + timedelta(hours=3)
    held = [replace(d, busy_until=busy_until) if d.region == "ca" else d for d in devs]
    (decision,) = get_policy(name).plan(NOW, [job("a")], held, fcs)
    assert decision.run_now is not None
    assert decision.run_now.region == "qc"
    assert decision.run_now.start == NOW
    busy = {d.device_id: d.busy_until for d in held if d.busy_until is not None}
    for alt in (decision.run_now, *decision.alternatives):
        assert all(busy.get(i) is None or busy[i] <= alt.start for i in alt.device_ids), alt


def test_run_now_waits_for_the_first_gpu_to_free_up(two_regions: Cluster) -> None:
    """Every GPU busy: the counterfactual starts when the first one frees up (the T4 at 1 h,
    before the Ada at 2 h), on that GPU."""
    devs, fcs = two_regions
    held = [
        replace(d, busy_until=NOW + timedelta(hours=1 if d.region == "qc" else 2)) for d in devs
    ]
    (decision,) = get_policy("carbon-window").plan(NOW, [job("a")], held, fcs)
    assert decision.run_now is not None
    assert (decision.run_now.region, decision.run_now.start) == ("qc", NOW + timedelta(hours=1))
