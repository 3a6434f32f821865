"""A policy's keyword parameters, checked where it is built: each one named when it is
unknown, of the wrong type or out of range (a replay's ``--policy run-now:lifetime_years=abc``
or a config's ``[policy] params`` must fail there, not in the first plan)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from policies.errors import PoliciesError
from policies.footprint.accounting import MAX_LIFETIME_YEARS, MIN_LIFETIME_YEARS

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["LIFETIME_CHECK", "Check", "check_fields", "check_keywords"]

# A field, whether a value of its type is allowed (written so that NaN fails), and what is.
Check = tuple[str, Callable[[Any], bool], str]
LIFETIME_CHECK: Check = (
    "lifetime_years", lambda v: MIN_LIFETIME_YEARS <= v <= MAX_LIFETIME_YEARS,
    f"{MIN_LIFETIME_YEARS:g} to {MAX_LIFETIME_YEARS:g} years",
)  # fmt: skip

# What a field's annotation asks of a value given as a parameter (TOML, a replay's --policy).
_TYPES: Mapping[str, tuple[Callable[[object], bool], str]] = {
    "bool": (lambda v: isinstance(v, bool), "not true or false"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "not a whole number"),
    "float": (lambda v: isinstance(v, int | float) and not isinstance(v, bool), "not a number"),
}


def check_keywords(policy: str, params: Collection[str], known: Collection[str]) -> None:
    """Raises PoliciesError naming every parameter of ``params`` that ``policy`` lacks."""
    unknown = sorted(set(params) - set(known))
    if unknown:
        names, listed = ", ".join(unknown), ", ".join(sorted(known))
        raise PoliciesError(f"{policy}: unknown parameter(s) {names} (known: {listed})")


def check_fields(parameters: DataclassInstance, checks: Sequence[Check]) -> None:
    """Raises PoliciesError naming the first field of ``parameters`` whose value is not of its
    annotated type (``bool``, ``int``, ``float``), then the first that fails its check."""
    for field in fields(parameters):
        value = getattr(parameters, field.name)
        is_type, wrong = _TYPES.get(str(field.type), (lambda _: True, ""))
        if not is_type(value):
            raise PoliciesError(f"invalid parameter {field.name}={value!r}: {wrong}")
    for name, ok, allowed in checks:
        value = getattr(parameters, name)
        if not ok(value):
            raise PoliciesError(f"invalid parameter {name}={value!r}: must be {allowed}")
