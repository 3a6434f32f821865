"""Configuration problems as one line each, naming where the bad value came from: the file,
or the ``CARBOND_*`` variable and its value (secrets hidden, long values cut)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic_settings import SettingsError

from daemon.settings.regions import region_field
from daemon.settings.toml_lines import line_of
from forecasts.urls import without_userinfo

__all__ = ["NO_FILE", "ConfigProblem", "problem_line", "unparsable_line"]

_ENV_PREFIX = "CARBOND_"
_SHOWN_CHARS = 120
NO_FILE = "settings"  # what a problem line names where no config file was read


class ConfigProblem(str):
    """One problem line, as :class:`~daemon.settings.ConfigError` shows it (it is that text),
    that also says where its bad value is, for ``--json``'s error document: the config
    ``file``, its 1-based ``line`` and the dotted ``field`` (a region by its name); None for
    what it does not name (a value from a ``CARBOND_*`` variable has no file)."""

    file: str | None
    line: int | None
    field: str | None

    def __new__(
        cls,
        text: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> ConfigProblem:
        problem = super().__new__(cls, text)
        problem.file, problem.line, problem.field = file, line, field
        return problem


def problem_line(
    loc: tuple[int | str, ...],
    message: str,
    where: str,
    root: type[BaseModel],
    text: str | None = None,
    names: Sequence[str | None] = (),
) -> ConfigProblem:
    """One problem line, naming where the bad value came from: the ``CARBOND_*`` variable and
    its value when the environment supplied it (it overrides the file), else the file, and the
    line of the file's ``text`` that sets it (or its nearest enclosing key or table) when given.
    ``names``: the file's region names, by which a region's field is named
    (:func:`region_field`). ``where`` is :data:`NO_FILE` where no file was read."""
    field = ".".join(str(p) for p in loc) or "<root>"
    message = message.removeprefix("Value error, ")
    found = _from_environment([str(p) for p in loc], root, missing=message == "Field required")
    if found is not None:
        return ConfigProblem(f"environment variable {found}: {field}: {message}", field=field)
    field = region_field(loc, names) or field
    line = line_of(text, loc) if text is not None else None
    file = None if where == NO_FILE else where
    return ConfigProblem(
        f"{where}:{line}: {field}: {message}"
        if line is not None
        else f"{where}: {field}: {message}",
        file=file,
        line=line,
        field=field,
    )


def _from_environment(
    parts: list[str], root: type[BaseModel], *, missing: bool = False
) -> str | None:
    """``NAME='value'`` of the ``CARBOND_*`` variable that holds the value at ``parts`` (the
    variable of the field itself; for a problem with a whole section, every variable setting
    part of it), or ``NAME (at PATH: value)`` for a value inside a section given as JSON (the
    JSON at that path in it; for a ``missing`` field, the section without it), secrets hidden
    and long values cut; None when the environment did not supply it."""
    env = {key.upper(): value for key, value in os.environ.items()}
    for depth in range(len(parts), 0, -1):
        name = _ENV_PREFIX + "__".join(parts[:depth]).upper()
        if name not in env:
            continue
        raw: Any = env[name]
        if depth < len(parts):
            try:
                raw = json.loads(raw)
                path = parts[depth:-1] if missing else parts[depth:]
                for part in path:
                    raw = raw[int(part)] if isinstance(raw, list) else raw[part]
                if missing and not (isinstance(raw, dict) and parts[-1] not in raw):
                    continue  # this variable's section is not the one without the field
            except (ValueError, KeyError, IndexError, TypeError):
                continue  # this section's variable does not hold the bad value
            if path:  # a part of the variable's value, not its value: say which part
                shown = _shown(parts, json.dumps(raw), root, quoted=False)
                return f"{name} (at {'.'.join(path)}: {shown})"
            raw = raw if isinstance(raw, str) else json.dumps(raw)
        return f"{name}={_shown(parts, str(raw), root)}"
    inner = _ENV_PREFIX + "__".join(parts).upper() + "__"
    names = sorted(name for name in env if parts and name.startswith(inner))
    return ", ".join(f"{name}={_shown([name], env[name], root)}" for name in names) or None


def _shown(parts: list[str], value: str, root: type[BaseModel], *, quoted: bool = True) -> str:
    """``value`` cut and quoted (unless it is JSON, ``quoted`` False), or ``<hidden>`` when it
    is, or may hold, a secret: a token field, or a whole section that has one
    (``CARBOND_ELECTRICITYMAPS='{"token": ...}'``)."""
    if any("token" in part.lower() for part in parts) or _holds_secret(parts, root):
        return "<hidden>"
    value = without_userinfo(value)  # a URL's password (electricitymaps.base_url's) hidden
    cut = value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "..."
    return repr(cut) if quoted else cut


def _holds_secret(parts: list[str], root: type[BaseModel]) -> bool:
    """Whether ``parts`` (a field path, or one variable name) names a section with a secret."""
    if len(parts) != 1:
        return False
    section = parts[0].lower().removeprefix(_ENV_PREFIX.lower())
    field = root.model_fields.get(section)
    model = field.annotation if field is not None else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return False
    return any("SecretStr" in str(sub.annotation) for sub in model.model_fields.values())


def unparsable_line(exc: SettingsError, where: str, root: type[BaseModel]) -> str:
    """pydantic-settings' 'error parsing value for field "x" from source "EnvSettingsSource"'
    as a line naming the variable and its value."""
    match = re.search(r'field "([^"]+)" from source "EnvSettingsSource"', str(exc))
    if match is None:
        return f"{where}: {exc}"
    name = _ENV_PREFIX + match.group(1).upper()
    value = {k.upper(): v for k, v in os.environ.items()}.get(name, "")
    cause = f": {exc.__cause__}" if exc.__cause__ else ""
    return f"environment variable {name}={_shown([name], value, root)}: not valid JSON{cause}"
