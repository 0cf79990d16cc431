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
A chunk's series of one length are computed together, one row each: every step works on whole
rows, so a row's result does not depend on which rows share its matrix, and short trends (up to
`PAIRWISE_TAU_MAX` windows) count their pairs directly.
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

# Kendall's tau over at most this many windows compares all pairs at once (m^2 / 2 per row)
# rather than merge-counting them; a matrix's rows are compared PAIRWISE_CELLS pairs at a time
# (small enough for the CPU's cache: larger blocks made a chunk of 100 slower than one of 25).
PAIRWISE_TAU_MAX = 512
PAIRWISE_CELLS = 1 << 14

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

    `series` is one series or a matrix of them (one per row, the windows along each row). The
    residual sums are expanded into window sums of x, x^2, t*x and x_k*x_k+1, each a
    difference of cumulative sums. Each series is standardised first so the differences keep
    their precision; the variances are scaled back. A flat window (a constant series has only
    flat ones) gets autocorrelation NaN.
    """
    w = window
    spread = series.std(axis=-1, keepdims=True)
    x = (series - series.mean(axis=-1, keepdims=True)) / np.where(spread == 0.0, 1.0, spread)
    k = np.arange(x.shape[-1], dtype=float)

    def window_sums(values: Floats, length: int) -> Floats:
        c = np.cumsum(values, axis=-1)
        c = np.concatenate((np.zeros((*c.shape[:-1], 1)), c), axis=-1)
        return c[..., length:] - c[..., :-length]

    s1 = window_sums(x, w)
    m = s1.shape[-1]
    s2 = window_sums(x * x, w)
    lag = window_sums(x[..., :-1] * x[..., 1:], w - 1)[..., :m]
    first, last = x[..., :m], x[..., w - 1 :]
    a = s1 - last  # sum of x_k over the window's first w-1 points
    b = s1 - first  # ... over its last w-1 points
    mean = s1 / w
    ss = s2 - s1 * mean  # sum of squared deviations from the window mean
    cross = lag - mean * (a + b) + (w - 1) * mean * mean
    if detrend:
        # local time tau = k - start - c, centred (sum tau = 0), c = (w - 1) / 2
        c = (w - 1) / 2.0
        stt = w * (w * w - 1) / 12.0  # sum tau^2
        start = np.arange(m, dtype=float)
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


def window_indicators(
    windows: Floats, detrend: bool, spread: Floats | float
) -> tuple[Floats, Floats]:
    """Variance and lag-1 autocorrelation of each window (a row each), computed directly.

    No cumulative sums, and row-wise sums only, so a row's answer does not depend on the other
    rows. `spread` is each window's whole series' standard deviation: the same flatness cut as
    the rolling path.
    """
    w = windows.shape[-1]
    d = windows - windows.mean(axis=-1, keepdims=True)
    if detrend:
        tau = np.arange(w, dtype=float) - (w - 1) / 2.0
        d = d - ((d * tau).sum(axis=-1, keepdims=True) / (tau * tau).sum()) * tau
    ss = (d * d).sum(axis=-1)
    flat = ss <= FLAT_WINDOW * w * np.square(spread)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = (d[..., :-1] * d[..., 1:]).sum(axis=-1) / np.where(flat, 1.0, ss)
    variance = np.where(flat, 0.0, ss / (w - 1))
    return variance, np.where(flat, np.nan, np.clip(rho, -1.0, 1.0))


def kendall_taus(rows: Floats) -> list[float | None]:
    """`kendall_tau` of each row. Short rows count their pairs directly, a block at a time:
    the same integer pair counts as the merge count, so the same tau."""
    m = rows.shape[-1]
    if m > PAIRWISE_TAU_MAX:
        return [kendall_tau(row) for row in rows]
    out: list[float | None] = []
    first, second = np.triu_indices(m, 1)  # every pair i < j
    block = max(1, PAIRWISE_CELLS // max(1, first.size))
    for begin in range(0, rows.shape[0], block):
        values = rows[begin : begin + block]
        finite = np.isfinite(values)
        counted = finite[:, first] & finite[:, second]
        difference = np.where(finite, values, 0.0)
        difference = difference[:, second] - difference[:, first]
        concordance = np.where(counted, np.sign(difference), 0.0).sum(axis=-1)
        tied = (counted & (difference == 0.0)).sum(axis=-1)
        n = finite.sum(axis=-1)
        for s, t, count in zip(concordance.tolist(), tied.tolist(), n.tolist(), strict=True):
            out.append(_tau_b(float(s), float(t), int(count)))
    return out


def _tau_b(concordance: float, tied: float, n: int) -> float | None:
    if n < 2:
        return None
    pairs = n * (n - 1) / 2.0
    if pairs - tied <= 0:
        return 0.0
    return max(-1.0, min(1.0, concordance / math.sqrt(pairs * (pairs - tied))))


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
    tied = float((counts * (counts - 1)).sum()) / 2.0
    return _tau_b(_concordance(ranks), tied, n)


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


def _window(params: EwsParams, length: int) -> int:
    """The window of a series of `length` points: the given one, or half the series."""
    return params.time_window or max(MIN_WINDOW, length // 2)


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
        outcomes: list[Outcome | None] = [None] * len(entities)
        # Series of one length (hence one window) are computed together, a row each.
        groups: dict[int, list[tuple[int, Floats]]] = {}
        for index, entity in enumerate(entities):
            try:
                series = self._series(entity, params)
            except InvalidEntityError as error:
                outcomes[index] = error.outcome()
                continue
            groups.setdefault(series.size, []).append((index, series))
        for length, members in groups.items():
            rows = np.stack([series for _, series in members])
            window = _window(params, length)
            predictions = self._predict_rows(rows, window, params)
            for (index, _), prediction in zip(members, predictions, strict=True):
                outcomes[index] = prediction
        return [outcome for outcome in outcomes if outcome is not None]

    def _series(self, entity: Entity, params: EwsParams) -> Floats:
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
        window = _window(params, series.size)
        if series.size < window + 2:
            raise InvalidEntityError(
                ErrorCode.INVALID_INPUT,
                f"time_series of entity {entity.entity_id!r} has {series.size} points; "
                f"time_window {window} needs at least {window + 2}",
            )
        return series

    def _predict_rows(self, rows: Floats, window: int, params: EwsParams) -> list[Prediction]:
        variance, rho = rolling_indicators(rows, window, params.detrend)
        last_variance, last_rho = window_indicators(
            rows[:, -window:], params.detrend, rows.std(axis=-1)
        )
        variance_trends = kendall_taus(variance)
        rho_trends = kendall_taus(rho)
        windows = int(variance.shape[-1])
        predictions = []
        for row in range(rows.shape[0]):
            variance_trend, rho_trend = variance_trends[row], rho_trends[row]
            rate = recovery_rate(float(last_rho[row]))
            warning = (
                variance_trend is not None
                and rho_trend is not None
                and variance_trend > params.warning_tau
                and rho_trend > params.warning_tau
            )
            predictions.append(
                Prediction(
                    value={
                        "variance": json_float(float(last_variance[row])),
                        "autocorrelation": json_float(float(last_rho[row])),
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
            )
        return predictions
