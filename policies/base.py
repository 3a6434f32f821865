"""The policy interface and the registry that finds policies by name."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from policies.errors import PoliciesError
from policies.types import Decision, Device, JobSpec, ZoneIntensity

__all__ = ["Policy", "UnknownPolicyError", "get_policy", "policy_names", "register_policy"]


class UnknownPolicyError(PoliciesError, LookupError):
    """A policy name that is not registered."""


class Policy(Protocol):
    """A pure planner.

    ``plan`` returns exactly one decision per job in ``jobs``. It must not read the clock,
    do I/O or keep state between calls that changes its answer for the same inputs.
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


def get_policy(name: str, **params: Any) -> Policy:
    """Build the policy called ``name`` with ``params``.

    Raises:
        UnknownPolicyError: no policy has that name.
        PoliciesError: a parameter is invalid (raised by the policy).
    """
    try:
        factory = _REGISTRY[name.strip().lower()]
    except KeyError:
        known = ", ".join(policy_names())
        raise UnknownPolicyError(f"unknown policy {name!r} (known: {known})") from None
    return factory(**params)
