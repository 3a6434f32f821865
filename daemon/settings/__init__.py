"""carbond's one settings tree (pydantic-settings), built once in ``main()``.

Precedence, highest first: init kwargs > ``CARBOND_*`` environment variables (nested with
``__``, e.g. ``CARBOND_ELECTRICITYMAPS__TOKEN``) > the TOML file (``/etc/carbond/carbond.toml``,
or ``--config`` / ``CARBOND_CONFIG``) > secret files in ``$CREDENTIALS_DIRECTORY`` (systemd
``LoadCredential=``; a file named ``electricitymaps__token`` fills ``electricitymaps.token``).
Tokens are ``SecretStr`` and are never logged.

The sections live in :mod:`daemon.settings.sections`, :mod:`daemon.settings.regions`,
:mod:`daemon.settings.executors` and :mod:`daemon.settings.catalog` (re-exported here); a bad
value becomes one line naming its file or variable (:mod:`daemon.settings.problems`).
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any, ClassVar

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from daemon.errors import UsageError
from daemon.settings.catalog import CatalogSettings
from daemon.settings.executors import (
    ExecutorSettings,
    LocalExecutorSettings,
    SimulatedExecutorSettings,
    SlurmExecutorSettings,
)
from daemon.settings.gpu_names import known_region_gpus, known_simulated_gpus
from daemon.settings.local_gpus import shared_local_gpus
from daemon.settings.problems import NO_FILE, ConfigProblem, problem_line, unparsable_line
from daemon.settings.regions import (
    BatterySettings,
    RegionSettings,
    SiteSettings,
    SlurmRegionSettings,
    region_names,
    regions_listed,
    site_csvs_under,
)
from daemon.settings.sections import (
    ConfigPath,
    ElectricityMapsSettings,
    GpuSettings,
    IntensitySettings,
    IntervalSettings,
    LedgerSettings,
    LogSettings,
    MetricsSettings,
    PolicySettings,
    QueueSettings,
    RecalibrationSettings,
    SignalsSettings,
    errors_at,
)
from daemon.settings.toml_lines import syntax_problem
from policies.footprint import MAX_LIFETIME_YEARS, MIN_LIFETIME_YEARS

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "BatterySettings",
    "CatalogSettings",
    "ConfigError",
    "ElectricityMapsSettings",
    "ExecutorSettings",
    "GpuSettings",
    "IntensitySettings",
    "IntervalSettings",
    "LedgerSettings",
    "LocalExecutorSettings",
    "LogSettings",
    "MetricsSettings",
    "PolicySettings",
    "QueueSettings",
    "RecalibrationSettings",
    "RegionSettings",
    "Settings",
    "SignalsSettings",
    "SimulatedExecutorSettings",
    "SiteSettings",
    "SlurmExecutorSettings",
    "SlurmRegionSettings",
    "config_path",
    "config_problem",
    "load_settings",
    "refuse_shared_local_gpus",
]

DEFAULT_CONFIG_PATH = Path("/etc/carbond/carbond.toml")


class ConfigError(UsageError):
    """Invalid configuration: one line per problem, naming the file and the field (exit 2)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))


class Settings(BaseSettings):
    """Every setting of the daemon and the CLI."""

    model_config = SettingsConfigDict(
        env_prefix="CARBOND_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,  # as every section's (sections.Section)
    )
    # Set per load by load_settings(); pydantic-settings reads them through the source hook.
    _toml_path: ClassVar[Path | None] = None
    _secrets_dir: ClassVar[Path | None] = None
    # The file these settings were read from and its text then (load_settings()), so that a
    # problem found later (a site's CSV) names its line as a bad value does (config_problem()).
    _source: Path | None = PrivateAttr(default=None)
    _source_text: str | None = PrivateAttr(default=None)

    state_dir: ConfigPath = Path("/var/lib/carbond")
    default_pue: float = Field(default=1.0, ge=1.0, le=3.0)
    lifetime_years: float = Field(default=5.0, ge=MIN_LIFETIME_YEARS, le=MAX_LIFETIME_YEARS)
    electricitymaps: ElectricityMapsSettings = ElectricityMapsSettings()
    signals: SignalsSettings = SignalsSettings()
    # before gpu and regions: their GPU names are checked against it (_unknown_gpus)
    catalog: CatalogSettings = CatalogSettings()
    gpu: GpuSettings = GpuSettings()
    metrics: MetricsSettings = MetricsSettings()
    executors: ExecutorSettings = ExecutorSettings()
    log: LogSettings = LogSettings()
    ledger: LedgerSettings = LedgerSettings()
    regions: tuple[RegionSettings, ...] = ()
    policy: PolicySettings = PolicySettings()
    intervals: IntervalSettings = IntervalSettings()
    intensity: IntensitySettings = IntensitySettings()
    queue: QueueSettings = QueueSettings()
    recalibration: RecalibrationSettings = RecalibrationSettings()

    @field_validator("state_dir", mode="before")
    @classmethod
    def _state_dir_given(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError(
                "must not be empty (the queue, the ledger and the job logs live there)"
            )
        return value

    @field_validator("state_dir")
    @classmethod
    def _absolute_state_dir(cls, value: Path) -> Path:
        # The job wrapper runs from "/" and is handed paths in the state dir: a relative one
        # would name another file there (every local job would fail).
        return Path(os.path.abspath(value))

    _regions_listed = field_validator("regions", mode="before")(regions_listed)

    @field_validator("regions")
    @classmethod
    def _unique_regions(cls, regions: tuple[RegionSettings, ...]) -> tuple[RegionSettings, ...]:
        names = [region.name for region in regions]
        repeats = [
            ((i, "name"), f"duplicate region name {name!r} (also regions.{first})", name)
            for i, name in enumerate(names)
            if (first := names.index(name)) < i
        ]
        if repeats:  # each at the entry that names it again, not at the first [[regions]]
            raise errors_at(repeats)
        return regions

    # checked against [catalog], with the site's own types (validated before them)
    _known_simulated_gpus = field_validator("gpu")(known_simulated_gpus)
    _known_region_gpus = field_validator("regions", mode="wrap")(known_region_gpus)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls._toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls._toml_path))
        if cls._secrets_dir is not None:
            sources.append(_CredentialsSource(settings_cls, cls._secrets_dir))
        return tuple(sources)


class _CredentialsSource(PydanticBaseSettingsSource):
    """Secrets from systemd credential files: ``a__b`` holds the value of ``a.b``.

    Only files named after a known field are read; their content is stripped of the trailing
    newline and never logged.
    """

    def __init__(self, settings_cls: type[BaseSettings], directory: Path) -> None:
        super().__init__(settings_cls)
        self._directory = directory

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything is read in __call__

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            section = field.annotation
            if isinstance(section, type) and issubclass(section, BaseModel):
                nested = {
                    sub: path.read_text(encoding="utf-8").rstrip("\n")
                    for sub in section.model_fields
                    if (path := self._directory / f"{name}__{sub}").is_file()
                }
                if nested:
                    values[name] = nested
            elif (path := self._directory / name).is_file():
                values[name] = path.read_text(encoding="utf-8").rstrip("\n")
        return values


def _config_path(explicit: Path | None) -> Path | None:
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(
                [ConfigProblem(f"{explicit}: {_not_a_file(explicit)}", file=str(explicit))]
            )
        return explicit
    from_env = os.environ.get("CARBOND_CONFIG")
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            why = f"{_not_a_file(path)} (from CARBOND_CONFIG)"
            raise ConfigError([ConfigProblem(f"{path}: {why}", file=str(path))])
        return path
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def _not_a_file(path: Path) -> str:
    """Why ``path`` is no config file: a folder named for one said "not found", and so did
    ``--config /dev/null``, which is there (a character device)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "a symlink to nothing, not a config file" if path.is_symlink() else (
            "config file not found")  # fmt: skip
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
             (stat.S_ISSOCK, "a socket"))  # fmt: skip
    kind = next((name for test, name in kinds if test(mode)), "not a regular file")
    return f"{kind}, not a config file"


def _text(path: Path | None) -> str | None:
    """The config file's text, to name the line of a bad value; None when there is none."""
    try:
        return path.read_text(encoding="utf-8") if path is not None else None
    except (OSError, UnicodeDecodeError):
        return None


def _parsed(text: str | None) -> Any:
    """``text`` as TOML data, None when there is none or it does not parse."""
    try:
        return tomllib.loads(text) if text is not None else None
    except tomllib.TOMLDecodeError:
        return None


def _of_file(text: str, path: Path | None) -> ConfigProblem:
    """A problem with the whole file ``path`` (None: no file was read), as ``text`` says it."""
    return ConfigProblem(text, file=None if path is None else str(path))


def config_path(explicit: Path | None = None) -> Path | None:
    """The TOML file :func:`load_settings` reads: ``explicit``, else ``$CARBOND_CONFIG``, else
    ``/etc/carbond/carbond.toml`` when it exists; None when there is none.

    Raises:
        ConfigError: ``explicit`` or ``$CARBOND_CONFIG`` names a missing file.
    """
    return _config_path(explicit)


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from every source.

    Args:
        config: the TOML file; default ``$CARBOND_CONFIG`` or ``/etc/carbond/carbond.toml``
            when it exists.
        overrides: init kwargs, the highest-precedence source.

    A site's relative ``pv_csv`` / ``other_load_csv`` is taken beside the TOML file.

    Raises:
        ConfigError: a missing file or invalid values, one line per problem.
    """
    path = _config_path(config)
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    Settings._toml_path = path
    Settings._secrets_dir = Path(creds) if creds and Path(creds).is_dir() else None
    where = str(path) if path else NO_FILE
    text = _text(path)
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        names = region_names(_parsed(text))
        problems: list[str] = [
            problem_line(err["loc"], err["msg"], where, Settings, text, names)
            for err in exc.errors()
        ]
        raise ConfigError(problems) from exc
    except SettingsError as exc:  # a CARBOND_* variable holding JSON that does not parse
        raise ConfigError([unparsable_line(exc, where, Settings)]) from exc
    except tomllib.TOMLDecodeError as exc:  # a ValueError: named FILE:LINE, as a bad value is
        raise ConfigError([_of_file(syntax_problem(exc, where), path)]) from exc
    except UnicodeDecodeError as exc:  # a ValueError too: Python's own words were shown
        raise ConfigError([_of_file(f"{where}: not UTF-8 text (byte {exc.start})", path)]) from exc
    except (OSError, ValueError) as exc:  # unreadable file
        raise ConfigError([_of_file(f"{where}: {exc}", path)]) from exc
    finally:
        Settings._toml_path = None
        Settings._secrets_dir = None
    if path is None:
        return settings
    if any(region.site for region in settings.regions):
        # a site's relative CSV is the config file's neighbour, not the working directory's
        regions = site_csvs_under(settings.regions, path.parent)
        settings = settings.model_copy(update={"regions": regions})
    settings._source, settings._source_text = path, text
    return settings


def config_problem(settings: Settings, loc: tuple[int | str, ...], message: str) -> str:
    """A problem with the value at ``loc`` of ``settings`` found after they loaded (a site's
    CSV cannot be read) as one line, named as :func:`load_settings` names a bad value: the
    ``CARBOND_*`` variable that set it, or the file, the line that sets it (as the file read
    then) and the field (a region by its name)."""
    path, text = settings._source, settings._source_text
    where = str(path) if path is not None else NO_FILE
    return problem_line(loc, message, where, Settings, text, region_names(_parsed(text)))


def refuse_shared_local_gpus(settings: Settings) -> None:
    """Refuse ``settings`` whose ``local`` regions claim one GPU of this node
    (:mod:`daemon.settings.local_gpus`): what ``carbond run`` checks at start and on SIGHUP,
    and ``carbond doctor``'s config line with it. Only there: the other commands start no
    process, and read local regions as places to price and plan (``estimate --zone``,
    ``submit``'s fit check).

    Raises:
        ConfigError: one line naming the file, the second local region's ``[[regions]]`` line
            (or its ``CARBOND_REGIONS``) and why.
    """
    if (found := shared_local_gpus(settings.regions)) is not None:
        position, why = found
        raise ConfigError([config_problem(settings, ("regions", position), why)])
