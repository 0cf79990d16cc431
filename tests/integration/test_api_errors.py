"""Bad input gets a 4xx naming a code and the field, never a 5xx and never a half-made job."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.data import ids
from tests.support.pipeline import Pipeline


@pytest.fixture
def few(pipeline: Pipeline) -> list[str]:
    from tests.integration.conftest import put_entities
    from tests.support.data import ring_entities

    entities = ring_entities(30)
    put_entities(pipeline, entities)
    return ids(entities)


def assert_nothing_created(pipeline: Pipeline) -> None:
    assert pipeline.api("GET", "/v1/jobs").body["jobs"] == []
    assert pipeline.queue_empty(pipeline.work_queue_url)


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"prediction_type": "nope", "entity_ids": ["e00000"]}, 400, "unknown_prediction_type", "prediction_type"),
        ({"prediction_type": "ising", "entity_ids": []}, 400, "validation_error", "entity_ids"),
        ({"prediction_type": "ising", "entity_ids": [f"x{i}" for i in range(10_001)]}, 400, "validation_error", "entity_ids"),
        ({"prediction_type": "ising", "entity_ids": ["e00000", "e00001", "e00000"]}, 400, "duplicate_entity_ids", "entity_ids[2]"),
        ({"prediction_type": "ising", "entity_ids": ["e00000", "ghost-1"]}, 422, "unknown_entities", "entity_ids[1]"),
        ({"prediction_type": "ising", "entity_ids": ["e00000"], "parameters": {"temperature": "hot"}}, 400, "invalid_parameters", "parameters.temperature"),
        ({"prediction_type": "ising", "entity_ids": ["e00000"], "parameters": {"colour": 1}}, 400, "invalid_parameters", "parameters.colour"),
        ({"prediction_type": "ising", "entity_ids": ["e00000"], "priority": "urgent"}, 400, "validation_error", "priority"),
        ({"prediction_type": "ising", "entity_ids": ["bad id!"]}, 400, "validation_error", "entity_ids[0]"),
        ({"prediction_type": "ising"}, 400, "validation_error", "body"),
        ({"entity_ids": ["e00000"]}, 400, "validation_error", "prediction_type"),
        ({"prediction_type": "ising", "entity_ids": ["e00000"], "tolerated_failure_percent": -1}, 400, "validation_error", "tolerated_failure_percent"),
    ],
)  # fmt: skip
def test_submit_bad_input_is_4xx_naming_the_field(
    pipeline: Pipeline, few: list[str], body: dict[str, Any], status: int, code: str, field: str
) -> None:
    response = pipeline.api("POST", "/v1/jobs", body=body)
    assert response.status == status, response
    error = response.body["error"]
    assert error["code"] == code
    assert field in [f["path"] for f in error["fields"]], error
    assert error["message"]
    assert_nothing_created(pipeline)


def test_submit_malformed_json_is_400_malformed_json(pipeline: Pipeline, few: list[str]) -> None:
    response = pipeline.api("POST", "/v1/jobs", raw_body='{"prediction_type": "ising", ')
    assert response.status == 400
    assert response.body["error"]["code"] == "malformed_json"
    assert_nothing_created(pipeline)


def test_submit_oversized_body_is_413(pipeline: Pipeline, few: list[str]) -> None:
    body = json.dumps({"prediction_type": "ising", "entity_ids": ["e00000"], "x": "a" * 7_000_000})
    response = pipeline.api("POST", "/v1/jobs", raw_body=body)
    assert response.status == 413
    assert response.body["error"]["code"] == "payload_too_large"
    assert_nothing_created(pipeline)


def test_predict_batch_path_type_unknown_is_400(pipeline: Pipeline, few: list[str]) -> None:
    response = pipeline.api("POST", "/v1/predict/batch/nope", body={"entity_ids": few[:2]})
    assert response.status == 400
    assert response.body["error"]["code"] == "unknown_prediction_type"


def test_predict_batch_path_type_creates_the_job(pipeline: Pipeline, few: list[str]) -> None:
    response = pipeline.api("POST", "/v1/predict/batch/ews", body={"entity_ids": few[:3]})
    assert response.status == 202
    assert response.body["prediction_type"] == "ews"
    assert response.body["total_items"] == 3


def test_client_token_same_request_same_job_and_one_dispatch(
    pipeline: Pipeline, few: list[str]
) -> None:
    body = {"prediction_type": "ising", "entity_ids": few[:26], "client_token": "nightly-1"}
    first = pipeline.api("POST", "/v1/jobs", body=body)
    second = pipeline.api("POST", "/v1/jobs", body=body)
    assert first.status == second.status == 202
    assert first.body["job_id"] == second.body["job_id"]
    messages = []
    while batch := pipeline.receive(pipeline.work_queue_url, 10):
        messages.extend(batch)
    assert len(messages) == 2  # 26 items, chunk size 25: dispatched once


def test_client_token_reused_for_another_request_is_409(pipeline: Pipeline, few: list[str]) -> None:
    pipeline.api(
        "POST",
        "/v1/jobs",
        body={"prediction_type": "ising", "entity_ids": few[:2], "client_token": "t1"},
    )
    response = pipeline.api(
        "POST",
        "/v1/jobs",
        body={"prediction_type": "ising", "entity_ids": few[:3], "client_token": "t1"},
    )
    assert response.status == 409
    assert response.body["error"]["code"] == "idempotency_conflict"
    assert response.body["error"]["fields"][0]["path"] == "client_token"


@pytest.mark.parametrize(
    ("query", "field"),
    [({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"status": "weird"}, "status"), ({"next_token": "zzz"}, "next_token")],
)  # fmt: skip
def test_results_bad_query_is_400_naming_it(
    pipeline: Pipeline, few: list[str], query: dict[str, Any], field: str
) -> None:
    job_id = pipeline.submit(prediction_type="ews", entity_ids=few[:2]).body["job_id"]
    response = pipeline.api("GET", f"/v1/jobs/{job_id}/results", query=query)
    assert response.status == 400, response
    assert field in [f["path"] for f in response.body["error"]["fields"]]


def test_put_entities_bad_entity_names_its_path(pipeline: Pipeline) -> None:
    body = {"entities": [{"entity_id": "ok"}, {"entity_id": "b", "time_series": [1, "x"]}]}
    response = pipeline.api("PUT", "/v1/entities", body=body)
    assert response.status == 400
    assert "entities[1].time_series[1]" in [f["path"] for f in response.body["error"]["fields"]]
    assert pipeline.api("GET", "/v1/entities/ok").status == 404  # nothing half-written


def test_unknown_job_is_404(pipeline: Pipeline) -> None:
    response = pipeline.api("GET", "/v1/jobs/j-doesnotexist")
    assert response.status == 404
    assert response.body["error"]["code"] == "not_found"
