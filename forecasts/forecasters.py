"""Forecasters: intensity over the planning horizon from history strictly before the issue time.

Every forecaster works on the history's own grid: the history points that *start* before the
issue time are known, the forecast covers the next ``ceil(horizon_s / step)`` points, and is then
resampled to the requested ``step_s``. Internally each forecaster is vectorised over many issue
times (:meth:`forecast_many`), which is what the backtest and replay use.

Built-ins (``FORECASTERS`` registry, by name):

- ``persistence``: the last known value, flat.
- ``seasonal-24h`` / ``seasonal-168h``: the value one day / one week earlier.
- ``blend``: per lead time, a least-squares combination of persistence, the two seasonal-naive
  forecasts and the mean of the last seven days at that hour, with weights fitted on the
  trailing 28 days before the issue time only (ridge-shrunk towards the seasonal average).
- ``provider``: the provider's own forecast (:class:`ProviderForecaster`), when there is one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Final, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from forecasts.errors import ForecastsError, SeriesError, UnknownForecasterError
from forecasts.series import FloatArray, IntensitySeries, check_same_kind

__all__ = [
    "FORECASTERS",
    "BlendForecaster",
    "Forecaster",
    "PersistenceForecaster",
    "ProviderForecaster",
    "SeasonalNaiveForecaster",
    "VectorForecaster",
    "filled_history",
    "forecast_series",
    "make_forecaster",
]

IntArray = npt.NDArray[np.int64]
DAY_S: Final = 86_400


@runtime_checkable
class Forecaster(Protocol):
    """Makes a forecast series from history strictly before ``issue_time``."""

    @property
    def name(self) -> str:
        """The registry name (``persistence``, ``blend``, ...)."""
        ...

    def forecast(
        self, history: IntensitySeries, issue_time: datetime, horizon_s: int, step_s: int
    ) -> IntensitySeries:
        """Forecast ``[issue point, issue point + horizon_s)`` at ``step_s``.

        Raises:
            ForecastsError: the history has no usable point before ``issue_time``.
        """
        ...


@runtime_checkable
class VectorForecaster(Forecaster, Protocol):
    """A forecaster that can forecast many issue times at once on one history array."""

    def forecast_many(
        self, y: FloatArray, issues: IntArray, n_leads: int, step_s: int
    ) -> FloatArray:
        """Row r, column k: the forecast of ``y[issues[r] + k]`` from ``y[:issues[r]]``.

        ``y`` has no NaN (see :func:`filled_history`) and every issue is >= 1.
        """
        ...


def filled_history(values: FloatArray) -> FloatArray:
    """``values`` with missing points carried forward (then backward at the start).

    Raises:
        ForecastsError: no finite value at all.
    """
    finite = np.isfinite(values)
    if not finite.any():
        raise ForecastsError("no known intensity in the history")
    if finite.all():
        return np.asarray(values, dtype=np.float64)
    idx = np.where(finite, np.arange(len(values)), 0)
    np.maximum.accumulate(idx, out=idx)
    out = np.asarray(values, dtype=np.float64)[idx]
    first = int(np.argmax(finite))
    out[:first] = values[first]
    return out


def _run_one(
    forecaster: VectorForecaster,
    history: IntensitySeries,
    issue_time: datetime,
    horizon_s: int,
    step_s: int,
) -> IntensitySeries:
    """Shared :meth:`Forecaster.forecast` for vectorised forecasters."""
    if horizon_s <= 0:
        raise SeriesError(f"{history.zone}: horizon_s must be positive, got {horizon_s}")
    i = min(len(history), history.index_of(issue_time - timedelta(microseconds=1)) + 1)
    if i < 1:
        raise ForecastsError(f"{history.zone}: no history before {issue_time.isoformat()}")
    y = filled_history(history.values_g_per_kwh[:i])
    n_leads = math.ceil(horizon_s / history.step_s)
    values = forecaster.forecast_many(y, np.array([i], dtype=np.int64), n_leads, history.step_s)[0]
    return forecast_series(history, i, values, forecaster.name, issue_time, step_s)


def forecast_series(
    history: IntensitySeries,
    first: int,
    values: FloatArray,
    forecaster: str,
    issued_at: datetime,
    step_s: int,
) -> IntensitySeries:
    """The forecast ``values`` for ``history``'s points from index ``first`` on, as a series
    (every point estimated, source ``forecast:<forecaster>``), resampled to ``step_s``."""
    out = IntensitySeries(
        zone=history.zone,
        start=history.start + timedelta(seconds=history.step_s * first),
        step_s=history.step_s,
        values_g_per_kwh=values,
        is_estimated=np.ones(len(values), dtype=np.bool_),
        kind=history.kind,
        source=f"forecast:{forecaster}",
        fetched_at=issued_at,
    )
    return out if step_s == history.step_s else out.resample(step_s)


def _seasonal_index(issues: IntArray, leads: IntArray, period: int) -> IntArray:
    """Index of the value ``period`` steps (or whole multiples) before each target, < issue."""
    return issues + leads - np.ceil((leads + 1) / period).astype(np.int64) * period


def _gather(y: FloatArray, idx: IntArray, fallback: FloatArray) -> FloatArray:
    ok = idx >= 0
    return np.where(ok, y[np.clip(idx, 0, None)], fallback)


@dataclass(frozen=True, slots=True)
class PersistenceForecaster:
    """The last known value, held flat over the horizon."""

    name: str = "persistence"

    def forecast_many(
        self, y: FloatArray, issues: IntArray, n_leads: int, step_s: int
    ) -> FloatArray:
        return np.repeat(y[issues - 1][:, None], n_leads, axis=1)

    def forecast(
        self, history: IntensitySeries, issue_time: datetime, horizon_s: int, step_s: int
    ) -> IntensitySeries:
        return _run_one(self, history, issue_time, horizon_s, step_s)


@dataclass(frozen=True, slots=True)
class SeasonalNaiveForecaster:
    """The value one period earlier (whole periods back until it is known)."""

    period_s: int = DAY_S
    name: str = "seasonal-24h"

    def forecast_many(
        self, y: FloatArray, issues: IntArray, n_leads: int, step_s: int
    ) -> FloatArray:
        persistence = np.repeat(y[issues - 1][:, None], n_leads, axis=1)
        if self.period_s % step_s:
            return persistence
        leads = np.arange(n_leads, dtype=np.int64)[None, :]
        idx = _seasonal_index(issues[:, None], leads, self.period_s // step_s)
        return _gather(y, idx, persistence)

    def forecast(
        self, history: IntensitySeries, issue_time: datetime, horizon_s: int, step_s: int
    ) -> IntensitySeries:
        return _run_one(self, history, issue_time, horizon_s, step_s)


def _features(y: FloatArray, issues: IntArray, leads: IntArray, day: int) -> FloatArray:
    """Blend inputs for (issue, lead) pairs (broadcast): shape ``(..., 5)``.

    Persistence, seasonal naive 24 h and 168 h, the 7-day mean at the target's hour of day,
    and the mean of the last 24 h. NaN where unknown.
    """
    issues, leads = np.broadcast_arrays(issues, leads)
    nan = np.full(issues.shape, np.nan)
    last = _gather(y, issues - 1, nan)
    base = _seasonal_index(issues, leads, day)
    daily = _gather(y, base, nan)
    weekly = _gather(y, _seasonal_index(issues, leads, 7 * day), nan)
    profile = np.mean([_gather(y, base - r * day, nan) for r in range(7)], axis=0)
    cumulative = np.concatenate(([0.0], np.cumsum(y)))
    level = np.where(
        issues >= day,
        (cumulative[np.clip(issues, 0, len(y))] - cumulative[np.clip(issues - day, 0, len(y))])
        / day,
        np.nan,
    )
    return np.stack([last, daily, weekly, profile, level], axis=-1)


@dataclass(frozen=True, slots=True)
class BlendForecaster:
    """Per-lead least-squares blend of persistence, seasonal naive and a 7-day profile.

    The weights for lead ``k`` are fitted, at each issue time, on the ``window_days`` of
    pseudo-forecasts whose targets are all before the issue time, by ridge regression shrunk
    (``shrink``) towards ``prior``. With too little history it falls back to ``prior``, and to
    seasonal naive where the profile inputs are unknown.
    """

    window_days: int = 28
    shrink: float = 0.2
    prior: tuple[float, ...] = (0.5, 0.0, 0.5, 0.0)
    refit_every_s: int = DAY_S
    name: str = "blend"

    def _weights(self, y: FloatArray, issue: int, n_leads: int, day: int) -> FloatArray:
        window = self.window_days * day
        leads = np.arange(n_leads, dtype=np.int64)[:, None]
        pseudo = issue - leads - window + np.arange(window, dtype=np.int64)[None, :]
        x = _features(y, pseudo, leads, day)  # (lead, window, feature)
        target = _gather(y, pseudo + leads, np.full(pseudo.shape, np.nan))
        ok = np.isfinite(x).all(axis=-1) & np.isfinite(target) & (pseudo >= 1)
        # Affine combination: model the change from the last value, so weights sum to one.
        dx = np.where(ok[..., None], x[..., 1:] - x[..., :1], 0.0)
        dy = np.where(ok, target - x[..., 0], 0.0)
        # The prior moves from persistence (short leads) to the seasonal profile (a day out).
        prior = np.asarray(self.prior)[None, :] * np.minimum(1.0, (leads + 1) / day)
        xtx = np.einsum("lwi,lwj->lij", dx, dx)
        xty = np.einsum("lwi,lw->li", dx, dy)
        n = dx.shape[-1]
        scale = np.trace(xtx, axis1=1, axis2=2) / n + 1e-9
        lam = (self.shrink * scale)[:, None, None] * np.eye(n)
        rhs = xty + np.einsum("lij,lj->li", lam, prior)
        weights = np.linalg.solve(xtx + lam, rhs[..., None])[..., 0]
        too_few = ok.sum(axis=1) < 2 * day
        weights[too_few] = prior[too_few]
        return weights  # (lead, feature - 1): weights of the changes from the last value

    def forecast_many(
        self, y: FloatArray, issues: IntArray, n_leads: int, step_s: int
    ) -> FloatArray:
        seasonal = SeasonalNaiveForecaster(DAY_S).forecast_many(y, issues, n_leads, step_s)
        if DAY_S % step_s:
            return seasonal
        day = DAY_S // step_s
        leads = np.arange(n_leads, dtype=np.int64)[None, :]
        x = _features(y, issues[:, None], leads, day)  # (issue, lead, feature)
        refit = max(1, self.refit_every_s // step_s)
        out = np.empty((len(issues), n_leads))
        cached: dict[int, FloatArray] = {}
        for r, issue in enumerate(issues.tolist()):
            fit_at = issue - issue % refit
            if fit_at not in cached:
                cached[fit_at] = self._weights(y, fit_at, n_leads, day)
            change = np.nan_to_num(x[r, :, 1:] - x[r, :, :1])
            blend = x[r, :, 0] + np.einsum("li,li->l", change, cached[fit_at])
            out[r] = np.where(np.isfinite(x[r]).all(axis=-1), blend, seasonal[r])
        return out

    def forecast(
        self, history: IntensitySeries, issue_time: datetime, horizon_s: int, step_s: int
    ) -> IntensitySeries:
        return _run_one(self, history, issue_time, horizon_s, step_s)


@dataclass(frozen=True, slots=True)
class ProviderForecaster:
    """The provider's own forecast (e.g. Electricity Maps ``/forecast``), held as a series.

    Points the provider does not cover are filled by ``fallback`` and stay flagged estimated.
    """

    provided: IntensitySeries
    fallback: VectorForecaster = PersistenceForecaster()
    name: str = "provider"

    def forecast(
        self, history: IntensitySeries, issue_time: datetime, horizon_s: int, step_s: int
    ) -> IntensitySeries:
        check_same_kind(history, self.provided)
        base = _run_one(self.fallback, history, issue_time, horizon_s, history.step_s)
        own = self.provided
        if own.step_s != base.step_s:
            own = own.resample(base.step_s)
        merged = base.merge(own.replace(zone=base.zone)).slice(base.start, base.end)
        out = merged.replace(source=f"forecast:{self.name}", fetched_at=self.provided.fetched_at)
        return out if step_s == out.step_s else out.resample(step_s)


def _seasonal_weekly() -> SeasonalNaiveForecaster:
    return SeasonalNaiveForecaster(7 * DAY_S, "seasonal-168h")


FORECASTERS: Final[Mapping[str, Callable[[], VectorForecaster]]] = MappingProxyType(
    {
        "persistence": PersistenceForecaster,
        "seasonal-24h": SeasonalNaiveForecaster,
        "seasonal-168h": _seasonal_weekly,
        "blend": BlendForecaster,
    }
)


def make_forecaster(name: str) -> VectorForecaster:
    """A built-in forecaster by name (``persistence``, ``seasonal-24h``, ...).

    Raises:
        UnknownForecasterError: no forecaster has that name.
    """
    try:
        return FORECASTERS[name]()
    except KeyError as e:
        raise UnknownForecasterError(name, tuple(FORECASTERS)) from e
