"""carbond's one settings tree (pydantic-settings), built once in ``main()``.

Precedence, highest first: init kwargs > ``CARBOND_*`` environment variables (nested with
``__``, e.g. ``CARBOND_ELECTRICITYMAPS__TOKEN``) > the TOML file (``/etc/carbond/carbond.toml``,
or ``--config`` / ``CARBOND_CONFIG``) > secret files in ``$CREDENTIALS_DIRECTORY`` (systemd
``LoadCredential=``; a file named ``electricitymaps__token`` fills ``electricitymaps.token``).
Tokens are ``SecretStr`` and are never logged.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from daemon.errors import UsageError

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
    "LocalExecutorSettings",
    "LogSettings",
    "MetricsSettings",
    "PolicySettings",
    "QueueSettings",
    "RegionSettings",
    "Settings",
    "SignalsSettings",
    "SimulatedExecutorSettings",
    "SiteSettings",
    "SlurmExecutorSettings",
    "SlurmRegionSettings",
    "config_path",
    "load_settings",
]

DEFAULT_CONFIG_PATH = Path("/etc/carbond/carbond.toml")


class ConfigError(UsageError):
    """Invalid configuration: one line per problem, naming the file and the field (exit 2)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ElectricityMapsSettings(_Section):
    """Electricity Maps v3 API access."""

    base_url: str = "https://api.electricitymaps.com/v3"
    token: SecretStr | None = None
    connect_timeout_s: float = Field(default=3.05, gt=0)
    read_timeout_s: float = Field(default=10.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=10)
    emission_factor_type: Literal["lifecycle", "direct"] = "lifecycle"


class SignalsSettings(_Section):
    """The intensity fallback chain: cache, freshness and forecaster re-scoring."""

    cache_dir: Path | None = None  # default <state_dir>/cache/intensity
    cache_max_points: int = Field(default=60 * 24, ge=24)
    live_max_age_s: float = Field(default=900.0, gt=0)
    cache_max_age_s: float = Field(default=3 * 3600.0, gt=0)
    max_history_gap_s: float = Field(default=7 * 86_400.0, gt=0)
    rescore_every_s: float = Field(default=6 * 3600.0, gt=0)


class GpuSettings(_Section):
    """How carbond finds and measures GPUs.

    ``backend``: ``nvml`` (real GPUs; fails if NVML is unusable), ``simulated`` (the devices in
    ``simulated_gpus``, catalog names, drawing ``simulated_power_factor`` x the catalog's power),
    or ``auto`` (NVML when it works, else simulated, logged).
    """

    backend: Literal["auto", "nvml", "simulated"] = "auto"
    sample_period_s: float = Field(default=0.1, gt=0)
    history_samples: int = Field(default=600, ge=1, le=1_000_000)
    curve_resolution_s: float = Field(default=1.0, gt=0)
    curve_max_points: int = Field(default=3600, ge=2, le=1_000_000)
    simulated_gpus: tuple[str, ...] = ("A100-80GB",)
    simulated_power_factor: float = Field(default=1.0, gt=0, le=10)
    simulated_energy_counter: bool = True


class CatalogSettings(_Section):
    """Site overrides of the GPU catalog.

    ``act`` replaces ACT-model parameters (``fab_intensity_g_per_kwh``, ``fab_yield``,
    ``mpa_g_per_cm2``, ``packaging_g``) for every ACT-estimated GPU; ``gpus.<NAME>`` replaces
    fields of one GPU (e.g. ``embodied_kg``, ``idle_w``, ``tdp_w``).
    """

    act: dict[str, float] = Field(default_factory=dict)
    gpus: dict[str, dict[str, float | int | str]] = Field(default_factory=dict)


_SLURM_NAME = r"^[A-Za-z0-9_.+-]+$"  # partition, cluster, account, qos, GRES names


class SlurmRegionSettings(_Section):
    """Where a region's jobs go in Slurm (``[regions.slurm]`` of an ``executor = "slurm"``
    region): ``sbatch --partition``, ``--clusters`` (``cluster``), ``--account``, ``--qos``;
    ``gres`` is the GRES name of its GPUs (``--gres=<gres>:N``); ``gpu_types`` maps a GRES type
    (``t4`` in ``gpu:t4:2``) to a GPU catalog name where the names differ by more than case;
    ``sbatch_options`` are passed to ``sbatch`` as they are (each one whole option, e.g.
    ``"--mem=16G"``)."""

    partition: str = Field(min_length=1, pattern=_SLURM_NAME)
    cluster: str | None = Field(default=None, pattern=_SLURM_NAME)
    account: str | None = Field(default=None, pattern=_SLURM_NAME)
    qos: str | None = Field(default=None, pattern=_SLURM_NAME)
    gres: str = Field(default="gpu", pattern=_SLURM_NAME)
    gpu_types: dict[str, str] = Field(default_factory=dict)
    sbatch_options: tuple[str, ...] = ()

    @field_validator("sbatch_options")
    @classmethod
    def _whole_options(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for option in value:
            if not option.startswith("-") or "\n" in option:
                raise ValueError(f"each sbatch option must be one whole option, got {option!r}")
        return value


class BatterySettings(_Section):
    """An on-site battery, charged from the site's PV only (``policies.footprint.site.Battery``)."""

    capacity_kwh: float = Field(gt=0)
    charge_power_w: float = Field(ge=0)
    discharge_power_w: float = Field(ge=0)
    round_trip_efficiency: float = Field(default=0.9, gt=0, le=1)
    min_soc: float = Field(default=0.1, ge=0, lt=1)
    initial_soc: float = Field(default=0.5, ge=0, le=1)

    @model_validator(mode="after")
    def _initial_above_floor(self) -> BatterySettings:
        if self.initial_soc < self.min_soc:
            raise ValueError(f"initial_soc {self.initial_soc} is below min_soc {self.min_soc}")
        return self


class SiteSettings(_Section):
    """A region's on-site energy: PV (modelled with pvlib from ``pv_kwp`` and where and how the
    array sits, or measured: ``pv_csv``), an optional battery and the site's other load
    (``other_load_w`` constant, or ``other_load_csv``). CSVs are ``datetime,power_w``.
    ``pv_g_per_kwh`` and ``battery_g_per_kwh`` are the life-cycle factors of on-site energy.
    ``plan = false`` keeps the site out of planning (accounting only: what a site-blind planner
    would do there)."""

    pv_kwp: float = Field(default=0.0, ge=0)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    tilt_deg: float = Field(default=20.0, ge=0, le=90)
    azimuth_deg: float = Field(default=180.0, ge=0, le=360)
    losses: float = Field(default=0.14, ge=0, lt=1)
    pv_csv: Path | None = None
    other_load_w: float = Field(default=0.0, ge=0)
    other_load_csv: Path | None = None
    pv_g_per_kwh: float = Field(default=41.0, ge=0)
    battery_g_per_kwh: float = Field(default=41.0, ge=0)
    battery: BatterySettings | None = None
    plan: bool = True

    @model_validator(mode="after")
    def _pv_has_a_place(self) -> SiteSettings:
        if self.pv_kwp > 0 and self.pv_csv is None and None in (self.latitude, self.longitude):
            raise ValueError("pv_kwp needs latitude and longitude (or a measured pv_csv)")
        return self


class RegionSettings(_Section):
    """One region: where GPUs are, which grid feeds them, how jobs start there.

    ``gpus`` is ``"discover"`` (NVML finds this node's GPUs; for a Slurm region, the nodes of
    its partition) or a list with one entry per GPU, each a GPU catalog name
    (``["RTX6000-Ada", "RTX6000-Ada"]``) or a ``{ type, count }`` table standing for ``count``
    GPUs of that type (``[{ type = "T4", count = 4 }]``, the form replay cluster files use);
    list position is the CUDA index. This one model is read by the daemon and by
    ``carbond replay --cluster``, so an operator can replay their own config. A region with
    ``executor = "slurm"`` needs a ``[regions.slurm]`` table (:class:`SlurmRegionSettings`).
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    zone: str = Field(min_length=1)
    pue: float = Field(default=1.0, ge=1.0, le=3.0)
    executor: str = Field(default="local", min_length=1)
    gpus: Literal["discover"] | tuple[str, ...] = "discover"
    site: SiteSettings | None = None
    slurm: SlurmRegionSettings | None = None

    @model_validator(mode="after")
    def _slurm_table(self) -> RegionSettings:
        if self.executor == "slurm" and self.slurm is None:
            raise ValueError(
                f'region {self.name}: executor = "slurm" needs a [regions.slurm] table '
                "with at least a partition"
            )
        if self.executor != "slurm" and self.slurm is not None:
            raise ValueError(
                f'region {self.name}: a [regions.slurm] table needs executor = "slurm"'
            )
        return self

    @field_validator("gpus", mode="before")
    @classmethod
    def _discover_or_list(cls, value: Any) -> Any:
        if isinstance(value, str) and value != "discover":
            raise ValueError(f'must be "discover" or a list of GPU catalog names, got {value!r}')
        if isinstance(value, list | tuple):
            if not value:
                raise ValueError('a region needs at least one GPU (or "discover")')
            return tuple(_expand_gpu_entries(value))
        return value

    @field_validator("gpus")
    @classmethod
    def _known_gpus(
        cls, value: Literal["discover"] | tuple[str, ...]
    ) -> Literal["discover"] | tuple[str, ...]:
        if value == "discover":
            return value
        from policies.errors import CatalogError
        from policies.footprint import DEFAULT_GPU_CATALOG

        for name in value:
            try:
                DEFAULT_GPU_CATALOG.get(name)
            except CatalogError as exc:
                raise ValueError(str(exc)) from exc
        return value


class _GpuCount(_Section):
    """``{ type = "T4", count = 4 }``: ``count`` GPUs of one catalog type."""

    type: str = Field(min_length=1)
    count: int = Field(ge=1, le=100_000)


def _expand_gpu_entries(entries: list[Any] | tuple[Any, ...]) -> list[Any]:
    """Names stay; each ``{type, count}`` table becomes ``count`` names (raises ValueError
    naming the entry's position and field)."""
    names: list[Any] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            names.append(entry)
            continue
        try:
            table = _GpuCount.model_validate(entry)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "entry"
            raise ValueError(f"entry {index}: {field}: {err['msg']}") from None
        names.extend([table.type] * table.count)
    return names


class PolicySettings(_Section):
    """Which registered policy plans, and its keyword parameters.

    An unregistered name (a typo such as ``carbon-windw``) or a parameter the policy refuses is
    a configuration error: the daemon never plans with a policy other than the one named.
    """

    name: str = "carbon-window"
    params: dict[str, Any] = Field(default_factory=dict)
    # Waiting jobs planned per round, most urgent first (priority, deadline, age); the rest
    # wait for a later round. A round's cost grows with the jobs planned: with 100,000 waiting,
    # planning all of them took longer than the ingest interval (bench/bench_waiting.py).
    plan_window: int = Field(default=1_000, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _registered(self) -> PolicySettings:
        from policies import PoliciesError, get_policy

        try:
            get_policy(self.name, **self.params)
        except (PoliciesError, TypeError, ValueError) as exc:
            raise ValueError(str(exc)) from exc
        return self


class IntervalSettings(_Section):
    """How often the service loop fires each step, in seconds."""

    ingest_s: float = Field(default=2.0, gt=0, le=2.0)
    refresh_s: float = Field(default=300.0, gt=0)
    plan_s: float = Field(default=30.0, gt=0)
    reconcile_s: float = Field(default=5.0, gt=0)


class IntensitySettings(_Section):
    """Where the service's intensity forecasts come from, and their grid.

    ``chain``: the fallback chain of :mod:`forecasts` (Electricity Maps when a token is set,
    then cache, forecast from history, static annual figure; see ``[signals]``). ``static``:
    each zone's annual average, flat. ``embedded``: a small synthetic diurnal curve per zone
    (the demo's; no network).
    """

    source: Literal["chain", "static", "embedded"] = "chain"
    horizon_s: int = Field(default=48 * 3600, gt=0)
    step_s: int = Field(default=900, gt=0)


class QueueSettings(_Section):
    """The queue file and its compaction."""

    max_line_bytes: int = Field(default=65_536, ge=256)
    compact_min_bytes: int = Field(default=1_048_576, ge=0)
    retired_grace_s: float = Field(default=60.0, ge=0)


class MetricsSettings(_Section):
    """The Prometheus endpoint, served on 127.0.0.1 only."""

    port: int = Field(default=9464, ge=0, le=65535, description="0 turns the endpoint off")


class LocalExecutorSettings(_Section):
    """Jobs as local process groups (``executor = "local"`` in a region)."""

    grace_s: float = Field(default=30.0, gt=0, description="SIGTERM to SIGKILL on cancel")
    allow_root_jobs: bool = True


class SimulatedExecutorSettings(_Section):
    """Process-free jobs for replay and the demo (``executor = "simulated"``)."""

    truth_factor: float = Field(default=1.0, gt=0)
    noise_sigma: float = Field(default=0.0, ge=0)
    failure_rate: float = Field(default=0.0, ge=0, le=1)
    seed: int = 0


class SlurmExecutorSettings(_Section):
    """How carbond talks to Slurm (``executor = "slurm"`` regions; each region's partition is
    in its ``[regions.slurm]`` table).

    ``bin_dir``: where ``sbatch``, ``squeue``, ``sacct``, ``scancel``, ``scontrol`` are (empty:
    ``PATH``); ``command_timeout_s``: the most one Slurm command may take; ``pending_grace_s``:
    how long a released job may stay pending (the partition busy with others' work) before
    carbond takes it back and plans it again.
    """

    bin_dir: Path | None = None
    command_timeout_s: float = Field(default=30.0, gt=0)
    pending_grace_s: float = Field(default=300.0, gt=0)


class ExecutorSettings(_Section):
    """Per-executor options."""

    local: LocalExecutorSettings = LocalExecutorSettings()
    simulated: SimulatedExecutorSettings = SimulatedExecutorSettings()
    slurm: SlurmExecutorSettings = SlurmExecutorSettings()


class LogSettings(_Section):
    """Log level and format (``auto``: JSON unless stderr is a terminal)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "console"] = "auto"


class Settings(BaseSettings):
    """Every setting of the daemon and the CLI."""

    model_config = SettingsConfigDict(
        env_prefix="CARBOND_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )
    # Set per load by load_settings(); pydantic-settings reads them through the source hook.
    _toml_path: ClassVar[Path | None] = None
    _secrets_dir: ClassVar[Path | None] = None

    state_dir: Path = Path("/var/lib/carbond")
    default_pue: float = Field(default=1.0, ge=1.0, le=3.0)
    lifetime_years: float = Field(default=5.0, gt=0)
    electricitymaps: ElectricityMapsSettings = ElectricityMapsSettings()
    signals: SignalsSettings = SignalsSettings()
    gpu: GpuSettings = GpuSettings()
    metrics: MetricsSettings = MetricsSettings()
    executors: ExecutorSettings = ExecutorSettings()
    log: LogSettings = LogSettings()
    catalog: CatalogSettings = CatalogSettings()
    regions: tuple[RegionSettings, ...] = ()
    policy: PolicySettings = PolicySettings()
    intervals: IntervalSettings = IntervalSettings()
    intensity: IntensitySettings = IntensitySettings()
    queue: QueueSettings = QueueSettings()

    @model_validator(mode="after")
    def _unique_regions(self) -> Settings:
        names = [region.name for region in self.regions]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate region names: {', '.join(duplicates)}")
        return self

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
            raise ConfigError([f"{explicit}: config file not found"])
        return explicit
    from_env = os.environ.get("CARBOND_CONFIG")
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise ConfigError([f"{path}: config file not found (from CARBOND_CONFIG)"])
        return path
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


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

    Raises:
        ConfigError: a missing file or invalid values, one line per problem.
    """
    path = _config_path(config)
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    Settings._toml_path = path
    Settings._secrets_dir = Path(creds) if creds and Path(creds).is_dir() else None
    where = str(path) if path else "settings"
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = [_problem(err["loc"], err["msg"], where) for err in exc.errors()]
        raise ConfigError(problems) from exc
    except SettingsError as exc:  # a CARBOND_* variable holding JSON that does not parse
        raise ConfigError([_unparsable(exc, where)]) from exc
    except (OSError, ValueError) as exc:  # unreadable file, TOML syntax error
        raise ConfigError([f"{where}: {exc}"]) from exc
    finally:
        Settings._toml_path = None
        Settings._secrets_dir = None


_ENV_PREFIX = "CARBOND_"
_SHOWN_CHARS = 120


def _problem(loc: tuple[int | str, ...], message: str, where: str) -> str:
    """One problem line, naming where the bad value came from: the ``CARBOND_*`` variable and
    its value when the environment supplied it (it overrides the file), else the file."""
    field = ".".join(str(p) for p in loc) or "<root>"
    message = message.removeprefix("Value error, ")
    found = _from_environment([str(p) for p in loc])
    if found is None:
        return f"{where}: {field}: {message}"
    return f"environment variable {found}: {field}: {message}"


def _from_environment(parts: list[str]) -> str | None:
    """``NAME='value'`` of the ``CARBOND_*`` variable that holds the value at ``parts`` (the
    variable of the field itself, or of an enclosing section given as JSON that contains it;
    for a problem with a whole section, every variable setting part of it), secrets hidden
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
                for part in parts[depth:]:
                    raw = raw[int(part)] if isinstance(raw, list) else raw[part]
            except (ValueError, KeyError, IndexError, TypeError):
                continue  # this section's variable does not hold the bad value
            raw = raw if isinstance(raw, str) else json.dumps(raw)
        return f"{name}={_shown(parts, str(raw))}"
    inner = _ENV_PREFIX + "__".join(parts).upper() + "__"
    names = sorted(name for name in env if parts and name.startswith(inner))
    return ", ".join(f"{name}={_shown([name], env[name])}" for name in names) or None


def _shown(parts: list[str], value: str) -> str:
    """``value`` quoted and cut, or ``<hidden>`` when it is, or may hold, a secret: a token
    field, or a whole section that has one (``CARBOND_ELECTRICITYMAPS='{"token": ...}'``)."""
    if any("token" in part.lower() for part in parts) or _holds_secret(parts):
        return "<hidden>"
    cut = value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "..."
    return repr(cut)


def _holds_secret(parts: list[str]) -> bool:
    """Whether ``parts`` (a field path, or one variable name) names a section with a secret."""
    if len(parts) != 1:
        return False
    section = parts[0].lower().removeprefix(_ENV_PREFIX.lower())
    field = Settings.model_fields.get(section)
    model = field.annotation if field is not None else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return False
    return any("SecretStr" in str(sub.annotation) for sub in model.model_fields.values())


def _unparsable(exc: SettingsError, where: str) -> str:
    """pydantic-settings' 'error parsing value for field "x" from source "EnvSettingsSource"'
    as a line naming the variable and its value."""
    match = re.search(r'field "([^"]+)" from source "EnvSettingsSource"', str(exc))
    if match is None:
        return f"{where}: {exc}"
    name = _ENV_PREFIX + match.group(1).upper()
    value = {k.upper(): v for k, v in os.environ.items()}.get(name, "")
    cause = f": {exc.__cause__}" if exc.__cause__ else ""
    return f"environment variable {name}={_shown([name], value)}: not valid JSON{cause}"
