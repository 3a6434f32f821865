"""Time-weighted mean intensities over job runs, read from a forecast's cumulative integral.

:func:`mean_intensities` reads one zone's step function for any array of (start, duration) with
NumPy; :func:`pool_means` does it for every pool of a tick at once, the zones whose forecasts
share a step, an offset and a length in one compiled loop (numba: a tick scores a few zones
for a few new jobs, or slot 0 for the queue, where NumPy's per-call overhead dominated, and
the loop needs none of NumPy's temporaries on large arrays). Both compute the same expressions
on the same operands in the same order, so their values are equal, bit for bit (tested).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from policies.compiled import compiled

__all__ = ["ZoneSeries", "mean_intensities", "pool_means"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ZoneSeries:
    """One pool's intensity step function: ``values_g_per_kwh`` on cells of ``step_s``
    seconds, the first starting ``offset_s`` seconds after the slot origin. Pools with equal
    ``key`` (zone and GPU type) share their means."""

    key: Hashable
    values_g_per_kwh: FloatArray
    step_s: float
    offset_s: float


def _cumulative_at(
    values: FloatArray, cum: FloatArray, x: FloatArray, rows: npt.NDArray[np.int64] | None
) -> FloatArray:
    """Integral of a step function with ``values`` on unit cells ``[i, i+1)`` from 0 to ``x``
    along the last axis (``cum``: 0 then the cumulative sums of ``values``). Stacked:
    ``values`` ``(Z, n)``, ``cum`` ``(Z, n + 1)``, ``x`` ``(Z, ...)`` and ``rows`` each
    zone's row number broadcast to ``x``'s shape; else ``values`` and ``cum`` are 1-D.

    Outside ``[0, n]`` the nearest value holds (first before, last after).
    """
    n = values.shape[-1]
    clipped = np.clip(x, 0.0, float(n))
    k = np.minimum(clipped.astype(np.int64), n - 1)
    if rows is None:
        at_k, cum_k, first, last = values[k], cum[k], values[0], values[-1]
    else:  # flat indices: take is several times faster than indexing by (row, k)
        at = k + rows * n
        at_k, cum_k = values.take(at), cum.take(at + rows)  # cum's rows are n + 1 long
        edge = (len(values),) + (1,) * (x.ndim - 1)
        first, last = values[:, 0].reshape(edge), values[:, -1].reshape(edge)
    inside = cum_k + (clipped - k) * at_k
    before = np.minimum(x, 0.0) * first
    after = np.maximum(x - n, 0.0) * last
    result: FloatArray = inside + before + after
    return result


def _means(
    values: FloatArray, step_s: float, offset_s: float, starts_s: FloatArray, span_s: FloatArray
) -> FloatArray:
    """The means of ``values`` (1-D, or ``(Z, n)`` with ``span_s`` of shape ``(Z, ...)``)."""
    x0 = (np.asarray(starts_s) - offset_s) / step_s
    span = np.asarray(span_s, dtype=np.float64) / step_s
    x0, span = np.broadcast_arrays(x0, span)
    safe = np.where(span > 0, span, 1.0)
    zero = np.zeros((*values.shape[:-1], 1))
    cum = np.concatenate((zero, np.cumsum(values, axis=-1)), axis=-1)
    rows = None
    if values.ndim > 1:
        edge = (len(values),) + (1,) * (x0.ndim - 1)
        rows = np.arange(len(values)).reshape(edge)
    means = (
        _cumulative_at(values, cum, x0 + safe, rows) - _cumulative_at(values, cum, x0, rows)
    ) / safe
    cell = np.clip(np.floor(x0).astype(np.int64), 0, values.shape[-1] - 1)
    at_start = values[cell] if rows is None else values.take(cell + rows * values.shape[-1])
    result: FloatArray = np.where(span > 0, means, at_start)
    return result


def mean_intensities(
    values_g_per_kwh: FloatArray,
    step_s: float,
    offset_s: float,
    starts_s: FloatArray,
    durations_s: FloatArray,
) -> FloatArray:
    """Time-weighted mean intensity over ``[start, start + duration]`` for every pair.

    ``values_g_per_kwh`` starts ``offset_s`` seconds after the slot origin; ``starts_s`` (any
    shape) and ``durations_s`` (broadcastable) are seconds after the origin. Zero durations give
    the value at the start. Returns the broadcast shape.
    """
    values = np.asarray(values_g_per_kwh, dtype=np.float64)
    return _means(values, step_s, offset_s, starts_s, durations_s)


def pool_means(
    series: Sequence[ZoneSeries], starts_s: FloatArray, duration_s: FloatArray
) -> FloatArray:
    """:func:`mean_intensities` of every pool's series for every job and start, ``(P, J, S)``:
    pool ``p``'s series, the job's duration there (``duration_s`` ``(J, P)``, non-finite read
    as 0) and each of the ``S`` ``starts_s``. Pools of one ``key`` take the first's means
    (their durations are equal: estimates are per GPU type)."""
    n_jobs, n_pools = duration_s.shape
    out = np.empty((n_pools, n_jobs, len(starts_s)))
    finite = np.where(np.isfinite(duration_s), duration_s, 0.0)
    first: dict[Hashable, int] = {}
    copies: list[tuple[int, int]] = []
    groups: dict[tuple[float, float, int], list[int]] = {}
    for p, one in enumerate(series):
        same = first.setdefault(one.key, p)
        if same != p:
            copies.append((p, same))
            continue
        shape = (float(one.step_s), float(one.offset_s), len(one.values_g_per_kwh))
        groups.setdefault(shape, []).append(p)
    starts = np.ascontiguousarray(starts_s, dtype=np.float64)
    for (step_s, offset_s, _), pools in groups.items():
        values = np.stack([series[p].values_g_per_kwh for p in pools]).astype(np.float64)
        spans = np.ascontiguousarray(finite.T[pools])
        means = np.empty((len(pools), n_jobs, len(starts)))
        _pool_means(values, step_s, offset_s, starts, spans, means)
        out[pools] = means
    for p, same in copies:
        out[p] = out[same]
    return out


@compiled
def _integral(values, cum, z, n, x, first, last):  # type: ignore[no-untyped-def]
    """``_cumulative_at`` of row ``z`` at ``x``: its operations, in its order."""
    clipped = 0.0 if x < 0.0 else x  # np.clip(x, 0, n): NaN-free operands
    if clipped > n:
        clipped = float(n)
    k = min(int(clipped), n - 1)
    inside = cum[z, k] + (clipped - k) * values[z, k]
    before = (x if x < 0.0 else 0.0) * first  # np.minimum(x, 0.0)
    beyond = x - n
    after = (beyond if beyond > 0.0 else 0.0) * last  # np.maximum(x - n, 0.0)
    return inside + before + after


@compiled
def _pool_means(values, step_s, offset_s, starts_s, spans_s, out):  # type: ignore[no-untyped-def]
    """:func:`_means` of each row ``z`` of ``values`` ``(Z, n)`` for each job's span
    ``spans_s[z, j]`` (finite) and each start ``starts_s[s]``, into ``out`` ``(Z, J, S)``."""
    z_count, n = values.shape
    cum = np.empty((z_count, n + 1))
    for z in range(z_count):
        cum[z, 0] = 0.0
        cum[z, 1] = values[z, 0]  # np.cumsum: the first sum is the first value
        for i in range(1, n):
            cum[z, i + 1] = cum[z, i] + values[z, i]
    x0 = np.empty(len(starts_s))
    cell = np.empty(len(starts_s), dtype=np.int64)
    for s in range(len(starts_s)):
        x0[s] = (starts_s[s] - offset_s) / step_s
        c = np.int64(np.floor(x0[s]))
        cell[s] = min(max(c, 0), n - 1)
    start = np.empty(len(starts_s))  # the integral to each start: the same for every job
    for z in range(z_count):
        first, last = values[z, 0], values[z, n - 1]
        for s in range(len(starts_s)):
            start[s] = _integral(values, cum, z, n, x0[s], first, last)
        for j in range(spans_s.shape[1]):
            span = spans_s[z, j] / step_s
            if not span > 0:
                for s in range(len(starts_s)):
                    out[z, j, s] = values[z, cell[s]]
                continue
            for s in range(len(starts_s)):
                end = _integral(values, cum, z, n, x0[s] + span, first, last)
                out[z, j, s] = (end - start[s]) / span
