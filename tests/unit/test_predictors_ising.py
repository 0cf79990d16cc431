"""The ising predictor against hand-computed Glauber dynamics."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from batchpredict.entities import Entity, Neighbour
from batchpredict.predictors import EntityGraph, Prediction, PredictionError, get_predictor
from batchpredict.predictors.ising import IsingParams

ising = get_predictor("ising")


def entity(entity_id: str, neighbours: dict[str, float] | None = None, **attributes: Any) -> Entity:
    return Entity.create(
        entity_id, attributes, [Neighbour(i, w) for i, w in (neighbours or {}).items()]
    )


def run(targets: list[Entity], others: list[Entity] | None = None, **params: Any) -> list[Any]:
    graph = EntityGraph({e.entity_id: e for e in [*targets, *(others or [])]})
    return ising.predict_batch(targets, ising.parse_params(params), graph)


def value(outcome: Any) -> dict[str, Any]:
    assert isinstance(outcome, Prediction), outcome
    return dict(outcome.value)


def test_ising_two_neighbours_and_field_matches_hand_computation() -> None:
    # h = J_ab s_b + J_ac s_c + H = 1.0 * 1 + 0.5 * (-1) + 0.25 = 0.75
    # a = (1 - s tanh(h / T)) / 2 with s = 1, T = 2: (1 - tanh(0.375)) / 2
    # p = a (1 - e^-t), t = 0.5; E[s(t)] = s (1 - 2p)
    a = entity("a", {"b": 1.0, "c": 0.5}, spin=1, field=0.25)
    b, c = entity("b", spin=1), entity("c", spin=-1)
    [outcome] = run([a], [b, c], temperature=2.0, time_horizon=0.5)
    rate = (1 - math.tanh(0.375)) / 2  # (1 - 0.358357) / 2 = 0.320821
    p = rate * (1 - math.exp(-0.5))  # 0.320821 * 0.393469 = 0.126233
    got = value(outcome)
    assert got["local_field"] == pytest.approx(0.75)
    assert got["flip_rate"] == pytest.approx(rate)
    assert got["spin_flip_probability"] == pytest.approx(p)
    assert got["spin_flip_probability"] == pytest.approx(0.126233, abs=1e-6)
    assert got["expected_spin"] == pytest.approx(1 - 2 * p)
    assert got["spin"] == 1
    assert outcome.quality == 1.0


def test_ising_down_spin_against_field_flips_more_likely() -> None:
    # s = -1, h = +2 (one neighbour up, J = 2), T = 1: a = (1 + tanh 2) / 2 = 0.98201...
    a = entity("a", {"b": 2.0}, spin=-1)
    [outcome] = run([a], [entity("b", spin=1)])
    rate = (1 + math.tanh(2.0)) / 2
    assert value(outcome)["flip_rate"] == pytest.approx(rate)
    assert value(outcome)["spin_flip_probability"] == pytest.approx(rate * (1 - math.exp(-1)))
    assert value(outcome)["expected_spin"] == pytest.approx(-(1 - 2 * rate * (1 - math.exp(-1))))


def test_ising_very_high_temperature_gives_half_of_relaxation() -> None:
    # tanh(h / T) -> 0, so a -> 1/2 and p -> (1 - e^-t) / 2 = (1 - e^-3) / 2 = 0.47511...
    a = entity("a", {"b": 5.0}, spin=1, field=3.0)
    [outcome] = run([a], [entity("b", spin=1)], temperature=1e9, time_horizon=3.0)
    assert value(outcome)["spin_flip_probability"] == pytest.approx(
        (1 - math.exp(-3)) / 2, rel=1e-6
    )


def test_ising_strong_aligned_field_gives_no_flip() -> None:
    # s = 1, h = 50, T = 1: a = (1 - tanh 50) / 2 ~ e^-100, so p ~ 0 and E[s] ~ 1
    [outcome] = run([entity("a", spin=1, field=50.0)], time_horizon=10.0)
    got = value(outcome)
    assert got["spin_flip_probability"] == pytest.approx(0.0, abs=1e-12)
    assert got["expected_spin"] == pytest.approx(1.0)


def test_ising_zero_temperature_limit_is_deterministic() -> None:
    # T -> 0: a is 0 for an aligned spin and 1 for an anti-aligned one
    aligned, against = entity("a", spin=1, field=0.1), entity("b", spin=1, field=-0.1)
    outcomes = run([aligned, against], temperature=1e-9, time_horizon=1.0)
    assert value(outcomes[0])["spin_flip_probability"] == 0.0
    assert value(outcomes[1])["spin_flip_probability"] == pytest.approx(1 - math.exp(-1))


def test_ising_missing_neighbour_counts_as_zero_spin_and_lowers_quality() -> None:
    # b (J = 1, spin -1) known; c (J = 3) not stored; d (J = -1) stored without a spin.
    # h = 1 * (-1) + 0 + 0 = -1; quality = |1| / (|1| + |3| + |-1|) = 0.2
    a = entity("a", {"b": 1.0, "c": 3.0, "d": -1.0}, spin=1)
    [outcome] = run([a], [entity("b", spin=-1), entity("d", colour="red")])
    assert value(outcome)["local_field"] == pytest.approx(-1.0)
    assert value(outcome)["flip_rate"] == pytest.approx((1 + math.tanh(1.0)) / 2)
    assert outcome.quality == pytest.approx(0.2)


def test_ising_no_neighbours_has_full_quality() -> None:
    [outcome] = run([entity("a", spin=-1)])
    assert value(outcome)["flip_rate"] == 0.5
    assert outcome.quality == 1.0


def test_ising_neighbour_that_is_another_target_reads_its_spin() -> None:
    a, b = entity("a", {"b": 1.0}, spin=1), entity("b", {"a": 1.0}, spin=1)
    outcomes = run([a, b])
    assert [value(o)["local_field"] for o in outcomes] == [1.0, 1.0]


@pytest.mark.parametrize(
    ("attributes", "code"),
    [
        ({}, "missing_attribute"),
        ({"spin": None}, "missing_attribute"),
        ({"spin": 0}, "invalid_input"),
        ({"spin": True}, "invalid_input"),
        ({"spin": "up"}, "invalid_input"),
        ({"spin": 1, "field": "strong"}, "invalid_input"),
        ({"spin": 1, "field": math.inf}, "invalid_input"),
    ],
)
def test_ising_bad_spin_or_field_is_a_permanent_error_naming_it(
    attributes: dict[str, Any], code: str
) -> None:
    [outcome] = run([Entity.create("a", attributes)])
    assert isinstance(outcome, PredictionError)
    assert outcome.code == code
    assert not outcome.transient
    assert ("field" if "field" in attributes else "spin") in outcome.message


def test_ising_non_finite_coupling_is_invalid_input() -> None:
    [outcome] = run([entity("a", {"b": math.nan}, spin=1)], [entity("b", spin=1)])
    assert isinstance(outcome, PredictionError)
    assert outcome.code == "invalid_input"
    assert "neighbours[0].weight" in outcome.message


def test_ising_batch_is_vectorised_in_order_with_errors_in_place() -> None:
    targets = [entity(f"e{i}", {f"e{(i + 1) % 50}": 1.0}, spin=(-1) ** i) for i in range(50)]
    targets[7] = Entity.create("e7", {"spin": 3})
    outcomes = run(targets)
    assert len(outcomes) == 50
    assert isinstance(outcomes[7], PredictionError)
    for i, outcome in enumerate(outcomes):
        if i == 7:
            continue
        neighbour_spin = 0 if (i + 1) % 50 == 7 else (-1) ** (i + 1)
        assert value(outcome)["spin"] == (-1) ** i
        assert value(outcome)["local_field"] == neighbour_spin


@pytest.mark.parametrize(
    "params",
    [{"temperature": 0}, {"temperature": -1}, {"time_horizon": 0}, {"temperature": math.nan}],
)
def test_ising_params_out_of_bounds_are_rejected(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        IsingParams.model_validate(params)


def test_ising_predictor_reads_one_hop() -> None:
    a = entity("a", {"b": 1.0}, spin=1)
    b = entity("b", {"c": 1.0}, spin=1)
    graph = EntityGraph({"a": a, "b": b, "c": entity("c", spin=1)})
    params = ising.parse_params({})
    assert ising.neighbour_hops(params) == 1
    assert list(ising.input_ids(a, graph, params)) == ["a", "b"]
