"""`ews`: early-warning signals of a critical transition in an entity's time series.

Approaching a bifurcation, a system recovers ever more slowly from small shocks ("critical
slowing down"): over rolling windows its variance and its lag-1 autocorrelation rise. For each
window of `time_window` points (optionally minus its least-squares line) the predictor computes

    variance         sum(d^2) / (w - 1)
    autocorrelation  rho = sum(d_k d_k+1) / sum(d_k^2)      (the usual ACF estimator)

their trends as Kendall's tau against time, and from the last window's rho the recovery rate of
the AR(1) it resembles, lambda = -ln(rho) per step (x_k+1 = rho x_k + noise ~ dx/dt = -lambda x),
which goes to 0 at the transition.

Rolling statistics come from cumulative sums (O(n) for any window) and Kendall's tau from a
merge-count of discordant pairs (O(n log^2 n)), so a 10,000-point series costs milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from batchpredict.constants import ErrorCode
from batchpredict.entities import Entity
from batchpredict.predictors._common import InvalidEntityError, json_float, unit_interval
from batchpredict.predictors.base import (
    EntityGraph,
    Outcome,
    Prediction,
    Predictor,
    PredictorParams,
)
from batchpredict.predictors.registry import register

MIN_WINDOW = 4
MAX_WINDOW = 10_000
RHO_FLOOR = 1e-6  # -ln(1e-6) ~ 13.8: "far from the transition"
WINDOWS_FOR_FULL_QUALITY = 20
# Below this share of the series' own spread (squared) a window counts as constant: cumulative
# sums cannot resolve smaller variances, and a constant window has no autocorrelation.
FLAT_WINDOW = 1e-10

Floats = NDArray[np.float64]


class EwsParams(PredictorParams):
    time_window: int | None = Field(
        default=None,
        ge=MIN_WINDOW,
        le=MAX_WINDOW,
        description="Rolling window length in points; default half the series (at least 4).",
    )
    detrend: bool = Field(
        default=True,
        description="Subtract each window's least-squares line before its statistics.",
    )
    warning_tau: float = Field(
        default=0.3,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Warn when both Kendall trends (variance, autocorrelation) exceed this.",
    )


def rolling_indicators(series: Floats, window: int, detrend: bool) -> tuple[Floats, Floats]:
    """Per-window variance (ddof=1) and lag-1 autocorrelation of the (detrended) windows.

    The residual sums are expanded into window sums of x, x^2, t*x and x_k*x_k+1, each a
    difference of cumulative sums. The series is standardised first so the differences keep
    their precision; the variances are scaled back. A flat window gets autocorrelation NaN.
    """
    w = window
    spread = float(series.std())
    if spread == 0.0:
        m = series.size - w + 1
        return np.zeros(m), np.full(m, np.nan)
    x = (series - series.mean()) / spread
    k = np.arange(x.size, dtype=float)

    def window_sums(values: Floats, length: int) -> Floats:
        c = np.concatenate(([0.0], np.cumsum(values)))
        return c[length:] - c[:-length]

    s1 = window_sums(x, w)
    s2 = window_sums(x * x, w)
    lag = window_sums(x[:-1] * x[1:], w - 1)[: s1.size]
    first, last = x[: s1.size], x[w - 1 :]
    a = s1 - last  # sum of x_k over the window's first w-1 points
    b = s1 - first  # ... over its last w-1 points
    mean = s1 / w
    ss = s2 - s1 * mean  # sum of squared deviations from the window mean
    cross = lag - mean * (a + b) + (w - 1) * mean * mean
    if detrend:
        # local time tau = k - start - c, centred (sum tau = 0), c = (w - 1) / 2
        c = (w - 1) / 2.0
        stt = w * (w * w - 1) / 12.0  # sum tau^2
        start = np.arange(s1.size, dtype=float)
        st = window_sums(k * x, w) - (start + c) * s1  # sum tau x
        slope = st / stt
        ss = ss - slope * st
        # sum over the w-1 lag pairs of (tau_k+1 x_k + tau_k x_k+1), and of tau_k tau_k+1
        mixed = (st - c * last + a) + (st + c * first - b)
        cross = cross - slope * mixed + slope * slope * (stt - c * c - c)
    flat = ss <= FLAT_WINDOW * w
    ss = np.where(flat, 0.0, ss)
    variance = ss / (w - 1) * spread * spread
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(flat, np.nan, cross / np.where(flat, 1.0, ss))
    return variance, np.clip(rho, -1.0, 1.0)


def window_indicators(window: Floats, detrend: bool, spread: float) -> tuple[float, float]:
    """Variance and lag-1 autocorrelation of one window, computed directly (no cumsums).

    `spread` is the whole series' standard deviation: the same flatness cut as the rolling path.
    """
    w = window.size
    d = window - window.mean()
    if detrend:
        tau = np.arange(w, dtype=float) - (w - 1) / 2.0
        d = d - (d @ tau) / (tau @ tau) * tau
    ss = float(d @ d)
    if ss <= FLAT_WINDOW * w * spread * spread:
        return 0.0, math.nan
    return ss / (w - 1), max(-1.0, min(1.0, float(d[:-1] @ d[1:]) / ss))


def kendall_tau(values: Floats) -> float | None:
    """Kendall's tau-b of `values` against time (their order); None with fewer than 2 values.

    Ties in the values are allowed (time has none). A constant series has no trend: 0.0.
    """
    values = values[np.isfinite(values)]
    n = values.size
    if n < 2:
        return None
    _, ranks = np.unique(values, return_inverse=True)
    counts = np.bincount(ranks)
    pairs = n * (n - 1) / 2.0
    tied = float((counts * (counts - 1)).sum()) / 2.0
    if pairs - tied <= 0:
        return 0.0
    return max(-1.0, min(1.0, _concordance(ranks) / math.sqrt(pairs * (pairs - tied))))


def _concordance(ranks: NDArray[np.intp]) -> float:
    """sum over i < j of sign(ranks[j] - ranks[i]), by merge levels.

    At the level with block size s, every pair (i, j) that sits in the left and right halves of
    one 2s-block is counted once: the left halves are sorted by (block, rank) and each right
    element finds how many of its block's left elements are below and above it.
    """
    n = ranks.size
    r = ranks.astype(np.int64)
    span = int(np.max(r)) + 1
    position = np.arange(n)
    total = 0
    size = 1
    while size < n:
        block = position // (2 * size)
        right = (position // size) % 2 == 1
        keys = np.sort(block[~right] * span + r[~right])
        base = block[right] * span
        below = np.searchsorted(keys, base + r[right], "left")
        at_or_below = np.searchsorted(keys, base + r[right], "right")
        block_start = np.searchsorted(keys, base, "left")
        block_end = np.searchsorted(keys, base + span, "left")
        total += int((below - block_start).sum()) - int((block_end - at_or_below).sum())
        size *= 2
    return float(total)


def recovery_rate(rho: float) -> float | None:
    """-ln(rho) with rho clipped to [RHO_FLOOR, 1]: 0 at the transition, large far from it."""
    if math.isnan(rho):
        return None
    return -math.log(min(1.0, max(RHO_FLOOR, rho))) + 0.0  # + 0.0: no "-0.0" in the output


@register
class EwsPredictor(Predictor[EwsParams]):
    prediction_type = "ews"
    version = "1"
    params_model = EwsParams
    cache_ttl_seconds = 900
    description = (
        "Early-warning signals of a critical transition in the entity's time series: rolling "
        "variance and lag-1 autocorrelation, their Kendall trends, and a critical distance."
    )

    def predict_batch(
        self, entities: Sequence[Entity], params: EwsParams, graph: EntityGraph
    ) -> list[Outcome]:
        # Series differ in length and window, so each is vectorised on its own.
        outcomes: list[Outcome] = []
        for entity in entities:
            try:
                outcomes.append(self._predict_one(entity, params))
            except InvalidEntityError as error:
                outcomes.append(error.outcome())
        return outcomes

    def _predict_one(self, entity: Entity, params: EwsParams) -> Prediction:
        if not entity.time_series:
            raise InvalidEntityError(
                ErrorCode.MISSING_ATTRIBUTE, f"entity {entity.entity_id!r} has no time_series"
            )
        series = np.asarray(entity.time_series, dtype=float)
        if not np.isfinite(series).all():
            at = int(np.flatnonzero(~np.isfinite(series))[0])
            raise InvalidEntityError(
                ErrorCode.INVALID_INPUT,
                f"time_series[{at}] of entity {entity.entity_id!r} is not a finite number",
            )
        window = params.time_window or max(MIN_WINDOW, series.size // 2)
        if series.size < window + 2:
            raise InvalidEntityError(
                ErrorCode.INVALID_INPUT,
                f"time_series of entity {entity.entity_id!r} has {series.size} points; "
                f"time_window {window} needs at least {window + 2}",
            )
        variance, rho = rolling_indicators(series, window, params.detrend)
        last_variance, last_rho = window_indicators(
            series[-window:], params.detrend, float(series.std())
        )
        variance_trend = kendall_tau(variance)
        rho_trend = kendall_tau(rho)
        rate = recovery_rate(last_rho)
        windows = int(variance.size)
        warning = (
            variance_trend is not None
            and rho_trend is not None
            and variance_trend > params.warning_tau
            and rho_trend > params.warning_tau
        )
        return Prediction(
            value={
                "variance": json_float(last_variance),
                "autocorrelation": json_float(last_rho),
                "variance_trend": variance_trend,
                "autocorrelation_trend": rho_trend,
                "critical_distance": rate,
                "recovery_rate": rate,
                "warning": bool(warning),
                "windows": windows,
                "time_window": int(window),
            },
            quality=unit_interval(windows / WINDOWS_FOR_FULL_QUALITY),
        )
