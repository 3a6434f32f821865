"""Fuzzing the configuration file as operators write it: real TOML tables (``[section]``,
``[[regions]]`` with ``[regions.site]``, ``[regions.site.battery]`` and ``[regions.slurm]``)
of known and unknown keys holding values of the wrong type, numbers past 64 bits, NaN and
infinities, negative and zero durations. The file loads and its regions' sites build, or one
``ConfigError`` (``SiteConfigError``) is raised whose every problem names the file and a line
of it — never another exception.

``test_fuzz.py`` writes each section as one quoted string, so only this file reaches the
fields inside the tables (and ``toml_lines``, which finds a field's line in the text)."""

from __future__ import annotations

import math
import re
import tempfile
import typing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from daemon.settings import ConfigError, Settings, load_settings
from daemon.sites import SiteConfigError, sites_of
from tests.daemon.settings.toml_values import toml_value
from tests.fuzzing import examples

_edge = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.integers(-5, 5),
    st.sampled_from([10**30, -(10**30), 2**64, -86_400, 0, 1]),
    st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 5e-324, -1.5]),
    st.booleans(), st.text(max_size=12),
    st.sampled_from(["", "pv.csv", "/nonexistent/x.csv", "gpu", "alpha", "T4", "DE", "node",
                     "slurm", "local", "simulated", "discover", "--mem=1G", "-x\ny", "1h"]),
    st.datetimes(min_value=datetime(1, 1, 1), timezones=st.just(UTC)),
    st.lists(st.one_of(st.integers(-3, 3), st.text(max_size=4), st.just("T4")), max_size=3),
)  # fmt: skip


def _model_of(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The settings model a field holds (``X``, ``X | None``, ``tuple[X, ...]``) and whether
    it is an array of them; ``(None, False)`` for a plain value."""
    for arg in (annotation, *typing.get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg, arg is not annotation and typing.get_origin(annotation) is tuple
    return None, False


@st.composite
def _table(draw: st.DrawFn, model: type[BaseModel], depth: int = 0) -> dict[str, Any]:
    """Some of ``model``'s fields (and an unknown key now and then), each a table of its
    own model (an array of them for ``regions``) or any value."""
    keys = draw(st.lists(st.sampled_from([*model.model_fields, "unknown_key"]), max_size=6,
                         unique=True))  # fmt: skip
    tree: dict[str, Any] = {}
    for key in keys:
        field = model.model_fields.get(key)
        sub, array = _model_of(field.annotation) if field is not None else (None, False)
        if sub is not None and depth < 3 and draw(st.integers(0, 7)):
            if array:
                tree[key] = [draw(_table(sub, depth + 1)) for _ in range(draw(st.integers(0, 3)))]
            else:
                tree[key] = draw(_table(sub, depth + 1))
        else:
            tree[key] = draw(_edge)
    return tree


def _key(name: str, quoted: bool) -> str:
    return f'"{name}"' if quoted or not re.fullmatch(r"[A-Za-z0-9_-]+", name) else name


def _emit(path: str, tree: dict[str, Any], out: list[str], quoted: bool, array: bool) -> None:
    """``tree`` as TOML: its plain values under ``[path]`` (``[[path]]`` for an array's
    item), then each table under its own header."""
    if path:
        out.append(f"[[{path}]]" if array else f"[{path}]")
    tables = []
    for name, value in tree.items():
        if isinstance(value, dict) or (
            isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
        ):
            tables.append((name, value))
        else:
            out.append(f"{_key(name, quoted)} = {toml_value(value)}")
    for name, value in tables:
        inner = f"{path}.{_key(name, quoted)}" if path else _key(name, quoted)
        for item in value if isinstance(value, list) else [value]:
            _emit(inner, item, out, quoted, isinstance(value, list))


def _toml(tree: dict[str, Any], quoted: bool) -> str:
    out: list[str] = []
    _emit("", tree, out, quoted, False)
    return "\n".join(out) + "\n"


def _load(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "carbond.toml"
        path.write_text(text, encoding="utf-8")
        (path.parent / "pv.csv").write_text("datetime,power_w\n2024-01-01T00:00Z,1\n")
        try:
            loaded = load_settings(path, state_dir=Path(tmp))
            sites_of(loaded)  # the regions' sites: their CSVs read
        except (ConfigError, SiteConfigError) as exc:
            problems = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
            assert problems
            count = text.count("\n")
            for problem in problems:  # FILE:LINE: ..., a line of the file
                at = re.match(rf"{re.escape(str(path))}:(\d+): \S", problem)
                assert at is not None and 1 <= int(at.group(1)) <= count, problem


@settings(max_examples=examples(0.35))
@given(_table(Settings), st.booleans())
@example({"regions": [{"name": "a", "zone": "DE", "site": {"pv_kwp": 10**30,
          "battery": {"capacity_kwh": math.nan}}}]}, False)  # fmt: skip
@example({"intervals": {"plan_s": -86_400}, "electricitymaps": {"read_timeout_s": math.inf}},
         True)  # fmt: skip
def test_any_tables_of_any_values_load_or_fail_with_config_error(
    tree: dict[str, Any], quoted: bool
) -> None:
    _load(_toml(tree, quoted))
