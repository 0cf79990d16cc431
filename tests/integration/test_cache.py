"""Repeated work is free; a changed input is recomputed; an expired entry is never served."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from batchpredict.predictors import get_predictor
from tests.integration.conftest import put_entities
from tests.support.data import ids, ring_entities
from tests.support.pipeline import Pipeline


@pytest.fixture
def predictor_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts each entity the ising predictor is asked to predict."""
    calls: Counter[str] = Counter()
    predictor = get_predictor("ising")
    original = type(predictor).predict_batch

    def spy(self: Any, entities: Any, params: Any, graph: Any) -> Any:
        calls.update(e.entity_id for e in entities)
        return original(self, entities, params, graph)

    monkeypatch.setattr(type(predictor), "predict_batch", spy)
    return calls


def run(pipeline: Pipeline, entity_ids: list[str], **extra: Any) -> dict[str, Any]:
    job_id = pipeline.submit(prediction_type="ising", entity_ids=entity_ids, **extra).body["job_id"]
    pipeline.drain()
    return pipeline.api("GET", f"/v1/jobs/{job_id}").body


def test_identical_resubmission_is_all_cache_hits_and_no_predictor_calls(
    pipeline: Pipeline, predictor_calls: Counter[str]
) -> None:
    entities = ring_entities(300)
    put_entities(pipeline, entities)
    first = run(pipeline, ids(entities))
    assert first["counts"]["cached"] == 0
    assert sum(predictor_calls.values()) == 300
    predictor_calls.clear()

    second = run(pipeline, ids(entities))
    assert second["status"] == "COMPLETED"
    assert second["counts"]["cached"] == second["counts"]["succeeded"] == 300
    assert second["cache_hit_rate"] == 1.0
    assert sum(predictor_calls.values()) == 0


def test_changed_entity_recomputes_exactly_the_predictions_that_read_it(
    pipeline: Pipeline, predictor_calls: Counter[str]
) -> None:
    entities = ring_entities(100)
    put_entities(pipeline, entities)
    run(pipeline, ids(entities))
    predictor_calls.clear()

    changed = dict(entities[50])
    changed["attributes"] = {**changed["attributes"], "spin": -changed["attributes"]["spin"]}
    put_entities(pipeline, [changed])
    status = run(pipeline, ids(entities))

    # ising reads an entity and its neighbours: e00050 itself and the two that list it.
    assert set(predictor_calls) == {"e00049", "e00050", "e00051"}
    assert status["counts"]["cached"] == 97


def test_expired_entry_is_recomputed_even_if_dynamodb_kept_it(
    pipeline: Pipeline, predictor_calls: Counter[str], aws_env: dict[str, Any]
) -> None:
    entities = ring_entities(10)
    put_entities(pipeline, entities)
    run(pipeline, ids(entities))
    ddb = aws_env["ddb"]
    items = ddb.scan(TableName=aws_env["tables"]["CacheTable"])["Items"]
    expired = [i for i in items if i["pk"]["S"].endswith("#ENTITY#e00003")]
    assert len(expired) == 1
    ddb.update_item(
        TableName=aws_env["tables"]["CacheTable"],
        Key={"pk": expired[0]["pk"], "sk": expired[0]["sk"]},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": "1000"}},
    )
    predictor_calls.clear()
    status = run(pipeline, ids(entities))
    assert set(predictor_calls) == {"e00003"}
    assert status["counts"]["cached"] == 9


def test_use_cache_false_bypasses_reads_and_says_so(
    pipeline: Pipeline, predictor_calls: Counter[str]
) -> None:
    entities = ring_entities(30)
    put_entities(pipeline, entities)
    run(pipeline, ids(entities))
    predictor_calls.clear()
    status = run(pipeline, ids(entities), use_cache=False)
    assert status["use_cache"] is False
    assert status["counts"]["cached"] == 0
    assert sum(predictor_calls.values()) == 30


def test_latest_prediction_and_invalidation_by_type(
    pipeline: Pipeline, predictor_calls: Counter[str]
) -> None:
    entities = ring_entities(20)
    put_entities(pipeline, entities)
    run(pipeline, ids(entities))

    latest = pipeline.api("GET", "/v1/predictions/ising/e00004")
    assert latest.status == 200
    assert "spin_flip_probability" in latest.body["prediction"]
    assert pipeline.api("GET", "/v1/predictions/ews/e00004").status == 404
    assert pipeline.api("GET", "/v1/predictions/nope/e00004").status == 400

    invalidated = pipeline.api("DELETE", "/v1/cache", query={"prediction_type": "ising"})
    assert invalidated.status == 200
    assert pipeline.api("GET", "/v1/predictions/ising/e00004").status == 404
    predictor_calls.clear()
    status = run(pipeline, ids(entities))
    assert status["counts"]["cached"] == 0
    assert sum(predictor_calls.values()) == 20


def test_invalidation_by_entity_recomputes_only_it(
    pipeline: Pipeline, predictor_calls: Counter[str]
) -> None:
    entities = ring_entities(20)
    put_entities(pipeline, entities)
    run(pipeline, ids(entities))
    response = pipeline.api("DELETE", "/v1/cache", query={"entity_id": "e00007"})
    assert response.body["entries_deleted"] == 1
    predictor_calls.clear()
    run(pipeline, ids(entities))
    assert set(predictor_calls) == {"e00007"}
