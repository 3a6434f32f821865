"""The fast constructors of the frozen decision types build the same objects as the types."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import UTC, datetime

import pytest

from policies.types import Alternative, Decision, _unfrozen_init, new_alternative, new_decision

T0 = datetime(2023, 6, 5, tzinfo=UTC)
ARGS = (("r0/0", "r0/1"), "r0", "T4", T0, 60.0, 3600.0, 250.0, 0.25, float("nan"))


def test_new_alternative_is_the_dataclass_object() -> None:
    built, reference = new_alternative(*ARGS), Alternative(*ARGS)
    assert type(built) is Alternative
    assert repr(built) == repr(reference)  # every field, the NaN too
    same = Alternative(*ARGS[:-1], 1.5)
    assert new_alternative(*ARGS[:-1], 1.5) == same
    assert hash(new_alternative(*ARGS[:-1], 1.5)) == hash(same)
    assert new_alternative(*ARGS[:-1], 1.5) != Alternative(*ARGS[:-1], 2.5)
    assert built.total_g != built.total_g  # NaN embodied grams: the property reads the fields


def test_new_alternative_is_frozen_and_slotted() -> None:
    built = new_alternative(*ARGS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.region = "r1"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del built.gpu
    assert not hasattr(built, "__dict__")
    assert dataclasses.replace(built, region="r1").region == "r1"
    assert pickle.loads(pickle.dumps(built)).start == T0


def test_new_decision_takes_keywords_and_defaults() -> None:
    plan = new_alternative(*ARGS[:-1], 1.0)
    assert new_decision("j1", "hold", "why", "carbon-window") == Decision(
        "j1", "hold", "why", "carbon-window"
    )
    built = new_decision("j1", "start", "why", "p", plan, run_now=plan, alternatives=(plan,))
    assert type(built) is Decision
    assert built == Decision("j1", "start", "why", "p", plan, plan, (plan,))
    with pytest.raises(TypeError, match=r"Decision.__init__\(\) missing 2 required"):
        new_decision("j1", "hold")  # type: ignore[call-arg]  # fields without defaults


def test_only_slotted_dataclasses_get_one() -> None:
    @dataclasses.dataclass(frozen=True)
    class Plain:
        x: int

    with pytest.raises(TypeError, match="Plain is not a slotted dataclass"):
        _unfrozen_init(Plain)


def test_only_plain_field_setting_inits_get_one() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        x: int

        def __post_init__(self) -> None:
            if self.x < 0:
                raise ValueError("x < 0")

    @dataclasses.dataclass(frozen=True, slots=True)
    class Derived:
        x: int
        y: int = dataclasses.field(init=False, default=0)

    for cls in (Checked, Derived):
        with pytest.raises(TypeError, match="does more than set its fields"):
            _unfrozen_init(cls)
