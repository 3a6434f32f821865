"""The settings tree's sections other than the regions' (:mod:`daemon.settings.regions`), the
catalog overrides' (:mod:`daemon.settings.catalog`) and the executors'
(:mod:`daemon.settings.executors`): API access, signals, GPUs, policy, intervals, intensity,
queue, metrics, ledger, logging and recalibration; and what every section shares
(:class:`Section`, the bounds on durations and problems located below a field). Every section
is frozen and refuses unknown keys."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from forecasts.electricitymaps_http import header_safe
from forecasts.urls import is_loopback, without_userinfo
from policies.footprint.recalibration import DEFAULT_RECALIBRATION

__all__ = [
    "MAX_DURATION_S",
    "MAX_HORIZON_S",
    "MAX_INTERVAL_S",
    "ConfigPath",
    "ElectricityMapsSettings",
    "GpuSettings",
    "IntensitySettings",
    "IntervalSettings",
    "LedgerSettings",
    "LogSettings",
    "MetricsSettings",
    "PolicySettings",
    "QueueSettings",
    "RecalibrationSettings",
    "Section",
    "SignalsSettings",
    "absolute_dir",
    "error_at",
    "errors_at",
    "path_given",
]


# The longest duration a setting may hold (~31 years): the daemon turns durations into
# timedeltas, timer waits and scheduler intervals, which overflow on larger ones.
MAX_DURATION_S = 1e9
# The longest interval of a loop step: one a day (a step that fires less often stalls the jobs).
MAX_INTERVAL_S = 86_400.0
# The longest intensity forecast asked for: 30 days (a forecast is a list of that many steps).
MAX_HORIZON_S = 30 * 86_400
# The shortest forecast and its finest step: an hour of it, a minute a step (less is a unit
# mistake: the planner sees a flat forecast past a short one, and no source is that fine).
MIN_HORIZON_S = 3_600
MIN_STEP_S = 60


class Section(BaseModel):
    """The base of every settings section (here, :mod:`daemon.settings.regions` and
    :mod:`daemon.settings.catalog`): frozen, unknown keys refused."""

    # no inf or nan in a float setting: each is a size, rate or duration that must be finite
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


_EM_DEFAULT_URL = "https://api.electricitymaps.com/v3"


class ElectricityMapsSettings(Section):
    """Electricity Maps v3 API access."""

    base_url: str = _EM_DEFAULT_URL
    token: SecretStr | None = None
    connect_timeout_s: float = Field(default=3.05, gt=0, le=MAX_DURATION_S)
    read_timeout_s: float = Field(default=10.0, gt=0, le=MAX_DURATION_S)
    max_retries: int = Field(default=3, ge=0, le=10)
    emission_factor_type: Literal["lifecycle", "direct"] = "lifecycle"

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        """A URL without its scheme or host passed doctor; every request then failed
        (``MissingSchema``) and the daemon planned on static averages, saying so in notes."""
        parts = urlsplit(value)
        shown = without_userinfo(value)  # a password in it is never shown
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"must be an http(s) URL such as {_EM_DEFAULT_URL!r}, got {shown!r}")
        if parts.scheme == "http" and not is_loopback(value):
            # the token goes in every request's header: over http, in clear text
            raise ValueError(
                f"must be https (the token would cross the network in clear text), or http "
                f"to this machine (localhost, 127.0.0.1, ::1), got {shown!r}"
            )
        return value

    @field_validator("token", mode="before")
    @classmethod
    def _bare_token(cls, value: Any) -> Any:
        """A token's surrounding whitespace dropped (``echo TOKEN > file`` leaves a newline,
        which ``requests`` refuses in a header), and an empty one is no token."""
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, str):
            value = value.strip() or None
            # a curly quote pasted with it was taken; every request then raised in
            # http.client and `carbond intensity` printed a traceback
            if value is not None and not header_safe(value):
                raise ValueError(
                    "must be printable ASCII (it travels in an HTTP header); it has another "
                    "character (pasted with a curly quote?)"
                )
        return value


class SignalsSettings(Section):
    """The intensity fallback chain: cache, freshness and forecaster re-scoring."""

    cache_dir: ConfigPath | None = None  # default <state_dir>/cache/intensity
    cache_max_points: int = Field(default=60 * 24, ge=24)
    live_max_age_s: float = Field(default=900.0, gt=0, le=MAX_DURATION_S)
    cache_max_age_s: float = Field(default=3 * 3600.0, gt=0, le=MAX_DURATION_S)
    max_history_gap_s: float = Field(default=7 * 86_400.0, gt=0, le=MAX_DURATION_S)
    rescore_every_s: float = Field(default=6 * 3600.0, gt=0, le=MAX_DURATION_S)

    @field_validator("cache_dir", mode="before")
    @classmethod
    def _cache_dir_given(cls, value: Any) -> Any:
        return path_given(value, "leave it out for <state_dir>/cache/intensity")

    @field_validator("cache_dir")
    @classmethod
    def _absolute_cache_dir(cls, value: Path | None) -> Path | None:
        return absolute_dir(value)


class GpuSettings(Section):
    """How carbond finds and measures GPUs.

    ``backend``: ``nvml`` (real GPUs; fails if NVML is unusable), ``simulated`` (the devices in
    ``simulated_gpus``, catalog names, drawing ``simulated_power_factor`` x the catalog's power),
    or ``auto`` (NVML when it works, else simulated, logged).
    """

    backend: Literal["auto", "nvml", "simulated"] = "auto"
    sample_period_s: float = Field(default=0.1, gt=0, le=MAX_INTERVAL_S)
    history_samples: int = Field(default=600, ge=1, le=1_000_000)
    curve_resolution_s: float = Field(default=1.0, gt=0, le=MAX_DURATION_S)
    curve_max_points: int = Field(default=3600, ge=2, le=1_000_000)
    simulated_gpus: tuple[str, ...] = ("A100-80GB",)
    simulated_power_factor: float = Field(default=1.0, gt=0, le=10)
    simulated_energy_counter: bool = True


def _no_nul(value: Any) -> Any:
    """``value`` unless it is text holding a NUL, which no file name can: each look at such a
    path, or command line naming it, raises (``embedded null byte``)."""
    if isinstance(value, str) and "\0" in value:
        raise ValueError(f"must not hold a NUL character (no path can), got {value!r}")
    return value


ConfigPath = Annotated[Path, BeforeValidator(_no_nul)]
"""A path setting: one holding a NUL is refused at its line (before, ``carbond run`` and
``doctor`` stopped with a traceback: the state dir's first ``lstat``, Slurm's ``bin_dir`` in
each command's argv)."""


def path_given(value: Any, hint: str) -> Any:
    """``value`` unless it is an empty or blank string (``Path("")`` is the working directory):
    then a ValueError saying it must not be empty (``hint``: what to do instead)."""
    if isinstance(value, str) and not value.strip():
        raise ValueError(f"must not be empty ({hint})")
    return value


def absolute_dir(value: Path | None) -> Path | None:
    """``value`` unless it is relative: the daemon runs from / (systemd), so a relative
    directory names another one there than in the shell where doctor checked it."""
    if value is not None and not value.is_absolute():
        raise ValueError(
            f"must be an absolute path, got {str(value)!r}: the daemon runs from /, where "
            "a relative one names another directory"
        )
    return value


def error_at(loc: tuple[str, ...], message: str, value: object) -> ValidationError:
    """A settings problem at ``loc`` below the field being validated (pydantic prefixes the
    field's own location), so that its line is the file's line of that key or table."""
    return errors_at([(loc, message, value)])


def errors_at(problems: Sequence[tuple[tuple[int | str, ...], str, object]]) -> ValidationError:
    """Settings problems, each ``(loc, message, value)`` at its ``loc`` below the field being
    validated, as :func:`error_at`'s."""
    return ValidationError.from_exception_data(
        "Settings",
        [
            InitErrorDetails(
                type=PydanticCustomError("value_error", "{message}", {"message": message}),
                loc=loc,
                input=value,
            )
            for loc, message, value in problems
        ],
    )


class PolicySettings(Section):
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
        from policies import PoliciesError, UnknownPolicyError, get_policy

        # each at its own key's line (policy.name, policy.params), not the [policy] header's
        try:
            get_policy(self.name, **self.params)
        except UnknownPolicyError as exc:
            raise error_at(("name",), str(exc), self.name) from exc
        except (PoliciesError, TypeError, ValueError) as exc:
            raise error_at(("params",), str(exc), self.params) from exc
        return self


class IntervalSettings(Section):
    """How often the service loop fires each step, in seconds."""

    ingest_s: float = Field(default=2.0, gt=0, le=2.0)
    refresh_s: float = Field(default=300.0, gt=0, le=MAX_INTERVAL_S)
    plan_s: float = Field(default=30.0, gt=0, le=MAX_INTERVAL_S)
    reconcile_s: float = Field(default=5.0, gt=0, le=MAX_INTERVAL_S)


class IntensitySettings(Section):
    """Where the service's intensity forecasts come from, and their grid.

    ``chain``: the fallback chain of :mod:`forecasts` (Electricity Maps when a token is set,
    then cache, forecast from history, static annual figure; see ``[signals]``). ``static``:
    each zone's annual average, flat. ``embedded``: a small synthetic diurnal curve per zone
    (the demo's; no network).
    """

    source: Literal["chain", "static", "embedded"] = "chain"
    horizon_s: int = Field(default=48 * 3600, gt=0, le=MAX_HORIZON_S)
    step_s: int = Field(default=900, gt=0, le=MAX_INTERVAL_S)

    @field_validator("horizon_s")
    @classmethod
    def _an_hour_at_least(cls, value: int) -> int:
        """``horizon_s = 60`` (minutes or hours meant) was taken: the planner then saw a minute
        of forecast and the last value, flat, after it, so it could not shift any job."""
        if value < MIN_HORIZON_S:
            raise ValueError(f"{value} s is less than an hour ({MIN_HORIZON_S} s): the planner "
                             "sees the forecast's last value, flat, past it (seconds: 48 h is "
                             "172800, the default)")  # fmt: skip
        return value

    @field_validator("step_s")
    @classmethod
    def _a_minute_to_the_horizon(cls, value: int, info: ValidationInfo) -> int:
        """``step_s = 7`` was taken: 24,686 points a zone each refresh, none of them data (no
        source forecasts finer than 5 minutes)."""
        if value < MIN_STEP_S:
            raise ValueError(f"{value} s is less than a minute ({MIN_STEP_S} s): no source "
                             "forecasts finer than 5 minutes (default 900)")  # fmt: skip
        horizon = info.data.get("horizon_s")
        if horizon is not None and value > horizon:
            raise ValueError(f"{value} s is longer than horizon_s ({horizon} s): the forecast "
                             "would hold one value")  # fmt: skip
        return value


class QueueSettings(Section):
    """The queue file and its compaction; how many of each user's spool files are read."""

    max_line_bytes: int = Field(default=65_536, ge=256)
    compact_min_bytes: int = Field(default=1_048_576, ge=0)
    retired_grace_s: float = Field(default=60.0, ge=0, le=MAX_DURATION_S)
    max_files_per_user: int = Field(default=32, ge=1, le=1_000_000)


class MetricsSettings(Section):
    """The Prometheus endpoint, served on 127.0.0.1 only."""

    port: int = Field(default=9464, ge=0, le=65535, description="0 turns the endpoint off")


class LedgerSettings(Section):
    """Who may open the ledger (docs/operations.md, "Who can read the ledger").

    ``private = false`` (the default): ``ledger.db`` and its ``-wal``/``-shm`` are readable by
    every local user, so that ``carbond jobs``, ``status``, ``report`` and ``cancel`` work for
    them; any of them can then read every job's argv and cwd, and stall the daemon's writes by
    holding a lock on ``-shm``. ``private = true``: the daemon's uid alone may open them (0600,
    made so at start); the users' ledger commands then say they cannot read it.
    """

    private: bool = False


class LogSettings(Section):
    """Log level and format (``auto``: JSON unless stderr is a terminal)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "console"] = "auto"


class RecalibrationSettings(Section):
    """How much measured evidence a (model, GPU type, runtime, precision), or its coarser
    (model, GPU type), needs before the planner uses the factors learned from it (docs/gpus.md,
    "Recalibration"): at least ``min_samples`` succeeded measured runs that together cover
    ``min_measured_s`` seconds of run time. Until then the fine key uses the pair's factors,
    once those have the evidence, and otherwise its estimates stay the catalog's. Lower
    ``min_measured_s`` where jobs are short and the meter is trusted; raise either to wait for
    more evidence.
    """

    min_samples: int = Field(default=DEFAULT_RECALIBRATION.min_samples, ge=1, le=1_000_000)
    min_measured_s: float = Field(
        default=DEFAULT_RECALIBRATION.min_measured_s, ge=0, le=MAX_DURATION_S
    )
