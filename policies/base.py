"""The policy interface and the registry that finds policies by name."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields, is_dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from policies.errors import PoliciesError
from policies.footprint.recalibration import Recalibration
from policies.parameters import check_keywords
from policies.types import Decision, Device, JobSpec, ZoneIntensity

__all__ = [
    "Policy",
    "UnknownPolicyError",
    "get_policy",
    "policy_names",
    "register_policy",
    "with_plan_interval",
    "with_recalibration",
]


class UnknownPolicyError(PoliciesError, LookupError):
    """A policy name (``name``) that is not registered; ``known``: the registered names."""

    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown policy {name!r} (known: {', '.join(known)})")


class Policy(Protocol):
    """A pure planner.

    ``plan`` returns exactly one decision per job in ``jobs``. It must not read the clock,
    do I/O or keep state between calls that changes its answer for the same inputs, with one
    exception: a held decision that reads as the one it returned for the job last call may be
    that very object, its run-now counterfactual the one it was built with (the daemon stores
    a decision only when its action, policy, reason, devices or start change, so it never
    reads such a counterfactual; :mod:`policies.incremental`).
    """

    @property
    def name(self) -> str:
        """The name the policy is registered under."""
        ...

    def plan(
        self,
        now: datetime,
        jobs: Sequence[JobSpec],
        devices: Sequence[Device],
        forecasts: Mapping[str, ZoneIntensity],
    ) -> list[Decision]: ...


_REGISTRY: dict[str, Callable[..., Policy]] = {}


def register_policy(name: str) -> Callable[[Callable[..., Policy]], Callable[..., Policy]]:
    """Class decorator: make a policy constructible by ``name`` with keyword parameters."""

    def decorate(factory: Callable[..., Policy]) -> Callable[..., Policy]:
        _REGISTRY[name] = factory
        return factory

    return decorate


def policy_names() -> tuple[str, ...]:
    """Registered policy names, sorted."""
    return tuple(sorted(_REGISTRY))


def get_policy(name: str, /, **params: Any) -> Policy:
    """Build the policy called ``name`` with ``params``.

    Raises:
        UnknownPolicyError: no policy has that name.
        PoliciesError: a parameter is unknown, or invalid (raised by the policy).
    """
    try:
        factory = _REGISTRY[name.strip().lower()]
    except KeyError:
        raise UnknownPolicyError(name, policy_names()) from None
    if isinstance(factory, type) and is_dataclass(factory):  # its fields are its parameters
        known_params = [f.name for f in fields(factory) if f.init and f.name not in _NOT_PARAMS]
        check_keywords(name, params, known_params)
    return factory(**params)


# A dataclass policy's fields that are not the user's to set: the registered name, the
# factors the daemon learns (``with_recalibration``), its planning interval
# (``with_plan_interval``) and private caches.
_NOT_PARAMS = frozenset({"name", "recalibration", "plan_interval_s", "_cache"})


def with_recalibration(policy: Policy, recalibration: Recalibration) -> Policy:
    """``policy`` estimating with ``recalibration``'s factors (learned from measured outcomes),
    as a copy, when it has a ``recalibration`` attribute; any other policy unchanged."""
    if not hasattr(policy, "recalibration"):
        return policy
    if is_dataclass(policy):
        return replace(policy, recalibration=recalibration)
    clone = copy.copy(policy)
    clone.recalibration = recalibration
    return clone


def with_plan_interval(policy: Policy, plan_s: float) -> Policy:
    """``policy`` planned every ``plan_s`` seconds (the daemon's ``intervals.plan_s``, the
    replay's tick), as a copy, when it has a ``plan_interval_s`` attribute and another value:
    its run-now copies then start at those rounds, as ``run-now`` starts a job
    (:mod:`policies.run_now_claims`). Any other policy, or one planned so already, as is."""
    if getattr(policy, "plan_interval_s", plan_s) == plan_s:
        return policy
    if is_dataclass(policy):
        return replace(policy, plan_interval_s=plan_s)
    clone = copy.copy(policy)
    clone.plan_interval_s = plan_s  # type: ignore[attr-defined]
    return clone
