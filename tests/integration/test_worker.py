"""The worker's contract with Lambda's SQS event source: exact partial batch responses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from batchpredict import aws
from tests.integration.conftest import put_entities
from tests.support.data import ids, ring_entities
from tests.support.handlers import FakeContext, invoke
from tests.support.pipeline import Pipeline


@pytest.fixture
def job(pipeline: Pipeline) -> dict[str, Any]:
    entities = ring_entities(100)
    put_entities(pipeline, entities)
    return pipeline.submit(prediction_type="ews", entity_ids=ids(entities)).body


def messages(pipeline: Pipeline) -> list[dict[str, Any]]:
    found = []
    while batch := pipeline.receive(pipeline.work_queue_url, 10):
        found.extend(batch)
    return sorted(found, key=lambda m: json.loads(m["Body"])["chunk_id"])


def test_worker_malformed_record_is_the_only_batch_item_failure(
    pipeline: Pipeline, job: dict[str, Any]
) -> None:
    good = messages(pipeline)
    bad = {**good[0], "MessageId": "poison-1", "Body": '{"not": "a chunk"}'}
    event = Pipeline.sqs_event([*good, bad], "arn:aws:sqs:us-east-1:123456789012:work")
    response = invoke("worker", event)
    assert response == {"batchItemFailures": [{"itemIdentifier": "poison-1"}]}
    status = pipeline.api("GET", f"/v1/jobs/{job['job_id']}").body
    assert status["status"] == "COMPLETED"
    assert status["counts"]["succeeded"] == 100


def test_worker_every_record_failing_is_reported_not_raised(
    pipeline: Pipeline, job: dict[str, Any]
) -> None:
    batch = messages(pipeline)
    event = Pipeline.sqs_event(batch, "arn:aws:sqs:us-east-1:123456789012:work")

    def throttle(**_: Any) -> None:
        raise aws.client("dynamodb").exceptions.ProvisionedThroughputExceededException(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
            "BatchGetItem",
        )

    aws.client("dynamodb").meta.events.register("before-call.dynamodb.BatchGetItem", throttle)
    try:
        response = invoke("worker", event)
    finally:
        aws.client("dynamodb").meta.events.unregister("before-call.dynamodb.BatchGetItem", throttle)
    assert response == {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in batch]}
    assert pipeline.api("GET", f"/v1/jobs/{job['job_id']}").body["counts"]["pending"] == 100


def test_worker_failed_write_fails_only_that_chunk(pipeline: Pipeline, job: dict[str, Any]) -> None:
    batch = messages(pipeline)
    victim = batch[2]
    victim_chunk = json.loads(victim["Body"])["chunk_id"]

    def conflict_on_victim(params: dict[str, Any], **_: Any) -> None:
        if any(
            a.get("Put", {}).get("Item", {}).get("sk", {}).get("S") == f"RESULT#{victim_chunk}"
            for a in params["TransactItems"]
        ):
            raise aws.client("dynamodb").exceptions.TransactionCanceledException(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                    "CancellationReasons": [{"Code": "TransactionConflict"}],
                },
                "TransactWriteItems",
            )

    client = aws.client("dynamodb")
    client.meta.events.register(
        "provide-client-params.dynamodb.TransactWriteItems", conflict_on_victim
    )
    try:
        response = invoke("worker", Pipeline.sqs_event(batch, "arn:aws:sqs:::work"))
    finally:
        client.meta.events.unregister(
            "provide-client-params.dynamodb.TransactWriteItems", conflict_on_victim
        )
    assert response == {"batchItemFailures": [{"itemIdentifier": victim["MessageId"]}]}
    counts = pipeline.api("GET", f"/v1/jobs/{job['job_id']}").body["counts"]
    assert counts["succeeded"] == 75
    assert counts["pending"] == 25

    # Redelivered alone, the chunk is recorded and the job completes.
    invoke("worker", Pipeline.sqs_event([victim], "arn:aws:sqs:::work"))
    assert pipeline.api("GET", f"/v1/jobs/{job['job_id']}").body["status"] == "COMPLETED"


def test_worker_same_chunk_twice_in_one_batch_counts_once(
    pipeline: Pipeline, job: dict[str, Any]
) -> None:
    batch = messages(pipeline)
    twin = {**batch[0], "MessageId": "twin"}
    response = invoke("worker", Pipeline.sqs_event([*batch, twin], "arn:aws:sqs:::work"))
    assert response == {"batchItemFailures": []}
    status = pipeline.api("GET", f"/v1/jobs/{job['job_id']}").body
    assert status["counts"]["succeeded"] == 100
    assert status["status"] == "COMPLETED"


def test_worker_time_running_out_returns_the_remaining_chunks(
    pipeline: Pipeline, job: dict[str, Any]
) -> None:
    batch = messages(pipeline)
    context = FakeContext(function_name="worker", remaining_ms=5_000)  # under the safety margin
    response = invoke("worker", Pipeline.sqs_event(batch, "arn:aws:sqs:::work"), context)
    assert response == {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in batch]}
    assert pipeline.api("GET", f"/v1/jobs/{job['job_id']}").body["counts"]["pending"] == 100


def test_worker_sample_event_from_events_dir_is_valid(pipeline: Pipeline) -> None:
    from tests.support.handlers import ROOT

    path = ROOT / "events" / "worker_sqs.json"
    if not path.exists():
        pytest.skip("events/worker_sqs.json not written yet")
    event = json.loads(path.read_text())
    # The sample's job does not exist here: the worker acknowledges it as a stray chunk.
    assert invoke("worker", event) == {"batchItemFailures": []}
