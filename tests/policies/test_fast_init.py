"""``fast_init``'s ``__init__`` builds the same objects as the dataclass's own, for the records
a replay builds per job and for a class with every kind of field it takes."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pickle
from dataclasses import dataclass, field
from typing import Any

import pytest

from policies.fast_init import DATACLASS_INIT, fast_init

# The records a run-now replay builds once or more per job (bench/RESULTS.md, Issue 15).
PER_JOB = {
    "daemon.accounting.unmetered": ["EnergySource"],
    "daemon.service.dispatch": ["Launch"],
    "daemon.executors.base": ["ExitStatus", "LaunchSpec", "RunHandle"],
    "daemon.executors.simulated": ["_Run"],
    "daemon.endings.finishing": ["_Ending"],
    "daemon.ledger.records": ["DecisionRecord", "JobRecord", "RunRecord", "StartedRun"],
    "daemon.ledger.run_batches": ["RunEnd", "RunStart"],
    "daemon.queue.job_request": ["JobRequest"],
    "daemon.replay.driver": ["JobOutcome"],
    "daemon.replay.harness": ["Run"],
    "daemon.run_now_busy": ["Cut"],
    "policies.footprint.accounting": ["CarbonFootprint"],
    "policies.footprint.calibration": ["EstimateInterval"],
    "policies.footprint.estimator": ["Estimate"],
    "policies.footprint.outcome": ["RealisedIntensity"],
    "policies.footprint.power": ["PowerModel"],
    "policies.footprint.runtimes": ["RuntimeProfile"],
    "policies.footprint.serving": ["SteadyState"],
    "policies.footprint.workload": ["Workload"],
    "policies.types": ["Alternative", "Decision", "JobSpec"],
}
RECORDS = [
    getattr(importlib.import_module(module), name)
    for module, names in PER_JOB.items()
    for name in names
]


def _factory() -> list[int]:
    return [1]


@fast_init
@dataclass(frozen=True, slots=True)
class Rich:
    a: int
    b: object
    c: float = 2.5
    d: list[int] = field(default_factory=_factory)
    e: str = field(default="e", kw_only=True)
    f: tuple[int, ...] = field(default_factory=tuple, kw_only=True)
    g: object = None

    def __post_init__(self) -> None:
        if self.a < 0:
            raise ValueError(f"a is {self.a}, c {self.c}, e {self.e}")  # sees every field


@dataclass(frozen=True, slots=True)
class RichPlain:  # Rich as the dataclass builds it
    a: int
    b: object
    c: float = 2.5
    d: list[int] = field(default_factory=_factory)
    e: str = field(default="e", kw_only=True)
    f: tuple[int, ...] = field(default_factory=tuple, kw_only=True)
    g: object = None

    def __post_init__(self) -> None:
        if self.a < 0:
            raise ValueError(f"a is {self.a}, c {self.c}, e {self.e}")


@fast_init
@dataclass(frozen=True, slots=True)
class Child(Rich):  # its parent's slots are the parent's member descriptors
    h: int = 7


CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((1, "b"), {}),
    ((1, "b", 3.5, [2]), {"e": "x", "f": (1,), "g": 0}),
    ((1,), {"b": None, "g": 1}),
    ((-1, "b"), {"e": "y"}),  # __post_init__ raises
    ((1,), {}),  # missing b
    ((1, "b", 3.5, [2], "g", 6), {}),  # too many positional
    ((1, "b"), {"z": 1}),  # an unknown keyword
    ((1, "b"), {"a": 2}),  # a twice
]


def _outcome(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        built = cls(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        return type(exc), str(exc).replace(cls.__qualname__, "CLS")
    return [getattr(built, f.name) for f in dataclasses.fields(built)]


@pytest.mark.parametrize(("args", "kwargs"), CALLS)
def test_rich_builds_what_the_dataclass_builds(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    fast, plain = _outcome(Rich, args, kwargs), _outcome(RichPlain, args, kwargs)
    assert fast == plain
    if isinstance(fast, list):  # the very objects given, the defaults the dataclass's own
        given = [*args, *kwargs.values()]
        built = Rich(*args, **kwargs)
        assert all(any(v is g for g in given) for v in (built.a, built.b))
        assert built.c is RichPlain(*args, **kwargs).c


def test_rich_keeps_the_dataclass_signature_and_names() -> None:
    assert inspect.signature(Rich) == inspect.signature(RichPlain)
    assert inspect.signature(Rich.__init__) == inspect.signature(RichPlain.__init__)
    original = getattr(Rich.__init__, DATACLASS_INIT)
    assert inspect.signature(original) == inspect.signature(Rich.__init__)
    assert Rich.__init__.__qualname__ == "Rich.__init__"
    assert Rich.__init__.__module__ == __name__
    assert Rich.__init__ is not original


def test_each_default_factory_is_called_per_object() -> None:
    one, two = Rich(1, "b"), Rich(1, "b")
    assert one.d == [1] and one.d is not two.d
    mine = [5]
    assert Rich(1, "b", 1.0, mine).d is mine


def test_rich_is_frozen_equal_hashable_and_pickles() -> None:
    built = Rich(1, "b", 3.5, [2], e="x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.a = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del built.b
    assert not hasattr(built, "__dict__")
    assert repr(built) == repr(RichPlain(1, "b", 3.5, [2], e="x")).replace("RichPlain", "Rich")
    assert built == Rich(1, "b", 3.5, [2], e="x") != Rich(1, "b", 3.5, [3], e="x")
    hashable = Rich(1, "b", 3.5, d=None, e="x")  # type: ignore[arg-type]
    plain = RichPlain(1, "b", 3.5, d=None, e="x")  # type: ignore[arg-type]
    assert hash(hashable) == hash(plain)
    assert pickle.loads(pickle.dumps(built)) == built
    assert dataclasses.replace(built, a=4) == Rich(4, "b", 3.5, [2], e="x")


def test_a_subclass_sets_its_parents_slots() -> None:
    child = Child(1, "b", h=9)
    assert (child.a, child.b, child.d, child.h) == (1, "b", [1], 9)
    assert inspect.signature(Child.__init__) == inspect.signature(
        getattr(Child.__init__, DATACLASS_INIT)
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        child.h = 1  # type: ignore[misc]


def test_it_refuses_a_class_whose_init_does_more() -> None:
    @dataclass(slots=True)
    class Mutable:
        a: int

    @dataclass(frozen=True)
    class Unslotted:
        a: int

    @dataclass(frozen=True, slots=True)
    class Hidden:
        a: int
        b: int = field(default=0, init=False)

    @dataclass(frozen=True, slots=True)
    class WithInitVar:
        a: int
        scale: dataclasses.InitVar[int] = 1

        def __post_init__(self, scale: int) -> None:
            object.__setattr__(self, "a", self.a * scale)

    for cls in (Mutable, Unslotted, Hidden, WithInitVar):
        with pytest.raises(TypeError, match=cls.__name__):
            fast_init(cls)
    assert WithInitVar(2, 3).a == 6  # left as the dataclass built it


def _built(init: Any, cls: type, kwargs: dict[str, Any]) -> Any:
    """The fields ``init`` stores into a new ``cls``, or what it raised."""
    obj = object.__new__(cls)
    try:
        init(obj, **kwargs)
    except Exception as exc:  # __post_init__ may refuse the placeholders: both alike
        return type(exc), str(exc)
    return [getattr(obj, f.name) for f in dataclasses.fields(cls)]


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__qualname__)
def test_per_job_records_have_it_and_build_the_same(cls: type) -> None:
    original = getattr(cls.__init__, DATACLASS_INIT, None)
    assert original is not None, f"{cls.__qualname__} keeps the dataclass's __init__"
    assert inspect.signature(cls.__init__) == inspect.signature(original)
    fields = dataclasses.fields(cls)
    every = {f.name: object() for f in fields}
    required = {
        f.name: every[f.name]
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    for kwargs in (every, required):
        assert _built(cls.__init__, cls, kwargs) == _built(original, cls, kwargs)
    if isinstance(_built(original, cls, every), list):  # stored as given, not copies
        built = cls(**every)
        assert all(getattr(built, name) is value for name, value in every.items())
