"""Alternative and Decision: their hand-written constructors (slots written directly) take and
keep exactly the dataclass fields, as the generated ones would."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from datetime import UTC, datetime

import pytest

from policies.types import Alternative, Decision


def _alternative() -> Alternative:
    return Alternative(("d0", "d1"), "quebec", "T4", datetime(2023, 6, 1, tzinfo=UTC),
                       60.0, 1.5e5, 31.0, 1.29, 0.2)  # fmt: skip


@pytest.mark.parametrize("cls", [Alternative, Decision])
def test_the_constructor_takes_the_fields_in_order_with_their_defaults(cls: type) -> None:
    params = list(inspect.signature(cls).parameters.values())
    fields = dataclasses.fields(cls)
    assert [p.name for p in params] == [f.name for f in fields]
    for p, f in zip(params, fields, strict=True):
        assert p.default == (inspect.Parameter.empty if f.default is dataclasses.MISSING
                             else f.default)  # fmt: skip


def test_every_field_keeps_what_it_was_given() -> None:
    alt = _alternative()
    other = dataclasses.replace(alt, region="pace", start=datetime(2023, 6, 2, tzinfo=UTC))
    values = {"job_id": "j1", "action": "start", "reason": "why", "policy": "carbon-window",
              "chosen": alt, "run_now": other, "alternatives": (other, alt)}  # fmt: skip
    by_keyword = Decision(**values)  # type: ignore[arg-type]
    positional = Decision(*values.values())  # type: ignore[arg-type]
    for d in (by_keyword, positional):
        assert {f.name: getattr(d, f.name) for f in dataclasses.fields(d)} == values
    assert by_keyword == positional and hash(by_keyword) == hash(positional)
    assert Decision("j1", "hold", "why", "p") == Decision("j1", "hold", "why", "p", None, None, ())
    assert other.region == "pace" and other.device_ids == alt.device_ids
    assert [getattr(alt, f.name) for f in dataclasses.fields(alt)] == [
        ("d0", "d1"), "quebec", "T4", datetime(2023, 6, 1, tzinfo=UTC), 60.0, 1.5e5, 31.0, 1.29,
        0.2,
    ]  # fmt: skip


def test_they_stay_frozen_and_pickle() -> None:
    decision = Decision("j1", "hold", "why", "p", _alternative(), _alternative())
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.reason = "other"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(decision)) == decision
    assert not hasattr(decision, "__dict__")
