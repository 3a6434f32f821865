"""numba's on-disk cache (:mod:`policies.compiled`, ``cache=True``) checks only the source
file of the kernel it compiled: a kernel that calls a kernel of another module keeps, after an
edit to that module alone (a ``git pull`` that touches only it), the callee it was compiled
with, while the callee called directly is recompiled, so the two disagree silently. Hence every
kernel calls only kernels of its own module (as :mod:`policies.greedy_kernels` says)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from types import CodeType, ModuleType
from typing import Any

from numba.core.registry import CPUDispatcher

import policies


def _modules() -> Iterator[ModuleType]:
    for info in pkgutil.walk_packages(policies.__path__, "policies."):
        yield importlib.import_module(info.name)


def _names(code: CodeType) -> Iterator[str]:
    """The global names ``code`` reads, nested code (comprehensions) included."""
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _names(const)


def _calls() -> Iterator[tuple[str, str]]:
    """(kernel, kernel it calls) for every compiled kernel of ``policies``, as
    ``module.name``."""
    for module in _modules():
        for name, value in vars(module).items():
            if not isinstance(value, CPUDispatcher):
                continue
            func: Any = value.py_func
            if func.__module__ != module.__name__:
                continue  # imported: checked in its own module
            for called in set(_names(func.__code__)):
                target = func.__globals__.get(called)
                if isinstance(target, CPUDispatcher):
                    callee: Any = target.py_func
                    yield f"{module.__name__}.{name}", f"{callee.__module__}.{callee.__name__}"


def test_every_kernel_calls_only_kernels_of_its_own_module() -> None:
    crossing = sorted(
        (kernel, callee)
        for kernel, callee in _calls()
        if kernel.rsplit(".", 1)[0] != callee.rsplit(".", 1)[0]
    )
    assert crossing == []


def test_the_check_sees_the_calls_between_kernels() -> None:
    """It finds the greedy's calls (so an empty list above is not a check that saw nothing)."""
    calls = set(_calls())
    assert ("policies.greedy_kernels.assign_kernel", "policies.greedy_kernels._feasible") in calls
    weighted = "policies.greedy_kernels.assign_weighted_kernel"
    assert (weighted, "policies.greedy_kernels._rescue") in calls
