"""Every path setting refuses a NUL at its line: no file name can hold one, and the daemon
stopped with a traceback (``ValueError: embedded null byte``) at its first look at such a
path: ``carbond run`` at the state dir, ``carbond doctor`` and ``run`` at the first Slurm
command from ``bin_dir``."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from daemon.settings import ConfigError, Settings, load_settings

_REGION = '[[regions]]\nname = "b"\nzone = "FR"\nexecutor = "simulated"\ngpus = ["T4"]\n'
# each path setting, as TOML giving it the value {v}
_PATHS = {
    ("state_dir",): "state_dir = {v}\n" + _REGION,
    ("signals", "cache_dir"): "[signals]\ncache_dir = {v}\n\n" + _REGION,
    ("executors", "slurm", "bin_dir"): "[executors.slurm]\nbin_dir = {v}\n\n" + _REGION,
    ("regions", "site", "pv_csv"): _REGION + "\n[regions.site]\npv_csv = {v}\n",
    ("regions", "site", "other_load_csv"): _REGION + "\n[regions.site]\nother_load_csv = {v}\n",
}


def _kinds(annotation: object) -> Iterator[object]:
    """The types in ``annotation``: itself, or those it unites, annotates or holds."""
    args = typing.get_args(annotation)
    if not args:
        yield annotation
    for arg in args:
        yield from _kinds(arg)


def _path_fields(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The dotted paths of the path settings of ``model``, its tables and list of tables."""
    for name, info in model.model_fields.items():
        for kind in _kinds(info.annotation):
            if kind is Path:
                yield (*prefix, name)
            elif isinstance(kind, type) and issubclass(kind, BaseModel):
                yield from _path_fields(kind, (*prefix, name))


def test_every_path_setting_is_checked_here() -> None:
    assert sorted(set(_path_fields(Settings))) == sorted(_PATHS)


@pytest.mark.parametrize("field", sorted(_PATHS), ids=".".join)
def test_a_path_holding_a_nul_is_one_problem_at_its_line(
    tmp_path: Path, field: tuple[str, ...]
) -> None:
    config = tmp_path / "paths.toml"
    text = _PATHS[field].format(v='"/srv/carbond\\u0000/x"')
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    line = next(n for n, t in enumerate(text.splitlines(), 1) if "\\u0000" in t)
    dotted = ".".join(field).replace("regions.", "regions.b.")
    assert list(info.value.problems) == [
        f"{config}:{line}: {dotted}: must not hold a NUL character (no path can), got "
        "'/srv/carbond\\x00/x'"
    ]


@pytest.mark.parametrize("field", sorted(_PATHS), ids=".".join)
def test_the_same_path_without_the_nul_loads(tmp_path: Path, field: tuple[str, ...]) -> None:
    config = tmp_path / "paths.toml"
    config.write_text(_PATHS[field].format(v='"/srv/carbond/x"'))
    settings = load_settings(config)
    value: object = settings
    for part in field:
        value = getattr(value, part)
        value = value[0] if isinstance(value, tuple) else value
    assert value == Path("/srv/carbond/x")
