"""A cheaper ``__init__`` for the frozen, slotted dataclasses built once or more per job.

A frozen dataclass's generated ``__init__`` stores each field with ``object.__setattr__(self,
name, value)``, its own ``__setattr__`` raising: on CPython 3.11 that is a lookup of
``__setattr__`` on ``object``, a call through a slot wrapper that copies its arguments into a
second tuple, a check of the wrapper's type, then a generic attribute store that looks the
slot up again by name, some 80 ns a field. A run-now replay builds some 36 records a job,
320 field stores (``bench/RESULTS.md``, Issue 15). :func:`fast_init` gives such a class an
``__init__`` that calls each field's slot (its member descriptor) ``__set__`` instead: the same
store into the same slot, about half the cost. Nothing else of the class changes: its
signature (names, order, defaults, keyword-only fields, annotations), the order of the stores,
``__post_init__`` called last, default factories called once per missing argument, and its
immutability, equality, hash, repr, ``replace`` and pickling, which never used ``__init__``'s
stores (``tests/policies/test_fast_init.py`` compares both ``__init__``\\ s).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from types import MemberDescriptorType
from typing import Any, TypeVar

__all__ = ["DATACLASS_INIT", "fast_init"]

T = TypeVar("T")

DATACLASS_INIT = "dataclass_init"
"""The attribute of a fast ``__init__`` that holds the dataclass-generated one it replaces."""


def fast_init(cls: type[T]) -> type[T]:
    """Give the frozen, slotted dataclass ``cls`` the cheaper ``__init__``; returns ``cls``.

    Refuses (``TypeError``, at import) a class whose ``__init__`` does more than store its
    fields and call ``__post_init__``: not a frozen slotted dataclass, a field with
    ``init=False`` or an ``InitVar``, or a field without a slot of its own name.
    """
    klass: Any = cls
    params = getattr(klass, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in vars(klass):
        raise TypeError(f"{klass.__name__} is not a frozen, slotted dataclass")
    fields = dataclasses.fields(klass)
    if not all(f.init for f in fields):
        raise TypeError(f"{klass.__name__} has a field its __init__ does not take")
    original = klass.__init__
    init = _compile(klass, fields, original)
    if inspect.signature(init, follow_wrapped=False) != inspect.signature(original):
        raise TypeError(f"{klass.__name__}'s __init__ takes more than its fields")  # an InitVar
    setattr(init, DATACLASS_INIT, original)
    klass.__init__ = init
    return cls


def _compile(klass: Any, fields: tuple[dataclasses.Field[Any], ...], original: Any) -> Any:
    """The ``__init__`` of ``klass`` that stores through the slots, with ``original``'s
    defaults, annotations and names."""
    names = [f.name for f in fields]
    if any(n.startswith("_fi_") or n == "self" for n in names):
        raise TypeError(f"{klass.__name__} has a field named like fast_init's own names")
    helpers: dict[str, Any] = {f"_fi_set_{n}": _slot(klass, n).__set__ for n in names}
    positional = [f.name for f in fields if not f.kw_only]
    keyword = [f.name for f in fields if f.kw_only]
    signature = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    body = []
    defaults = inspect.signature(original).parameters
    for f in fields:
        if f.default_factory is not dataclasses.MISSING:  # the dataclass's own sentinel
            helpers[f"_fi_factory_{f.name}"] = f.default_factory
            helpers[f"_fi_missing_{f.name}"] = defaults[f.name].default
            body.append(f"  if {f.name} is _fi_missing_{f.name}:")
            body.append(f"   {f.name} = _fi_factory_{f.name}()")
        body.append(f"  _fi_set_{f.name}(self, {f.name})")
    if hasattr(klass, "__post_init__"):
        body.append("  self.__post_init__()")
    source = (
        f"def _fi_create({', '.join(helpers)}):\n"
        f" def __init__({signature}):\n" + "\n".join(body or ["  pass"]) + "\n"
        " return __init__\n"
    )
    namespace: dict[str, Any] = {}
    exec(source, {"__name__": klass.__module__}, namespace)
    create: Callable[..., Any] = namespace["_fi_create"]
    init = create(**helpers)
    init.__defaults__ = original.__defaults__
    init.__kwdefaults__ = original.__kwdefaults__
    init.__annotations__ = dict(original.__annotations__)
    init.__qualname__ = original.__qualname__
    init.__doc__ = original.__doc__
    return init


def _slot(klass: Any, name: str) -> MemberDescriptorType:
    for owner in klass.__mro__:
        found = vars(owner).get(name)
        if found is not None:
            if isinstance(found, MemberDescriptorType):
                return found
            break
    raise TypeError(f"{klass.__name__}.{name} is not a slot")
