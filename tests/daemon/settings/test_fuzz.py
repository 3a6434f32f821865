"""Fuzzing the configuration: any TOML file (well-formed with wrong values, or any bytes) and any
``CARBOND_*`` environment give settings or one ``ConfigError`` whose every problem names the file
or the field — never another exception."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from daemon.settings import ConfigError, Settings, load_settings
from tests.daemon.settings.toml_values import toml_value
from tests.fuzzing import examples

_scalar = st.one_of(
    st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1), st.floats(),
    st.text(max_size=20), st.datetimes(min_value=datetime(1, 1, 1)),
    st.sampled_from(["chain", "static", "run-now", "carbon-window", "T4", "CA-QC", "local",
                     "json", "INFO", "discover", "/tmp", "lifecycle", "direct"]),
)  # fmt: skip
_value = st.recursive(_scalar, lambda inner: st.lists(inner, max_size=3), max_leaves=6)


def _fields(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _section_model(name: str) -> type[BaseModel] | None:
    annotation = Settings.model_fields[name].annotation
    return (
        annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    )


@st.composite
def _config(draw: st.DrawFn) -> dict[str, Any]:
    """A settings tree: known section and field names (and some unknown), any values."""
    tree: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from([*_fields(Settings), "nope"]), max_size=6)):
        model = _section_model(name) if name in Settings.model_fields else None
        if name == "regions":
            tree[name] = [
                {key: draw(_value) for key in draw(st.lists(st.sampled_from(
                    ["name", "zone", "executor", "gpus", "pue", "extra"]), max_size=5))}
                for _ in range(draw(st.integers(0, 3)))
            ]  # fmt: skip
        elif model is not None and draw(st.integers(0, 5)):
            keys = draw(st.lists(st.sampled_from([*_fields(model), "unknown_key"]), max_size=4))
            tree[name] = {key: draw(_value) for key in keys}
        else:
            tree[name] = draw(_value)
    return tree


def _key(name: str) -> str:
    return '"' + name + '"'


def _toml(tree: dict[str, Any]) -> str:
    return "".join(f"{_key(k)} = {toml_value(v)}\n" for k, v in tree.items())


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k.startswith(("CARBOND_", "CREDENTIALS"))}
    for key in saved:
        del os.environ[key]
    os.environ.update(values)
    try:
        yield
    finally:
        for key in values:
            os.environ.pop(key, None)
        os.environ.update(saved)


def _load(text: bytes, env: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp, _environment(env):
        path = Path(tmp) / "carbond.toml"
        path.write_bytes(text)
        try:
            load_settings(path, state_dir=Path(tmp))
        except ConfigError as exc:
            assert exc.problems
            where = (str(path), "settings", "environment variable CARBOND_")
            assert all(p.startswith(where) for p in exc.problems), exc.problems


_env_names = st.sampled_from(
    [f"CARBOND_{name.upper()}" for name in Settings.model_fields]
    + [f"CARBOND_{s.upper()}__{f.upper()}" for s in Settings.model_fields
       if (m := _section_model(s)) is not None for f in m.model_fields]
)  # fmt: skip
_env_values = st.one_of(
    st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=30),
    st.sampled_from(["[]", "{}", '[{"name": "a"}]', "1e999", "-1", "nan", "true", '{"x": 1}']),
)


@settings(max_examples=examples(0.35))
@given(_config(), st.dictionaries(_env_names, _env_values, max_size=3))
def test_any_settings_tree_and_environment_load_or_fail_with_config_error(
    tree: dict[str, Any], env: dict[str, str]
) -> None:
    _load(_toml(tree).encode(), env)


@settings(max_examples=examples(1.5))
@given(st.binary(max_size=300))
def test_any_bytes_as_the_config_file_fail_with_config_error(data: bytes) -> None:
    _load(data, {})
