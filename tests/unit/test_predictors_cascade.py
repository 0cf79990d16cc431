"""The cascade predictor on hand-drawn graphs: chains, stars, thresholds at the edge."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
from statistics import NormalDist
from typing import Any

import pytest
from pydantic import ValidationError

from batchpredict.entities import Entity, Neighbour
from batchpredict.predictors import EntityGraph, Prediction, PredictionError, get_predictor
from batchpredict.predictors.cascade import CascadeParams, ThresholdDistribution, unit_hash

cascade = get_predictor("cascade")


def entity(entity_id: str, neighbours: Any = (), **attributes: Any) -> Entity:
    """neighbours: ids (weight 1) or a {id: weight} mapping."""
    pairs = neighbours.items() if isinstance(neighbours, dict) else ((i, 1.0) for i in neighbours)
    return Entity.create(entity_id, attributes, [Neighbour(i, w) for i, w in pairs])


def run(
    targets: list[Entity], others: list[Entity] | None = None, **params: Any
) -> list[dict[str, Any]]:
    """The values, asserting every outcome is a Prediction with a quality in [0, 1]."""
    outcomes = predict(targets, others, **params)
    for outcome in outcomes:
        assert isinstance(outcome, Prediction), outcome
        assert outcome.quality is not None
        assert 0.0 <= outcome.quality <= 1.0
    return [dict(o.value) for o in outcomes if isinstance(o, Prediction)]


def predict(targets: list[Entity], others: list[Entity] | None = None, **params: Any) -> list[Any]:
    graph = EntityGraph({e.entity_id: e for e in [*targets, *(others or [])]})
    return cascade.predict_batch(targets, cascade.parse_params(params), graph)


def chain(n: int, threshold: float = 0.5) -> list[Entity]:
    """c0 - c1 - ... - c(n-1), both directions, c0 adopted: each node sees 1 of its 2 sides."""
    out = []
    for i in range(n):
        sides = [f"c{j}" for j in (i - 1, i + 1) if 0 <= j < n]
        attrs: dict[str, Any] = {"adopted": True} if i == 0 else {"threshold": threshold}
        out.append(entity(f"c{i}", sides, **attrs))
    return out


def test_cascade_chain_adopts_one_generation_per_hop() -> None:
    # c1 sees c0 of {c0, c2}: share 1/2 >= 0.5 at generation 1; c2 at 2, c3 at 3 (its only
    # neighbour c2, share 1).
    values = run(chain(4), max_generations=5)
    assert [v["adoption_generation"] for v in values] == [0, 1, 2, 3]
    assert [v["seed"] for v in values] == [True, False, False, False]
    assert all(v["adopted"] for v in values)
    assert all(v["generations_run"] == 5 for v in values)


def test_cascade_max_generations_cuts_the_chain_off() -> None:
    values = run(chain(6), max_generations=2)
    assert [v["adopted"] for v in values] == [True, True, True, False, False, False]
    assert [v["adoption_generation"] for v in values] == [0, 1, 2, None, None, None]
    # the share each node's generation-2 decision used: the state after generation 1
    # c0: {c1} adopted -> 1; c1: {c0} of {c0, c2} -> 1/2; c2: {c1} of {c1, c3} -> 1/2; c3: 0
    assert [v["adopted_neighbour_share"] for v in values[:4]] == [1.0, 0.5, 0.5, 0.0]


def test_cascade_threshold_above_chain_share_stops_at_the_seed() -> None:
    values = run(chain(4, threshold=0.51))
    assert [v["adopted"] for v in values] == [True, False, False, False]


def star(center_threshold: float) -> list[Entity]:
    """A hub with five leaves; leaves l0, l1 adopted (weight 1 each); l2..l4 threshold 0.5."""
    leaves = [f"l{i}" for i in range(5)]
    hub = entity("hub", leaves, threshold=center_threshold)
    out = [hub]
    for i, leaf in enumerate(leaves):
        attrs: dict[str, Any] = {"adopted": True} if i < 2 else {"threshold": 0.5}
        out.append(entity(leaf, ["hub"], **attrs))
    return out


@pytest.mark.parametrize(
    ("hub_threshold", "hub_adopts"),
    [(0.39, True), (0.4, True), (0.41, False)],
)
def test_cascade_star_hub_adopts_exactly_when_share_reaches_threshold(
    hub_threshold: float, hub_adopts: bool
) -> None:
    # hub share at generation 1 = 2 adopted leaves / 5 = 0.4; then every leaf sees share 1
    values = run(star(hub_threshold), max_generations=3)
    hub, leaves = values[0], values[1:]
    assert hub["adopted"] is hub_adopts
    if hub_adopts:
        assert hub["adoption_generation"] == 1
        assert [v["adoption_generation"] for v in leaves] == [0, 0, 2, 2, 2]
        assert hub["adopted_neighbour_share"] == 1.0  # after generation 2: every leaf
    else:
        assert [v["adopted"] for v in leaves] == [True, True, False, False, False]
        assert hub["adopted_neighbour_share"] == 0.4  # a fixed point from generation 0


def test_cascade_share_equal_to_threshold_on_paper_adopts_despite_rounding() -> None:
    # adopted weight 0.1 + 0.2 = 0.30000000000000004 in floats, total 0.1 + 0.2 + 0.3:
    # share 0.5 on paper, threshold 0.5
    target = entity("t", {"a": 0.1, "b": 0.2, "c": 0.3}, threshold=0.5)
    others = [entity("a", adopted=True), entity("b", adopted=True), entity("c")]
    [value] = run([target], others, max_generations=1)
    assert value["adopted"] is True


def test_cascade_weights_set_the_share() -> None:
    # adopted a weighs 3 of 3 + 1: share 0.75 >= 0.7
    target = entity("t", {"a": 3.0, "b": 1.0}, threshold=0.7)
    [value] = run([target], [entity("a", adopted=True), entity("b")], max_generations=1)
    assert value["adopted"] is True
    assert value["adopted_neighbour_share"] == pytest.approx(0.75)


def test_cascade_seed_by_parameter_starts_the_cascade() -> None:
    nodes = chain(3)
    nodes[0] = entity("c0", ["c1"], threshold=0.5)  # no longer adopted by attribute
    assert [v["adopted"] for v in run(nodes)] == [False, False, False]
    values = run(nodes, seed_entity_ids=["c0"])
    assert [v["adoption_generation"] for v in values] == [0, 1, 2]
    assert values[0]["seed"] is True


def test_cascade_unloaded_seed_by_parameter_counts_as_adopted() -> None:
    target = entity("t", ["ghost", "b"], threshold=0.5)
    [value] = run([target], [entity("b")], seed_entity_ids=["ghost"], max_generations=1)
    assert value["adopted"] is True
    assert value["adopted_neighbour_share"] == 0.5


def test_cascade_unloaded_neighbour_stays_in_the_denominator_and_lowers_quality() -> None:
    # s adopted (weight 1), ghost not stored (weight 3): share 1/4, quality 1/4
    target = entity("t", {"s": 1.0, "ghost": 3.0}, threshold=0.25)
    [outcome] = predict([target], [entity("s", adopted=True)], max_generations=1)
    assert isinstance(outcome, Prediction)
    assert outcome.value["adopted"] is True
    assert outcome.value["adopted_neighbour_share"] == 0.25
    assert outcome.quality == 0.25


def test_cascade_edges_are_directed_out_of_the_entity() -> None:
    # x lists s as a neighbour; s lists nobody: s influences x, x never influences s
    s = entity("s", ["x"], threshold=0.1)
    x = entity("x", ["s"], adopted=True)
    y = entity("y", ["s"], threshold=0.1)
    values = run([s, y], [x])
    assert values[0]["adopted"] is True  # s sees x
    assert values[1]["adoption_generation"] == 2  # y sees s only once s has adopted


def test_cascade_zero_threshold_adopts_without_any_neighbour() -> None:
    [value] = run([entity("loner", threshold=0.0)], max_generations=1)
    assert value["adoption_generation"] == 1
    assert value["adopted_neighbour_share"] is None
    [value] = run([entity("loner", threshold=0.2)], max_generations=1)
    assert value["adopted"] is False


def test_unit_hash_is_sha256_of_the_id_mapped_into_the_open_unit_interval() -> None:
    k = int.from_bytes(hashlib.sha256(b"entity-42").digest()[:8], "big") >> 12
    assert unit_hash("entity-42") == (k + 0.5) / 2**52
    values = [unit_hash(f"e{i}") for i in range(2000)]
    assert all(0.0 < u < 1.0 for u in values)
    assert 0.45 < sum(values) / len(values) < 0.55


@pytest.mark.parametrize(
    ("distribution", "expected"),
    [
        ({"kind": "fixed", "value": 0.3}, lambda u: 0.3),
        ({"kind": "uniform", "low": 0.2, "high": 0.6}, lambda u: 0.2 + 0.4 * u),
        (
            {"kind": "normal", "mean": 0.5, "std": 0.15},
            lambda u: min(1.0, max(0.0, NormalDist(0.5, 0.15).inv_cdf(u))),
        ),
        ({"kind": "normal", "mean": 0.9, "std": 0.0}, lambda u: 0.9),
    ],
)
def test_cascade_drawn_threshold_is_inverse_cdf_at_the_id_hash(
    distribution: dict[str, Any], expected: Any
) -> None:
    targets = [entity(f"n{i}") for i in range(20)]
    values = run(targets, threshold_distribution=distribution, max_generations=1)
    again = run(list(reversed(targets)), threshold_distribution=distribution, max_generations=1)
    for target, value in zip(targets, values, strict=True):
        assert value["threshold"] == pytest.approx(expected(unit_hash(target.entity_id)))
        assert 0.0 <= value["threshold"] <= 1.0
    assert [v["threshold"] for v in values] == [v["threshold"] for v in reversed(again)]


def test_cascade_normal_thresholds_are_clipped_to_the_unit_interval() -> None:
    wide = ThresholdDistribution(kind="normal", mean=0.5, std=1.0)
    drawn = [wide.draw(f"x{i}") for i in range(500)]
    assert min(drawn) == 0.0
    assert max(drawn) == 1.0


def test_cascade_drawn_thresholds_are_the_same_in_another_process() -> None:
    code = (
        "import json; from batchpredict.predictors.cascade import ThresholdDistribution as T;"
        "d = T(kind='normal'); print(json.dumps([d.draw(f'id{i}') for i in range(50)]))"
    )
    here = [ThresholdDistribution(kind="normal").draw(f"id{i}") for i in range(50)]
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": ":".join(sys.path)},
        )
        assert json.loads(done.stdout) == here


def test_cascade_attribute_threshold_wins_over_the_distribution() -> None:
    [value] = run(
        [entity("a", threshold=0.8)], threshold_distribution={"kind": "fixed", "value": 0.1}
    )
    assert value["threshold"] == 0.8


@pytest.mark.parametrize(
    ("target", "code", "named"),
    [
        (entity("t", threshold=1.5), "invalid_input", "threshold"),
        (entity("t", threshold="high"), "invalid_input", "threshold"),
        (entity("t", threshold=True), "invalid_input", "threshold"),
        (entity("t", adopted="yes"), "invalid_input", "adopted"),
        (entity("t", adopted=2), "invalid_input", "adopted"),
        (entity("t", {"a": -1.0}), "invalid_input", "neighbours[0].weight"),
    ],
)
def test_cascade_bad_target_input_is_a_permanent_error_naming_it(
    target: Entity, code: str, named: str
) -> None:
    [outcome] = predict([target], [entity("a")])
    assert isinstance(outcome, PredictionError)
    assert (outcome.code, outcome.transient) == (code, False)
    assert named in outcome.message


def test_cascade_neighbour_with_bad_threshold_never_adopts_but_others_proceed() -> None:
    bad = entity("bad", ["s"], threshold=7)
    good = entity("good", ["s"], threshold=0.5)
    values = run([good], [bad, entity("s", adopted=True)])
    assert values[0]["adopted"] is True
    outcomes = predict([bad, good], [entity("s", adopted=True)])
    assert isinstance(outcomes[0], PredictionError)
    assert isinstance(outcomes[1], Prediction)


def random_graph(n: int, rng: random.Random) -> dict[str, Entity]:
    out = {}
    for i in range(n):
        targets = rng.sample(range(n + 20), rng.randint(0, 5))  # ids >= n are never stored
        attrs: dict[str, Any] = {}
        if rng.random() < 0.15:
            attrs["adopted"] = True
        if rng.random() < 0.7:
            attrs["threshold"] = rng.choice([0.0, 0.2, 1 / 3, 0.5, 0.7, 1.0])
        out[f"r{i}"] = entity(
            f"r{i}", {f"r{j}": rng.choice([0.5, 1.0, 2.0]) for j in targets}, **attrs
        )
    return out


@pytest.mark.parametrize("generations", [1, 2, 4])
def test_cascade_target_with_its_ball_loaded_matches_the_whole_graph(generations: int) -> None:
    rng = random.Random(generations)
    full = random_graph(150, rng)
    params = cascade.parse_params(
        {"max_generations": generations, "threshold_distribution": {"kind": "uniform"}}
    )
    targets = [full[f"r{i}"] for i in range(0, 150, 7)]
    everything = cascade.predict_batch(targets, params, EntityGraph(full))
    for target, expected in zip(targets, everything, strict=True):
        # what the worker loads for this target alone: its max_generations-hop ball
        ball = cascade.input_ids(target, EntityGraph(full), params)
        loaded = EntityGraph({i: full[i] for i in ball if i in full})
        [alone] = cascade.predict_batch([target], params, loaded)
        assert isinstance(alone, Prediction)
        assert isinstance(expected, Prediction)
        assert alone.value == expected.value


def test_cascade_predictor_reads_max_generations_hops() -> None:
    nodes = {e.entity_id: e for e in chain(6)}
    params = cascade.parse_params({"max_generations": 2})
    assert cascade.neighbour_hops(params) == 2
    assert list(cascade.input_ids(nodes["c0"], EntityGraph(nodes), params)) == ["c0", "c1", "c2"]


@pytest.mark.parametrize(
    "params",
    [
        {"max_generations": 0},
        {"max_generations": 51},
        {"seed_entity_ids": [f"s{i}" for i in range(1001)]},
        {"seed_entity_ids": [""]},
        {"threshold_distribution": {"kind": "lognormal"}},
        {"threshold_distribution": {"kind": "uniform", "low": 0.8, "high": 0.2}},
        {"threshold_distribution": {"kind": "fixed", "value": 1.2}},
        {"threshold_distribution": {"kind": "normal", "sigma": 0.1}},
    ],
)
def test_cascade_params_out_of_bounds_are_rejected(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CascadeParams.model_validate(params)
