"""Errors raised by :mod:`policies`.

::

    PoliciesError
     ├── CatalogError
     │    ├── UnknownGpuError
     │    └── UnknownModelError
     ├── InvalidWorkloadError
     └── InvalidOutcomeError
"""

from __future__ import annotations

__all__ = [
    "CatalogError",
    "InvalidOutcomeError",
    "InvalidWorkloadError",
    "PoliciesError",
    "UnknownGpuError",
    "UnknownModelError",
]


class PoliciesError(Exception):
    """Root of every error raised by the ``policies`` package."""


class CatalogError(PoliciesError, LookupError):
    """A name that a catalog does not know."""

    def __init__(self, kind: str, name: str, known: tuple[str, ...]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown {kind} {name!r} (known: {', '.join(known)})")


class UnknownGpuError(CatalogError):
    """A GPU name or alias the catalog does not know; ``hint``, when given, says what to do
    (a board NVML discovered: how a site defines it)."""

    def __init__(self, name: str, known: tuple[str, ...], hint: str | None = None) -> None:
        super().__init__("GPU", name, known)
        self.hint = hint
        if hint is not None:
            self.args = (f"{self.args[0]}: {hint}",)


class UnknownModelError(CatalogError):
    """A model name or alias the catalog does not know."""

    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        super().__init__("model", name, known)


class InvalidWorkloadError(PoliciesError, ValueError):
    """A workload parameter out of range (negative tokens, zero batch, ...).

    Where one parameter is at fault the error names it, so that a caller that took it under
    another name (the CLI's ``--batch-size``) can say so without checking the bounds again:

    Attributes:
        field: the parameter as the code names it (``batch_size``, ``precision``), or None
            where no one parameter is at fault.
        value: the value refused, as the message shows it (a count past 24 digits shortened),
            or None.
        allowed: the values it takes, in words (``1 to 1,000,000``), or None where the
            message says what is wrong another way (an unknown precision).
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        value: str | None = None,
        allowed: str | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.value = value
        self.allowed = allowed


class InvalidOutcomeError(PoliciesError, ValueError):
    """A measured run that cannot be accounted (end before start, no intensity covering it)."""
