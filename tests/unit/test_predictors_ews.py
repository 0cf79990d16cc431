"""The ews predictor: rolling variance and autocorrelation, their trends, critical distance."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import ValidationError

from batchpredict.entities import Entity
from batchpredict.predictors import EntityGraph, Prediction, PredictionError, get_predictor
from batchpredict.predictors.ews import (
    EwsParams,
    kendall_tau,
    kendall_taus,
    recovery_rate,
    rolling_indicators,
    window_indicators,
)

ews = get_predictor("ews")


def predict(series: Any, entity_id: str = "s", **params: Any) -> Any:
    target = Entity.create(entity_id, time_series=[float(x) for x in series])
    [outcome] = ews.predict_batch([target], ews.parse_params(params), EntityGraph())
    return outcome


def value(series: Any, **params: Any) -> dict[str, Any]:
    outcome = predict(series, **params)
    assert isinstance(outcome, Prediction), outcome
    return dict(outcome.value)


def ar1(rhos: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros(rhos.size)
    for k in range(1, rhos.size):
        x[k] = rhos[k] * x[k - 1] + rng.normal()
    return x


def test_ews_tiny_series_without_detrending_matches_hand_computation() -> None:
    # windows of 4 over [1, 3, 2, 5, 4, 7]:
    #   [1, 3, 2, 5] mean 2.75  d = [-1.75, .25, -.75, 2.25]  ss 8.75   lag -2.3125
    #   [3, 2, 5, 4] mean 3.5   d = [-.5, -1.5, 1.5, .5]      ss 5.0    lag -0.75
    #   [2, 5, 4, 7] mean 4.5   d = [-2.5, .5, -.5, 2.5]      ss 13.0   lag -2.75
    # variance = ss / 3 -> 2.9167, 1.6667, 4.3333: pairs (-, +, +), tau = (2 - 1) / 3
    # rho = lag / ss -> -0.2643, -0.15, -0.2115: pairs (+, +, -), tau = 1/3
    got = value([1, 3, 2, 5, 4, 7], time_window=4, detrend=False)
    assert got["windows"] == 3
    assert got["variance"] == pytest.approx(13 / 3)
    assert got["autocorrelation"] == pytest.approx(-2.75 / 13)
    assert got["variance_trend"] == pytest.approx(1 / 3)
    assert got["autocorrelation_trend"] == pytest.approx(1 / 3)
    # rho < 0 is clipped to 1e-6: -ln(1e-6)
    assert got["critical_distance"] == pytest.approx(6 * math.log(10))
    assert got["recovery_rate"] == got["critical_distance"]
    assert got["warning"] is True  # both 1/3 > 0.3
    assert (
        value([1, 3, 2, 5, 4, 7], time_window=4, detrend=False, warning_tau=0.4)["warning"] is False
    )


def test_ews_tiny_window_detrended_matches_hand_computation() -> None:
    # last window [2, 5, 4, 7], tau = [-1.5, -.5, .5, 1.5], sum tau^2 = 5
    # sum tau x = -3 - 2.5 + 2 + 10.5 = 7, slope 1.4, mean 4.5
    # d = x - 4.5 - 1.4 tau = [-0.4, 1.2, -1.2, 0.4]: ss 3.2, lag -0.48 - 1.44 - 0.48 = -2.4
    got = value([1, 3, 2, 5, 4, 7], time_window=4)
    assert got["variance"] == pytest.approx(3.2 / 3)
    assert got["autocorrelation"] == pytest.approx(-0.75)


def test_ews_critical_distance_is_minus_log_rho() -> None:
    assert recovery_rate(0.5) == pytest.approx(math.log(2))
    assert recovery_rate(1.0) == 0.0
    assert recovery_rate(0.99999) == pytest.approx(1e-5, rel=1e-3)
    assert recovery_rate(-0.3) == pytest.approx(-math.log(1e-6))
    assert recovery_rate(math.nan) is None


@pytest.mark.parametrize(("n", "window"), [(6, 4), (50, 4), (200, 17), (301, 150), (40, 38)])
@pytest.mark.parametrize("detrend", [True, False])
@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_ews_rolling_indicators_equal_window_by_window_computation(
    n: int, window: int, detrend: bool, offset: float
) -> None:
    rng = np.random.default_rng(n + window)
    x = offset + np.cumsum(rng.normal(size=n)) + 0.05 * np.arange(n)
    variance, rho = rolling_indicators(x, window, detrend)
    spread = float(x.std())
    direct_variance, direct_rho = window_indicators(sliding_window_view(x, window), detrend, spread)
    assert variance.shape == rho.shape == (n - window + 1,)
    np.testing.assert_allclose(variance, direct_variance, rtol=1e-7)
    np.testing.assert_allclose(rho, direct_rho, atol=1e-7)


def brute_force_tau(values: list[float]) -> float:
    s = sum(np.sign(b - a) for a, b in itertools.combinations(values, 2))
    pairs = len(values) * (len(values) - 1) / 2
    tied = sum(c * (c - 1) / 2 for c in np.unique(values, return_counts=True)[1])
    return float(s / math.sqrt(pairs * (pairs - tied)))


@pytest.mark.parametrize("n", [2, 3, 7, 64, 65, 300])
def test_kendall_tau_matches_brute_force_with_ties(n: int) -> None:
    rng = np.random.default_rng(n)
    values = rng.integers(0, max(2, n // 3), size=n).astype(float)
    values[0], values[-1] = 0.0, 1.0  # not all tied
    assert kendall_tau(values) == pytest.approx(brute_force_tau(list(values)))


def test_kendall_tau_edge_cases() -> None:
    assert kendall_tau(np.arange(100.0)) == 1.0
    assert kendall_tau(-np.arange(100.0)) == -1.0
    assert kendall_tau(np.full(10, 3.0)) == 0.0
    assert kendall_tau(np.array([1.0])) is None
    assert kendall_tau(np.array([np.nan, 2.0, np.nan, 3.0])) == 1.0  # NaNs are dropped


@pytest.mark.parametrize("m", [1, 2, 5, 33, 512, 513, 900])
def test_kendall_taus_of_rows_equal_kendall_tau_of_each_row(m: int) -> None:
    rng = np.random.default_rng(m)
    rows = rng.integers(0, max(2, m // 4), size=(7, m)).astype(float)
    rows[1] = np.nan  # nothing left
    rows[2, ::3] = np.nan  # some windows flat
    rows[3] = 5.0  # all tied
    rows[4] = np.arange(m)
    rows[5, 1:] = np.nan  # one value left
    assert kendall_taus(rows) == [kendall_tau(row) for row in rows]


def test_ews_entity_predicts_the_same_alone_and_in_any_chunk() -> None:
    rng = np.random.default_rng(5)
    entities = [
        Entity.create(f"e{i}", time_series=[float(x) for x in np.cumsum(rng.normal(size=n))])
        for i, n in enumerate([64, 64, 10, 300, 64, 6, 64, 10])
    ]
    entities.append(Entity.create("flat", time_series=[2.0] * 64))
    entities.append(Entity.create("short", time_series=[1.0, 2.0]))
    params = ews.parse_params({"detrend": True})
    together = ews.predict_batch(entities, params, EntityGraph())
    alone = [ews.predict_batch([e], params, EntityGraph())[0] for e in entities]
    assert together == alone  # bit for bit: a cached prediction does not depend on its chunk
    assert isinstance(together[-1], PredictionError)
    assert together[-2].value["autocorrelation"] is None  # type: ignore[union-attr]


@pytest.mark.parametrize("seed", range(10))
def test_ews_white_noise_has_no_trend_and_no_warning(seed: int) -> None:
    noise = np.random.default_rng(seed).normal(size=4000)
    got = value(noise, time_window=50)
    assert abs(got["variance_trend"]) < 0.25
    assert abs(got["autocorrelation_trend"]) < 0.25
    assert got["warning"] is False
    assert abs(got["autocorrelation"]) < 0.5
    assert got["critical_distance"] > 0.7  # rho < 0.5: far from the transition


@pytest.mark.parametrize("seed", range(5))
def test_ews_ar1_approaching_transition_warns(seed: int) -> None:
    # rho rises from 0.2 to 0.98: variance sigma^2 / (1 - rho^2) and autocorrelation both climb
    series = ar1(np.linspace(0.2, 0.98, 1000), seed)
    got = value(series)
    assert got["autocorrelation_trend"] > 0.5
    assert got["variance_trend"] > 0.5
    assert got["warning"] is True
    assert got["autocorrelation"] > 0.7
    assert got["critical_distance"] < 0.36  # -ln(0.7)
    assert got["windows"] == 501  # default window 500


def test_ews_ar1_stationary_is_far_from_transition() -> None:
    got = value(ar1(np.full(3000, 0.3), 1), time_window=300)
    assert got["autocorrelation"] == pytest.approx(0.3, abs=0.15)
    assert got["critical_distance"] == pytest.approx(-math.log(0.3), abs=0.6)


def test_ews_constant_series_has_no_autocorrelation_and_no_warning() -> None:
    got = value([5.0] * 30, time_window=10)
    assert got["variance"] == 0.0
    assert got["autocorrelation"] is None
    assert got["critical_distance"] is None
    assert got["variance_trend"] == 0.0
    assert got["autocorrelation_trend"] is None
    assert got["warning"] is False
    json.dumps(got, allow_nan=False)


def test_ews_straight_line_is_flat_once_detrended() -> None:
    line = [0.5 * k + 3 for k in range(30)]
    assert value(line, time_window=10)["variance"] == pytest.approx(0.0, abs=1e-12)
    assert value(line, time_window=10)["autocorrelation"] is None
    raw = value(line, time_window=10, detrend=False)
    assert raw["variance"] == pytest.approx(0.25 * np.var(np.arange(10), ddof=1))


@pytest.mark.parametrize(("n", "windows", "quality"), [(7, 4, 0.2), (10, 6, 0.3), (100, 51, 1.0)])
def test_ews_default_window_is_half_the_series_and_quality_counts_windows(
    n: int, windows: int, quality: float
) -> None:
    # default window max(4, n // 2): 7 -> 4, 10 -> 5, 100 -> 50
    outcome = predict(np.sin(np.arange(n)))
    assert isinstance(outcome, Prediction)
    assert outcome.value["windows"] == windows
    assert outcome.quality == pytest.approx(quality)


@pytest.mark.parametrize(
    ("series", "params", "code", "named"),
    [
        ([], {}, "missing_attribute", "time_series"),
        ([1.0, 2.0, 3.0, 4.0, 5.0], {}, "invalid_input", "needs at least 6"),
        (list(range(11)), {"time_window": 10}, "invalid_input", "needs at least 12"),
        ([1.0, 2.0, math.nan, 4.0, 5.0, 6.0, 7.0], {}, "invalid_input", "time_series[2]"),
        ([1.0, math.inf, 3.0, 4.0, 5.0, 6.0, 7.0], {}, "invalid_input", "time_series[1]"),
    ],
)
def test_ews_unusable_series_is_a_permanent_error_naming_it(
    series: list[float], params: dict[str, Any], code: str, named: str
) -> None:
    outcome = predict(series, **params)
    assert isinstance(outcome, PredictionError)
    assert (outcome.code, outcome.transient) == (code, False)
    assert named in outcome.message


def test_ews_batch_keeps_order_across_lengths_and_errors() -> None:
    rng = np.random.default_rng(0)
    targets = [
        Entity.create("long", time_series=list(rng.normal(size=500))),
        Entity.create("none"),
        Entity.create("short", time_series=[1.0, 2.0, 3.0]),
        Entity.create("mid", time_series=list(rng.normal(size=60))),
    ]
    outcomes = ews.predict_batch(targets, ews.parse_params({"time_window": 20}), EntityGraph())
    assert [type(o).__name__ for o in outcomes] == [
        "Prediction", "PredictionError", "PredictionError", "Prediction",
    ]  # fmt: skip
    assert [o.value["windows"] for o in outcomes if isinstance(o, Prediction)] == [481, 41]


def test_ews_longest_series_with_smallest_window_is_handled() -> None:
    series = np.random.default_rng(3).normal(size=10_000)
    got = value(series, time_window=4)
    assert got["windows"] == 9_997
    assert -1.0 <= got["autocorrelation_trend"] <= 1.0


@pytest.mark.parametrize(
    "params",
    [{"time_window": 3}, {"time_window": 10_001}, {"warning_tau": 1.5}, {"detrend": "maybe"}],
)
def test_ews_params_out_of_bounds_are_rejected(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        EwsParams.model_validate(params)
