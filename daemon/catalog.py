"""Build the GPU catalog the daemon uses: the built-in one with the site's overrides applied."""

from __future__ import annotations

from dataclasses import fields, replace

from daemon.settings import ConfigError, Settings
from policies.footprint import DEFAULT_ACT, ActParameters, GpuCatalog

__all__ = ["gpu_catalog"]

_SCALAR_ACT_FIELDS = frozenset(f.name for f in fields(ActParameters) if f.type in {"float", float})


def gpu_catalog(settings: Settings) -> GpuCatalog:
    """The GPU catalog with ``[catalog.act]`` and ``[catalog.gpus.NAME]`` applied.

    Raises:
        ConfigError: an override names an unknown GPU, field or ACT parameter.
    """
    known = ", ".join(sorted(_SCALAR_ACT_FIELDS))
    problems = [
        f"catalog.act.{name}: unknown ACT parameter (known: {known})"
        for name in settings.catalog.act
        if name not in _SCALAR_ACT_FIELDS
    ]
    if problems:
        raise ConfigError(problems)
    params: ActParameters = replace(DEFAULT_ACT, **settings.catalog.act)  # type: ignore[arg-type]  # only float fields, checked above
    catalog = GpuCatalog.default(params)
    try:
        return catalog.with_overrides(settings.catalog.gpus)
    except LookupError as exc:
        raise ConfigError([f"catalog.gpus: {exc}"]) from exc
    except TypeError as exc:
        raise ConfigError([f"catalog.gpus: {exc}"]) from exc
