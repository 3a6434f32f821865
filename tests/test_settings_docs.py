"""The settings tables of the README and docs/*.md (a ``key`` column and a ``default`` one) name
only keys the settings tree has, show each key's default as the code has it, and, where they
have one, its ``CARBOND_*`` variable; the README's table has a row for every section.

A default cell is compared where it is a list of values, one per key of its row (``2, 300, 30,
5``) or one for the row's first key (``carbon-window`` for ``policy.name``, ``policy.params``);
one in words (``see example``, ``public v3 API``) is not."""

from __future__ import annotations

import re
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from daemon.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_UNSET = object()  # a default cell's "unset": the code's None


@dataclass(frozen=True, slots=True)
class Row:
    page: str
    line: int
    keys: tuple[str, ...]  # dotted, from the settings root
    default: str
    env: str | None
    key_cell: str = ""


def _model(annotation: Any) -> type[BaseModel] | None:
    """The settings section a field's annotation holds: ``X``, ``X | None``, ``tuple[X, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType, tuple):
        for arg in get_args(annotation):
            if (found := _model(arg)) is not None:
                return found
    return None


def field_of(key: str) -> Any:
    """The pydantic FieldInfo of a dotted key; KeyError when the settings have no such key."""
    model: type[BaseModel] | None = Settings
    info = None
    for part in key.split("."):
        if model is None or part not in model.model_fields:
            raise KeyError(key)
        info = model.model_fields[part]
        model = _model(info.annotation)
    return info


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _keys(cell: str, section: str) -> Iterator[str]:
    """The dotted keys of a row's key cell: its code spans, each a key or ``a, b, c`` keys (a
    name after the first takes its section: ``intervals.ingest_s, refresh_s``), a ``[table]``
    span (itself a key: a row that starts with one shows the table's default) setting the
    section of the names after it; ``signals.*`` and ``catalog.gpus.<GPU>``
    (no one key) are skipped."""
    prefix = section
    for span in re.findall(r"`([^`]+)`", cell):
        if m := re.fullmatch(r"\[\[?([\w.]+)\]?\]", span):
            prefix = m.group(1) + "."
            yield m.group(1)
            continue
        for shown in (n.strip() for n in span.split(",")):
            if re.search(r"[*<>\[]", shown):
                continue
            table, _, name = shown.rpartition(".")  # `electricitymaps.base_url`, `.token`
            if table:
                prefix = section + table + "."
            yield prefix + name


def rows(page: Path) -> Iterator[Row]:
    """Every row of the page's settings tables; the section of a table whose keys are bare
    comes from its heading (``## Configuration (`[gpu]` in the TOML, ...)``)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    section, columns = "", None
    for number, line in enumerate(lines, 1):
        if line.startswith("#"):
            m = re.search(r"`\[([\w.]+)\]`", line)
            section = m.group(1) + "." if m else ""
        if not line.startswith("|"):
            columns = None
            continue
        cells = [c.lower() for c in _cells(line)]
        if columns is None:
            if cells[0].startswith("key") and "default" in cells:
                columns = cells
            continue
        if set(line) <= set("|-: "):
            continue
        raw = _cells(line)
        keys = tuple(_keys(raw[0], section))
        env = raw[columns.index("env")] if "env" in columns else None
        yield Row(page.name, number, keys, raw[columns.index("default")], env, raw[0])


def _value(text: str) -> Any:
    """A default cell's value: a number, ``true``/``false``, ``unset``/``none`` (None), a
    string in backticks (quoted or not) or a TOML list; ValueError for one in words."""
    text = text.strip()
    if text in ("unset", "none", "`none`", "PATH"):  # PATH: the commands found on $PATH
        return None
    if text in ("true", "false", "`true`", "`false`"):
        return text.strip("`") == "true"
    if re.fullmatch(r"-?[\d,]+(\.\d+)?", text):
        return float(text.replace(",", ""))
    if m := re.fullmatch(r"`\[(.*)\]`", text):
        return tuple(s.strip().strip('"') for s in m.group(1).split(",") if s.strip())
    if m := re.fullmatch(r"`\"?([^`\"]*)\"?`", text):
        return m.group(1)
    raise ValueError(text)


def defaults(cell: str, count: int) -> list[Any] | None:
    """The values a default cell shows for its row's ``count`` keys, in order (one value: the
    first key's), or None when it shows them in words."""
    try:
        values = [_value(v) for v in re.split(r", | / ", cell)]
    except ValueError:
        return None
    return values if len(values) in (1, count) else None


def _same(shown: Any, default: Any) -> bool:
    if isinstance(default, bool) or shown is None:
        return shown is default or shown == default
    if isinstance(default, int | float) and isinstance(shown, float):
        return float(default) == shown
    if isinstance(default, tuple):
        return tuple(default) == shown
    if isinstance(default, BaseModel | dict):
        return False
    return str(default) == shown


def _problems(row: Row) -> Iterator[str]:
    where = f"{row.page}:{row.line}"
    infos = []
    for key in row.keys:
        try:
            infos.append(field_of(key))
        except KeyError:
            yield f"{where}: no setting {key}"
            return
    shown = defaults(row.default, len(row.keys))
    for key, info, value in zip(row.keys, infos, shown or [], strict=False):
        default = info.get_default(call_default_factory=True)
        if not _same(value, default):
            yield f"{where}: {key} shows default {value!r}, the code's is {default!r}"
    if row.env is not None:
        for key, env in zip(row.keys, re.findall(r"`([^`]+)`", row.env), strict=False):
            want = "CARBOND_" + key.upper().replace(".", "__")
            if not (env == want or (env.startswith("...") and want.endswith(env[3:]))):
                yield f"{where}: {key} shows variable {env}, the code's is {want}"


@pytest.mark.parametrize("page", DOCS, ids=[p.name for p in DOCS])
def test_every_settings_row_shows_the_code_s_keys_and_defaults(page: Path) -> None:
    wrong = [problem for row in rows(page) for problem in _problems(row)]
    assert not wrong, "\n".join(wrong)


def test_the_readme_table_has_a_row_for_every_section() -> None:
    """Each top-level key and each executor's table: ``[queue]`` had none."""
    table = list(rows(ROOT / "README.md"))
    shown = {key for row in table for key in row.keys}
    spans = "\n".join(re.findall(r"`([^`]+)`", "".join(row.key_cell for row in table)))
    wanted = [*Settings.model_fields, *(f"executors.{e}" for e in field_of("executors")
                                        .annotation.model_fields)]  # fmt: skip
    missing = [
        name
        for name in wanted
        if not any(k == name or k.startswith(name + ".") for k in shown)
        and not re.search(rf"^\[*{re.escape(name)}[.\]*]", spans, re.M)
    ]
    assert not missing, missing


def test_the_scan_reads_the_tables() -> None:
    """Guards the scan: it finds the tables' rows, keys across spans and sections, and sees
    a wrong default, key and variable."""
    found = {key for page in DOCS for row in rows(page) for key in row.keys}
    assert {"intervals.reconcile_s", "electricitymaps.token", "gpu.curve_max_points",
            "regions.site.pv_kwp", "executors.slurm.allow_root_jobs", "lifetime_years",
            "signals.rescore_every_s", "executors.local.limits.core_bytes"} <= found  # fmt: skip
    assert len(found) > 60
    bad = [
        Row("p", 1, ("intervals.ingest_s", "intervals.plan_s"), "2, 31", None),
        Row("p", 2, ("intervals.nope_s",), "2", None),
        Row("p", 3, ("signals.live_max_age_s",), "900", "`..._LIVE_MAX_AGE`"),
        Row("p", 4, ("gpu.simulated_gpus",), '`["A100-40GB"]`', None),
        Row("p", 5, ("ledger.private",), "true", None),
    ]
    assert [len(list(_problems(row))) for row in bad] == [1, 1, 1, 1, 1]
    good = Row("p", 6, ("gpu.simulated_gpus", "log.format"), '`["A100-80GB"]`, `"auto"`', None)
    assert list(_problems(good)) == []
