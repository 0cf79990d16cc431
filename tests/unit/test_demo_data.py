"""The synthetic demo network (batchpredict_local.demo_data) and the demo's own checks."""

from __future__ import annotations

import json
import re
from collections import deque
from functools import cache
from typing import Any

import numpy as np
import pytest

from batchpredict.models import PutEntitiesRequest
from batchpredict_local.demo import JobRun, cascade_targets, check_run
from batchpredict_local.demo_data import SERIES_LENGTH, generate_network

ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


@cache
def network(n: int = 3000, seed: int = 42) -> list[dict[str, Any]]:
    return generate_network(n, seed)


def lag1(x: np.ndarray) -> float:
    d = x - x.mean()
    return float(d[:-1] @ d[1:] / (d @ d))


# ---------------------------------------------------------------- determinism


def test_generate_network_same_seed_same_network() -> None:
    assert generate_network(400, 7) == generate_network(400, 7)


def test_generate_network_different_seed_differs() -> None:
    a, b = generate_network(400, 7), generate_network(400, 8)

    assert [e["entity_id"] for e in a] == [e["entity_id"] for e in b]
    assert [e["neighbours"] for e in a] != [e["neighbours"] for e in b]
    assert [e["time_series"] for e in a] != [e["time_series"] for e in b]


def test_generate_network_ids_numbered_from_one() -> None:
    ids = [e["entity_id"] for e in network()]

    assert ids[:2] == ["actor-00001", "actor-00002"]
    assert ids[-1] == "actor-03000"
    assert len(set(ids)) == 3000


# ---------------------------------------------------------------- graph


def test_neighbours_symmetric_same_weight_no_self_or_duplicate_ties() -> None:
    entities = network()
    weights = {
        (e["entity_id"], n["entity_id"]): n["weight"] for e in entities for n in e["neighbours"]
    }

    for e in entities:
        targets = [n["entity_id"] for n in e["neighbours"]]
        assert e["entity_id"] not in targets
        assert len(targets) == len(set(targets))
    for (a, b), weight in weights.items():
        assert weights.get((b, a)) == weight, f"{a} -> {b} has no matching {b} -> {a}"


def test_degree_distribution_sane_and_network_connected() -> None:
    entities = network()
    degrees = np.array([len(e["neighbours"]) for e in entities])

    assert degrees.min() >= 2
    assert 5 <= degrees.mean() <= 10
    assert 15 <= degrees.max() <= 60  # a few influencers, no giant hub
    by_id = {e["entity_id"]: e for e in entities}
    seen = {entities[0]["entity_id"]}
    queue = deque(seen)
    while queue:
        for n in by_id[queue.popleft()]["neighbours"]:
            if n["entity_id"] not in seen:
                seen.add(n["entity_id"])
                queue.append(n["entity_id"])
    assert len(seen) == len(entities)


def test_communities_20_to_60_with_most_ties_inside() -> None:
    entities = network()
    community = {e["entity_id"]: e["attributes"]["community"] for e in entities}
    sizes = np.unique(list(community.values()), return_counts=True)[1]
    inside = [
        community[e["entity_id"]] == community[n["entity_id"]]
        for e in entities
        for n in e["neighbours"]
    ]

    assert int(np.min(sizes)) >= 20
    assert int(np.max(sizes)) <= 60
    assert np.mean(inside) > 0.85


def test_couplings_mostly_positive_some_negative() -> None:
    weights = np.array([n["weight"] for e in network() for n in e["neighbours"]])

    assert 0.01 <= np.mean(weights < 0) <= 0.06
    assert np.median(weights) > 0.3


# ---------------------------------------------------------------- attributes


def test_spins_aligned_within_communities() -> None:
    entities = network()
    spin = {e["entity_id"]: e["attributes"]["spin"] for e in entities}
    aligned = [
        spin[e["entity_id"]] == spin[n["entity_id"]] for e in entities for n in e["neighbours"]
    ]

    assert set(spin.values()) == {-1, 1}
    assert np.mean(aligned) > 0.65  # independent spins would give about 0.5


def test_thresholds_beta_around_0_3_and_about_one_percent_seeds() -> None:
    entities = network()
    thresholds = np.array([e["attributes"]["threshold"] for e in entities])
    seeds = sum(e["attributes"]["adopted"] for e in entities)

    assert ((thresholds > 0) & (thresholds < 1)).all()
    assert 0.27 <= thresholds.mean() <= 0.33
    assert 0.005 <= seeds / len(entities) <= 0.015


def test_fields_small() -> None:
    fields = np.array([e["attributes"]["field"] for e in network()])

    assert np.abs(fields).max() < 0.5


# ---------------------------------------------------------------- time series


def test_series_120_finite_points_each() -> None:
    for e in network():
        assert len(e["time_series"]) == SERIES_LENGTH
        assert np.isfinite(e["time_series"]).all()


def test_about_ten_percent_near_transition() -> None:
    share = np.mean([e["attributes"]["near_transition"] for e in network()])

    assert 0.08 <= share <= 0.12


def test_near_transition_series_show_critical_slowing_down() -> None:
    near: list[tuple[float, float]] = []
    stable: list[tuple[float, float]] = []
    for e in network():
        x = np.asarray(e["time_series"])
        late, early = x[60:], x[:60]
        signal = (float(lag1(late)), float(late.var() / early.var()))
        (near if e["attributes"]["near_transition"] else stable).append(signal)
    near_a, stable_a = np.array(near), np.array(stable)

    # late autocorrelation: rising towards 0.98 vs a constant 0.3-0.6
    assert near_a[:, 0].mean() > 0.75
    assert stable_a[:, 0].mean() < 0.55
    # variance grows over the series only near a transition
    assert np.median(near_a[:, 1]) > 2.0
    assert 0.7 < np.median(stable_a[:, 1]) < 1.4


# ---------------------------------------------------------------- API limits


def test_network_json_serialisable_and_valid_for_put_entities() -> None:
    entities = network()
    text = json.dumps(entities, allow_nan=False)

    assert json.loads(text) == entities
    for start in range(0, len(entities), 1000):
        PutEntitiesRequest.model_validate({"entities": entities[start : start + 1000]})
    for e in entities:
        assert ID.match(e["entity_id"])
        assert len(e["neighbours"]) <= 1000
        assert len(e["time_series"]) <= 10_000
        assert len(e["attributes"]) <= 64
        assert all(ID.match(n["entity_id"]) for n in e["neighbours"])


@pytest.mark.parametrize("n", [1, 2, 19, 61, 125])
def test_small_networks_valid(n: int) -> None:
    entities = generate_network(n, 1)

    assert len(entities) == n
    PutEntitiesRequest.model_validate({"entities": entities})
    ids = {e["entity_id"] for e in entities}
    assert all(nb["entity_id"] in ids for e in entities for nb in e["neighbours"])
    assert sum(e["attributes"]["adopted"] for e in entities) >= 1


def test_zero_entities_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        generate_network(0)


# ---------------------------------------------------------------- the demo's choices and checks


def test_cascade_targets_half_with_only_non_negative_ties_deterministic() -> None:
    entities = network()
    by_id = {e["entity_id"]: e for e in entities}

    targets = cascade_targets(entities, 42)

    assert len(targets) == 1500
    assert targets == sorted(set(targets))
    assert all(n["weight"] >= 0 for t in targets for n in by_id[t]["neighbours"])
    assert cascade_targets(entities, 42) == targets
    # spread over the network, not the first half of it
    assert len({by_id[t]["attributes"]["community"] for t in targets}) > 60


def finished_run(ids: list[str], **overrides: Any) -> JobRun:
    rows = [
        {"entity_id": e, "status": "succeeded", "prediction": {"p": 0.1}, "cached": False}
        for e in ids
    ]
    counts = {"total": len(ids), "succeeded": len(ids), "failed": 0, "cancelled": 0,
              "cached": 0, "pending": 0}  # fmt: skip
    final = {"job_id": "j-1", "status": "COMPLETED", "counts": counts}
    run = JobRun("ising", "ising", ids, {"job_id": "j-1"}, final, rows)
    for key, value in overrides.items():
        setattr(run, key, value)
    return run


def test_check_run_exact_job_has_no_problems() -> None:
    assert check_run(finished_run(["a", "b", "c"])) == []


def test_check_run_duplicate_and_missing_rows_reported() -> None:
    run = finished_run(["a", "b", "c"])
    run.rows = [run.rows[0], run.rows[0], run.rows[1]]

    problems = check_run(run)

    assert any("3 result rows for 3 entities (1 duplicated, 1 missing)" in p for p in problems)


def test_check_run_counts_not_adding_up_reported() -> None:
    run = finished_run(["a", "b"])
    run.final["counts"]["succeeded"] = 1
    run.final["counts"]["pending"] = 1

    problems = check_run(run)

    assert any("counts do not add up" in p for p in problems)
    assert any("2 succeeded rows, but the job counts 1" in p for p in problems)


def test_check_run_not_completed_reported() -> None:
    run = finished_run(["a"])
    run.final["status"] = "COMPLETED_WITH_ERRORS"

    assert check_run(run) == ["status is COMPLETED_WITH_ERRORS, not COMPLETED"]


def test_check_run_resubmission_must_be_fully_cached() -> None:
    run = finished_run(["a", "b"])
    run.rows[0]["cached"] = True
    run.final["counts"]["cached"] = 1

    assert check_run(run) == []
    assert check_run(run, expect_cached=True) == ["only 1 of 2 items came from the cache"]
