"""Build the GPU catalog the daemon uses: the built-in one with the site's overrides applied."""

from __future__ import annotations

from dataclasses import replace

from daemon.settings import ConfigError, Settings
from policies.footprint import DEFAULT_ACT, GpuCatalog

__all__ = ["gpu_catalog"]


def gpu_catalog(settings: Settings) -> GpuCatalog:
    """The GPU catalog with ``[catalog.act]`` and ``[catalog.gpus.NAME]`` applied (each name,
    field and value checked with the settings: :class:`daemon.settings.CatalogSettings`).

    Raises:
        ConfigError: the overrides make a GPU that cannot be built (a settings object built
            around the checks).
    """
    params = replace(DEFAULT_ACT, **settings.catalog.act)  # type: ignore[arg-type]  # only scalar fields (ACT_PARAMETERS), checked by the settings
    catalog = GpuCatalog.default(params)
    overrides = {name: gpu.fields() for name, gpu in settings.catalog.gpus.items()}
    try:
        return catalog.with_overrides(overrides)
    except (LookupError, TypeError) as exc:
        raise ConfigError([f"catalog.gpus: {exc}"]) from exc
