"""numba, for the planner's loops that must stay loops (:mod:`policies.greedy`,
:mod:`policies.means`): compiled without fast-math, so each loop performs the NumPy
reference's floating-point operations in the same order and agrees with it bit for bit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba

__all__ = ["compiled"]


def compiled(func: Callable[..., Any]) -> Any:
    """``numba.njit``, cached on disk (no compilation at each start) where a cache directory
    can be written: beside this file or the user's cache directory; else compiled per process
    (a read-only install run by a user without a home)."""
    try:
        return numba.njit(cache=True)(func)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return numba.njit(func)
