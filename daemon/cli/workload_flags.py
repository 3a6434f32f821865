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

__all__ = ["FlagError", "as_flag_error", "flags_named"]


class FlagError(UsageError):
    """A workload flag out of range (exit 2): ``field`` the flag (``--batch-size``), ``value``
    and ``allowed`` as :class:`InvalidWorkloadError` has them."""

    def __init__(self, message: str, *, field: str, value: str | None, allowed: str | None):
        super().__init__(message)
        self.field, self.value, self.allowed = field, value, allowed


def as_flag_error(exc: InvalidWorkloadError, flags: Mapping[str, str]) -> Exception:
    """``exc`` worded with the flag that ``flags`` maps its field to (``--batch-size must be
    1 to 1,000,000, got 0``; an unknown precision ``--precision: unknown precision 'fp7'
    (known: ...)``); ``exc`` itself where its field is none of ``flags``'."""
    flag = flags.get(exc.field) if exc.field is not None else None
    if flag is None:
        return exc
    if exc.allowed is None:  # its message says what is wrong without the field's name
        message = f"{flag}: {exc}"
    else:
        message = f"{flag} must be {exc.allowed}, got {exc.value}"
    return FlagError(message, field=flag, value=exc.value, allowed=exc.allowed)


@contextmanager
def flags_named(flags: Mapping[str, str]) -> Iterator[None]:
    """Re-raise an :class:`InvalidWorkloadError` of a field in ``flags`` (field name to the
    flag that gave it) as a :class:`UsageError` naming the flag (:func:`as_flag_error`).

    Raises:
        FlagError: a field that ``flags`` names is out of range (a UsageError).
        InvalidWorkloadError: any other workload error, as raised.
    """
    try:
        yield
    except InvalidWorkloadError as exc:
        error = as_flag_error(exc, flags)
        if error is exc:
            raise
        raise error from exc
