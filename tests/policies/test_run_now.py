"""run-now's round decides what its rule says, job by job: the fastest fitting pool among
those with enough free devices (the first on a tie), else hold when any pool fits, else reject;
checked against that rule written plainly (every pool estimated, all fitting pools sorted)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import pytest

from policies import Decision, Device, JobSpec, ZoneIntensity, get_policy
from policies.candidates import device_groups, estimate_on, is_free, unfit_reason
from policies.placement import place
from tests.policies.conftest import NOW
from tests.policies.random_cluster import world


def _by_the_rule(
    now: datetime,
    jobs: Sequence[JobSpec],
    devices: Sequence[Device],
    forecasts: Mapping[str, ZoneIntensity],
) -> list[Decision]:
    taken: set[str] = set()
    decided = {}
    for job in sorted(jobs, key=lambda j: (-j.priority, j.submitted_at, j.job_id)):
        need = job.workload.tensor_parallel
        fitting = []
        for pool in device_groups(job, devices):
            est = estimate_on(job, pool[0])
            if est.fits and len(pool) >= need:
                fitting.append((est.duration_s, pool, est))
        decision = Decision(job.job_id, "reject", unfit_reason(job, devices), "run-now")
        if fitting:
            decision = Decision(job.job_id, "hold", "waiting for a free fitting GPU", "run-now")
        for _, pool, est in sorted(fitting, key=lambda item: item[0]):
            free = [d for d in pool if is_free(d, now) and d.device_id not in taken]
            if len(free) >= need:
                chosen = tuple(free[:need])
                taken.update(d.device_id for d in chosen)
                alt = place(est, chosen, now, forecasts[chosen[0].zone], 5.0)
                reason = f"fastest free fitting device: {alt.gpu} in {alt.region}"
                decision = Decision(job.job_id, "start", reason, "run-now", alt, alt)
                break
        decided[job.job_id] = decision
    return [decided[job.job_id] for job in jobs]


@pytest.mark.parametrize("seed", range(40))
def test_a_round_decides_by_the_rule(seed: int) -> None:
    w = world(seed, n_devices=4 + seed % 13, n_jobs=30)
    policy = get_policy("run-now", lifetime_years=5.0)
    got = policy.plan(NOW, w.jobs, w.devices, w.forecasts)
    assert got == _by_the_rule(NOW, w.jobs, w.devices, w.forecasts)


def test_the_rounds_checked_start_hold_and_reject() -> None:
    """The cases above are not all of one kind (the check could not fail otherwise)."""
    actions: set[str] = set()
    for seed in range(40):
        w = world(seed, n_devices=4 + seed % 13, n_jobs=30)
        actions |= {d.action for d in _by_the_rule(NOW, w.jobs, w.devices, w.forecasts)}
    assert actions == {"start", "hold", "reject"}
