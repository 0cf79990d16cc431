"""A batch job end to end under moto: submit, fan out, work, count, page through results."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tests.support.data import ids
from tests.support.pipeline import TENANT_A, TENANT_B, Pipeline

PARAMS = {
    "ising": {"temperature": 2.0, "time_horizon": 1.0},
    "cascade": {"max_generations": 2},
    "ews": {"time_window": 10},
}


def all_results(
    pipeline: Pipeline, job_id: str, limit: int = 100, **query: Any
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    token = None
    while True:
        response = pipeline.api(
            "GET",
            f"/v1/jobs/{job_id}/results",
            query={"limit": limit, "next_token": token, **query},
        )
        assert response.status == 200, response
        rows.extend(response.body["items"])
        token = response.body["next_token"]
        if not token:
            return rows


@pytest.mark.parametrize("prediction_type", ["ising", "cascade", "ews"])
@pytest.mark.parametrize("size", [1, 25, 26, 1000])
def test_job_of_any_size_completes_with_exact_counts(
    pipeline: Pipeline, entities_1000: list[dict[str, Any]], prediction_type: str, size: int
) -> None:
    entity_ids = ids(entities_1000)[:size]
    submitted = pipeline.submit(
        prediction_type=prediction_type, entity_ids=entity_ids, parameters=PARAMS[prediction_type]
    )
    assert submitted.status == 202, submitted
    assert submitted.body["status"] == "QUEUED"
    assert submitted.body["total_items"] == size
    job_id = submitted.body["job_id"]

    pipeline.drain()

    status = pipeline.api("GET", f"/v1/jobs/{job_id}").body
    assert status["status"] == "COMPLETED"
    assert status["counts"] == {
        "total": size, "succeeded": size, "failed": 0, "cancelled": 0, "cached": 0, "pending": 0,
    }  # fmt: skip
    assert status["progress"] == 1.0
    rows = all_results(pipeline, job_id, limit=97)
    assert [r["entity_id"] for r in rows] == entity_ids  # chunk order, no gaps, no repeats
    assert all(r["status"] == "succeeded" and r["prediction"] for r in rows)


def test_ising_results_carry_the_predictors_values(
    pipeline: Pipeline, entities_1000: list[dict[str, Any]]
) -> None:
    from batchpredict.entities import Entity, Neighbour
    from batchpredict.predictors import EntityGraph, Prediction, get_predictor

    job_id = pipeline.submit(
        prediction_type="ising", entity_ids=ids(entities_1000)[:30], parameters=PARAMS["ising"]
    ).body["job_id"]
    pipeline.drain()
    rows = {r["entity_id"]: r for r in all_results(pipeline, job_id)}

    predictor = get_predictor("ising")
    graph = EntityGraph(
        {
            e["entity_id"]: Entity.create(
                e["entity_id"],
                e["attributes"],
                [Neighbour(n["entity_id"], n["weight"]) for n in e["neighbours"]],
                e["time_series"],
            )
            for e in entities_1000
        }
    )
    targets = [graph.entities[i] for i in rows]
    expected = predictor.predict_batch(targets, predictor.parse_params(PARAMS["ising"]), graph)
    for target, outcome in zip(targets, expected, strict=True):
        assert isinstance(outcome, Prediction)
        assert rows[target.entity_id]["prediction"] == pytest.approx(dict(outcome.value))


def test_every_chunk_delivered_twice_and_shuffled_counts_once(
    pipeline: Pipeline, entities_1000: list[dict[str, Any]]
) -> None:
    entity_ids = ids(entities_1000)[:260]
    job_id = pipeline.submit(prediction_type="ising", entity_ids=entity_ids).body["job_id"]

    messages = []
    while batch := pipeline.receive(pipeline.work_queue_url, 10):
        messages.extend(batch)
    deliveries = messages * 2
    random.Random(3).shuffle(deliveries)
    for start in range(0, len(deliveries), 7):
        group = deliveries[start : start + 7]
        unique = list({m["MessageId"]: m for m in group}.values())
        for message in unique:
            pipeline.deliver(
                "worker", pipeline.work_queue_url, [message], pipeline.worker_context()
            )

    status = pipeline.api("GET", f"/v1/jobs/{job_id}").body
    assert status["status"] == "COMPLETED"
    assert status["counts"]["succeeded"] == 260
    assert status["counts"]["pending"] == 0
    rows = all_results(pipeline, job_id)
    assert sorted(r["entity_id"] for r in rows) == sorted(entity_ids)


def test_other_tenant_gets_404_on_job_results_and_cancel(
    pipeline: Pipeline, entities_1000: list[dict[str, Any]]
) -> None:
    job_id = pipeline.submit(prediction_type="ews", entity_ids=ids(entities_1000)[:5]).body[
        "job_id"
    ]
    for method, path in [
        ("GET", f"/v1/jobs/{job_id}"),
        ("GET", f"/v1/jobs/{job_id}/results"),
        ("POST", f"/v1/jobs/{job_id}/cancel"),
    ]:
        response = pipeline.api(method, path, tenant=TENANT_B)
        assert response.status == 404, (method, path, response)
        assert response.body["error"]["code"] == "not_found"
    assert pipeline.api("GET", f"/v1/jobs/{job_id}", tenant=TENANT_A).status == 200


def test_other_tenant_cannot_use_tenant_a_entities(
    pipeline: Pipeline, entities_1000: list[dict[str, Any]]
) -> None:
    response = pipeline.submit(
        prediction_type="ising", entity_ids=ids(entities_1000)[:3], tenant=TENANT_B
    )
    assert response.status == 422
    assert response.body["error"]["code"] == "unknown_entities"
    assert pipeline.api("GET", "/v1/entities/e00000", tenant=TENANT_B).status == 404
