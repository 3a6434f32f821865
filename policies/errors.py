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
    """A GPU name or alias the catalog does not know."""

    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        super().__init__("GPU", name, known)


class UnknownModelError(CatalogError):
    """A model name or alias the catalog does not know."""

    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        super().__init__("model", name, known)


class InvalidWorkloadError(PoliciesError, ValueError):
    """A workload parameter out of range (negative tokens, zero batch, ...)."""


class InvalidOutcomeError(PoliciesError, ValueError):
    """A measured run that cannot be accounted (end before start, no intensity covering it)."""
