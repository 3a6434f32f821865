"""The workload flags of ``carbond estimate`` and ``carbond advise``, named as typed.

:meth:`policies.footprint.Workload.validate` (and ``ModelSpec.from_params``, ``advise``)
check the bounds and name their fields as the code does (``batch_size must be >= 1``); the
user typed ``--batch-size 0``. The error names its field, its value and what the field takes
(:class:`policies.errors.InvalidWorkloadError`), so the CLI only renames the field to its
flag: the bounds are checked once, where they are defined.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from daemon.errors import UsageError
from policies.errors import InvalidWorkloadError

__all__ = ["as_flag_error", "flags_named"]


def as_flag_error(exc: InvalidWorkloadError, flags: Mapping[str, str]) -> Exception:
    """``exc`` worded with the flag that ``flags`` maps its field to (``--batch-size must be
    1 to 1,000,000, got 0``; an unknown precision ``--precision: unknown precision 'fp7'
    (known: ...)``); ``exc`` itself where its field is none of ``flags``'."""
    flag = flags.get(exc.field) if exc.field is not None else None
    if flag is None:
        return exc
    if exc.allowed is None:  # its message says what is wrong without the field's name
        return UsageError(f"{flag}: {exc}")
    return UsageError(f"{flag} must be {exc.allowed}, got {exc.value}")


@contextmanager
def flags_named(flags: Mapping[str, str]) -> Iterator[None]:
    """Re-raise an :class:`InvalidWorkloadError` of a field in ``flags`` (field name to the
    flag that gave it) as a :class:`UsageError` naming the flag (:func:`as_flag_error`).

    Raises:
        UsageError: a field that ``flags`` names is out of range.
        InvalidWorkloadError: any other workload error, as raised.
    """
    try:
        yield
    except InvalidWorkloadError as exc:
        error = as_flag_error(exc, flags)
        if error is exc:
            raise
        raise error from exc
