"""``carbon-window`` started from estimates made elsewhere (``preload_estimates``: what a
benchmark times a policy's plan from) plans from them, not from its own."""

from __future__ import annotations

from dataclasses import replace

import pytest

from policies import get_policy
from policies.builtin.window import CarbonWindow
from policies.estimates import estimate_matrix
from policies.footprint import Estimate
from policies.scoring import make_pools
from policies.types import Device
from tests.policies.conftest import NOW, FakeForecast, job

Cluster = tuple[list[Device], dict[str, FakeForecast]]


@pytest.mark.parametrize("name", ["carbon-window", "wait-awhile", "oracle"])
def test_a_policy_plans_from_the_estimates_it_was_given(name: str, two_regions: Cluster) -> None:
    devs, fcs = two_regions
    jobs = [job("a", hours=None), job("b", requests=1024)]
    made: dict[tuple[object, ...], Estimate] = {}
    estimate_matrix(jobs, make_pools(devs), made)  # the scorer's own, by its keys
    assert made

    def preloaded(estimates: dict[tuple[object, ...], Estimate]) -> CarbonWindow:
        policy = get_policy(name)
        assert isinstance(policy, CarbonWindow)
        policy.preload_estimates(estimates)
        return policy

    base = get_policy(name).plan(NOW, jobs, devs, fcs)
    assert preloaded(made).plan(NOW, jobs, devs, fcs) == base  # its own would be these

    doubled = {
        key: replace(est, energy_j=2 * est.energy_j, prefill_energy_j=2 * est.prefill_energy_j,
                     decode_energy_j=2 * est.decode_energy_j)
        for key, est in made.items()
    }  # fmt: skip
    tuned = preloaded(doubled).plan(NOW, jobs, devs, fcs)
    for before, after in zip(base, tuned, strict=True):
        assert before.chosen is not None and after.chosen is not None
        assert after.chosen.gpu == before.chosen.gpu
        assert after.chosen.energy_j == pytest.approx(2 * before.chosen.energy_j)

    unfit = {key: replace(est, fits=False, reason="preloaded") for key, est in made.items()}
    assert {d.action for d in preloaded(unfit).plan(NOW, jobs, devs, fcs)} == {"reject"}
