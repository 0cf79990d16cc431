"""The registry and the contract every built-in predictor keeps."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from pydantic import ValidationError

from batchpredict.entities import Entity, Neighbour
from batchpredict.predictors import (
    EntityGraph,
    Prediction,
    PredictionError,
    Predictor,
    PredictorParams,
    UnknownPredictionTypeError,
    get_predictor,
    prediction_types,
    register,
)
from tests.support.data import ring_entities

BUILT_IN = ["cascade", "ews", "ising"]
TTL = {"ising": 3600, "cascade": 1800, "ews": 900}


def good(entity_id: str, neighbours: list[str]) -> Entity:
    return Entity.create(
        entity_id,
        {"spin": 1, "threshold": 0.4, "adopted": entity_id.endswith("0")},
        [Neighbour(n, 1.0) for n in neighbours],
        [math.sin(k / 3) + 0.01 * k for k in range(40)],
    )


BAD = {
    "ising": Entity.create("bad", {"threshold": 0.2}, time_series=[1.0] * 40),
    "cascade": Entity.create("bad", {"spin": 1, "threshold": 2.0}, time_series=[1.0] * 40),
    "ews": Entity.create("bad", {"spin": 1, "threshold": 0.2}, time_series=[1.0, 2.0]),
}


def test_registry_lists_the_three_built_in_predictors() -> None:
    assert set(BUILT_IN) <= set(prediction_types())
    for name in BUILT_IN:
        predictor = get_predictor(name)
        assert predictor.prediction_type == name
        assert predictor.version == "1"
        assert predictor.cache_ttl_seconds == TTL[name]
        assert predictor.description
        assert issubclass(predictor.params_model, PredictorParams)


def test_registry_unknown_type_raises_unknown_prediction_type_error() -> None:
    with pytest.raises(UnknownPredictionTypeError) as raised:
        get_predictor("tarot")
    assert raised.value.prediction_type == "tarot"
    assert isinstance(raised.value, LookupError)


def test_registry_same_type_registered_twice_is_refused() -> None:
    class Again(Predictor[PredictorParams]):
        prediction_type = "ising"
        version = "9"
        params_model = PredictorParams
        cache_ttl_seconds = 1

    with pytest.raises(ValueError, match="registered twice"):
        register(Again)
    assert get_predictor("ising").version == "1"


@pytest.mark.parametrize("name", BUILT_IN)
def test_predictor_unknown_parameter_is_rejected(name: str) -> None:
    with pytest.raises(ValidationError) as raised:
        get_predictor(name).parse_params({"temprature": 2.0})
    assert raised.value.errors()[0]["type"] == "extra_forbidden"


@pytest.mark.parametrize("name", BUILT_IN)
def test_predictor_no_parameters_means_the_defaults(name: str) -> None:
    predictor = get_predictor(name)
    assert predictor.parse_params(None) == predictor.parse_params({})


@pytest.mark.parametrize("name", BUILT_IN)
def test_predictor_parameters_are_documented(name: str) -> None:
    schema = get_predictor(name).params_model.model_json_schema()
    assert schema["additionalProperties"] is False
    assert all(field.get("description") for field in schema["properties"].values())


@pytest.mark.parametrize("name", BUILT_IN)
def test_predictor_mixed_batch_gives_one_outcome_per_target_in_order(name: str) -> None:
    predictor = get_predictor(name)
    ids = [f"m{i}" for i in range(6)]
    goods = {i: good(i, [ids[(k + 1) % 6], "missing"]) for k, i in enumerate(ids)}
    targets = [goods["m0"], BAD[name], goods["m1"], goods["m2"], BAD[name], goods["m3"]]
    graph = EntityGraph({**goods, "bad": BAD[name]})
    outcomes = predictor.predict_batch(targets, predictor.parse_params({}), graph)
    assert [type(o) for o in outcomes] == [
        Prediction, PredictionError, Prediction, Prediction, PredictionError, Prediction,
    ]  # fmt: skip
    for outcome in outcomes:
        if isinstance(outcome, PredictionError):
            assert outcome.code in {"missing_attribute", "invalid_input"}
            assert not outcome.transient
    # the same targets one at a time give the same predictions: nothing leaks between rows
    for target, outcome in zip(targets, outcomes, strict=True):
        [alone] = predictor.predict_batch([target], predictor.parse_params({}), graph)
        assert alone == outcome


def json_plain(value: Any) -> bool:
    """Only the types json produces back: no numpy scalars, no NaN or infinities."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and json_plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(json_plain(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or type(value) in (bool, int, str)


@pytest.mark.parametrize("name", BUILT_IN)
@pytest.mark.parametrize("params", [{}, "edge"])
def test_predictor_values_round_trip_through_json(name: str, params: Any) -> None:
    predictor = get_predictor(name)
    raw = ring_entities(60)
    entities = {
        e["entity_id"]: Entity.create(
            e["entity_id"],
            e["attributes"],
            [Neighbour(n["entity_id"], n["weight"]) for n in e["neighbours"]],
            e["time_series"],
        )
        for e in raw
    }
    edge: dict[str, dict[str, Any]] = {
        "ising": {"temperature": 1e-9, "time_horizon": 1e9},
        "cascade": {"max_generations": 50, "threshold_distribution": {"kind": "normal"}},
        "ews": {"time_window": 4, "detrend": False},
    }
    chosen = predictor.parse_params(edge[name] if params == "edge" else {})
    flat = Entity.create("flat", {"spin": -1}, (), [2.0] * 12)
    targets = [*list(entities.values())[:30], flat]
    outcomes = predictor.predict_batch(targets, chosen, EntityGraph(entities))
    predictions = [o for o in outcomes if isinstance(o, Prediction)]
    assert len(predictions) >= 30
    for prediction in predictions:
        value = dict(prediction.value)
        assert json_plain(value), value
        assert json.loads(json.dumps(value, allow_nan=False)) == value
        assert prediction.quality is not None
        assert type(prediction.quality) is float
        assert 0.0 <= prediction.quality <= 1.0
