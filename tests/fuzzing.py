"""How many examples a property test runs under the loaded hypothesis profile."""

from __future__ import annotations

from hypothesis import settings

__all__ = ["examples"]


def examples(weight: float, floor: int = 10) -> int:
    """A test's share of the profile's examples (``make fuzz``: 17,000 x ``weight``), at least
    ``floor``: cheap properties run more, slow ones fewer, about 100,000 in all. Read when the
    test module is imported, after the profile is loaded (``tests/conftest.py``)."""
    return max(floor, round(settings().max_examples * weight))
