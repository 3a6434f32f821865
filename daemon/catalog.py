"""Build the GPU catalog the daemon uses: the built-in one with the site's overrides applied
and the site's own GPU types added."""

from __future__ import annotations

from daemon.settings import ConfigError, Settings
from policies.footprint import GpuCatalog

__all__ = ["gpu_catalog"]


def gpu_catalog(settings: Settings) -> GpuCatalog:
    """The GPU catalog with ``[catalog.act]`` and ``[catalog.gpus.NAME]`` applied (each name,
    field and value checked with the settings: :class:`daemon.settings.CatalogSettings`); a
    ``[catalog.gpus.NAME]`` the built-in catalog lacks is a new type.

    Raises:
        ConfigError: the overrides make a GPU that cannot be built (a settings object built
            around the checks).
    """
    try:
        return settings.catalog.gpu_catalog()
    except (LookupError, TypeError, ValueError) as exc:
        raise ConfigError([f"catalog.gpus: {exc}"]) from exc
