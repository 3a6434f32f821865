"""The look-ahead's round plan: never above the greedy's as planned, the greedy's own where no
job can wait, and the LP's plan where it is cheaper; its LP, solved through the dual, at the
primal's optimum."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog
from scipy.sparse import coo_matrix, csr_matrix

from policies import Decision, Device, JobSpec, get_policy
from policies.lookahead import _solved_through_dual
from tests.fuzzing import examples
from tests.policies.conftest import NOW, FakeForecast, devices, forecast, job


def _instance(
    seed: int, hours: tuple[float, float]
) -> tuple[list[Device], dict[str, FakeForecast], list[JobSpec]]:
    """Random jobs on two clean T4s and two RTX 6000 Ada in a grid that swings over the day."""
    rng = np.random.default_rng(seed)
    devs = devices("qc", "CA-QC", "T4", 2) + devices("ca", "US-CAL-CISO", "RTX6000-Ada", 2)
    fcs = {
        "CA-QC": forecast("CA-QC", list(rng.uniform(20, 60, 30))),
        "US-CAL-CISO": forecast("US-CAL-CISO", list(rng.uniform(80, 500, 30))),
    }
    jobs = [
        job(
            f"j{i}",
            hours=float(rng.uniform(*hours)),
            requests=int(rng.integers(512, 8192)),
            regions=("qc", "ca"),
        )
        for i in range(12)
    ]
    return devs, fcs, jobs


def _planned_g(decisions: list[Decision]) -> float:
    return sum(d.chosen.total_g for d in decisions if d.chosen is not None)


@pytest.mark.parametrize("seed", range(6))
def test_the_round_plan_is_never_above_the_greedys(seed: int) -> None:
    """Twelve jobs competing for two clean T4s over a day: the look-ahead's plan for the queue
    costs at most the greedy's, as planned (no pessimistic bound: planning cost = grams)."""
    devs, fcs, jobs = _instance(seed, (3.0, 12.0))
    greedy = get_policy("carbon-window").plan(NOW, jobs, devs, fcs)
    joint = get_policy("carbon-lookahead").plan(NOW, jobs, devs, fcs)
    assert all(d.action != "reject" for d in joint)
    assert _planned_g(joint) <= _planned_g(greedy) * (1 + 1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_with_no_job_free_to_wait_the_plan_is_the_greedys(seed: int) -> None:
    """Every job due within the hour (latest safe start nearer than ``urgent_s``): nothing to
    look ahead into, so the look-ahead decides exactly as ``carbon-window``."""
    devs, fcs, jobs = _instance(seed, (0.9, 1.2))
    greedy = get_policy("carbon-window").plan(NOW, jobs, devs, fcs)
    joint = get_policy("carbon-lookahead").plan(NOW, jobs, devs, fcs)
    assert [(d.action, d.chosen) for d in joint] == [(d.action, d.chosen) for d in greedy]


def test_a_cheaper_plan_by_the_lp_replaces_the_greedys() -> None:
    """The two-job case of test_builtin: the LP's plan (both on the clean T4, one after the
    other) is cheaper than the greedy's (the short job on the dirty GPU), so it is taken."""
    devs = devices("qc", "CA-QC", "T4", 1) + devices("pace", "US-NW-PACE", "RTX6000-Ada", 1)
    fcs = {"CA-QC": forecast("CA-QC", [30.0] * 30),
           "US-NW-PACE": forecast("US-NW-PACE", [600.0] * 30)}  # fmt: skip
    long = job("long", hours=12.0, requests=16384, regions=("qc", "pace"))
    short = job("short", hours=3.0, requests=512, regions=("qc", "pace"))
    short = type(short)(short.job_id, short.model, short.workload, NOW,
                        NOW + timedelta(hours=1.7), regions=short.regions)  # fmt: skip
    greedy = get_policy("carbon-window").plan(NOW, [long, short], devs, fcs)
    joint = get_policy("carbon-lookahead").plan(NOW, [long, short], devs, fcs)
    assert _planned_g(joint) < _planned_g(greedy)
    assert {d.chosen.region for d in joint if d.chosen is not None} == {"qc"}


# half the profile's examples: each solves two LPs with HiGHS
@settings(max_examples=examples(0.5), deadline=None)
@given(
    seed=st.integers(0, 10_000),
    jobs=st.integers(1, 10),
    cells=st.integers(1, 8),
    rows=st.integers(1, 12),
    room=st.sampled_from([0.0, 1.0, 2.0]),
)
def test_the_lp_solved_through_its_dual_is_at_the_primals_optimum(
    seed: int, jobs: int, cells: int, rows: int, room: float
) -> None:
    """The look-ahead's LP shape (each job's cells and a left-out column sum to 1; device rows
    over the cells that cover an instant, often binding): the solution read off the dual is
    feasible and costs what HiGHS's optimum of the primal costs."""
    rng = np.random.default_rng(seed)
    n = jobs * cells
    job = np.concatenate((np.repeat(np.arange(jobs), cells), np.arange(jobs)))
    cost = np.concatenate((rng.uniform(1.0, 10.0, n), np.full(jobs, 100.0)))
    covers = (rng.uniform(size=(rows, n)) < 0.3) * rng.integers(1, 3, n)
    a_ub = csr_matrix(np.hstack((covers, np.zeros((rows, jobs)))).astype(np.float64))
    b_ub = np.full(rows, room)
    a_eq = coo_matrix((np.ones(len(job)), (job, np.arange(len(job))))).tocsr()
    b_eq = np.ones(jobs)
    primal = linprog(cost, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=(0, None),
                     method="highs")  # fmt: skip
    x = _solved_through_dual(cost, a_ub, b_ub, a_eq, b_eq)
    assert primal.status == 0 and x is not None
    assert x.min() >= 0.0
    assert np.allclose(a_eq @ x, b_eq, atol=1e-7)
    assert (a_ub @ x <= b_ub + 1e-7).all()
    assert cost @ x == pytest.approx(primal.fun, rel=1e-7)
