"""``datetime.isoformat`` for the times carbond writes most (in UTC), at about two thirds of
its cost: CPython formats a UTC offset and each two-digit field through C's ``sprintf``, some
7 times per job in a replay (the ledger's times, an outcome's ends, the simulated executor's
token), 6 % of a run-now replay's instructions."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["isoformat"]

_TWO = tuple(f"{i:02d}" for i in range(60))  # months, days, hours, minutes, seconds


def isoformat(value: datetime) -> str:
    """``value.isoformat()``, the same text: built from its fields for a plain datetime in
    :data:`datetime.UTC` (its offset is always ``+00:00``, whatever its ``fold``), else
    asked of ``value`` (another zone, a naive time, a subclass that may format otherwise)."""
    if type(value) is not datetime or value.tzinfo is not UTC:
        return value.isoformat()
    two, us = _TWO, value.microsecond
    if us:
        return "%04d-%s-%sT%s:%s:%s.%06d+00:00" % (  # noqa: UP031  # cheaper than an f-string
            value.year, two[value.month], two[value.day],
            two[value.hour], two[value.minute], two[value.second], us,
        )  # fmt: skip
    return "%04d-%s-%sT%s:%s:%s+00:00" % (  # noqa: UP031
        value.year, two[value.month], two[value.day],
        two[value.hour], two[value.minute], two[value.second],
    )  # fmt: skip
