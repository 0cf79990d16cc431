"""Dead letters: a poison chunk becomes failed items with a reason; garbage is parked, never lost."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.conftest import put_entities
from tests.support.data import ids, ring_entities
from tests.support.handlers import invoke
from tests.support.pipeline import Pipeline


def test_dead_lettered_chunk_fails_its_items_with_reason_and_job_ends(pipeline: Pipeline) -> None:
    entities = ring_entities(60)
    put_entities(pipeline, entities)
    job_id = pipeline.submit(prediction_type="ews", entity_ids=ids(entities)).body["job_id"]
    messages = []
    while batch := pipeline.receive(pipeline.work_queue_url, 10):
        messages.extend(batch)
    poison, healthy = messages[0], messages[1:]
    pipeline.deliver("worker", pipeline.work_queue_url, healthy, pipeline.worker_context())
    # The poison chunk exhausted its receives: Lambda's redrive put it in the DLQ.
    response = invoke("dlq", Pipeline.sqs_event([poison], "arn:aws:sqs:::dlq"))
    assert response == {"batchItemFailures": []}

    status = pipeline.api("GET", f"/v1/jobs/{job_id}").body
    poisoned = len(json.loads(poison["Body"])["entity_ids"])
    assert status["status"] == "COMPLETED_WITH_ERRORS"
    assert status["counts"]["failed"] == poisoned
    assert status["counts"]["succeeded"] == 60 - poisoned
    failed = pipeline.api(
        "GET", f"/v1/jobs/{job_id}/results", query={"status": "failed", "limit": 1000}
    ).body["items"]
    assert len(failed) == poisoned
    assert {row["error"]["code"] for row in failed} == {"dead_lettered"}
    assert all("dead-lettered" in row["error"]["message"] for row in failed)

    # A second copy of the same dead letter changes nothing.
    assert invoke("dlq", Pipeline.sqs_event([poison], "arn:aws:sqs:::dlq")) == {
        "batchItemFailures": []
    }
    assert pipeline.api("GET", f"/v1/jobs/{job_id}").body["counts"]["failed"] == poisoned


def test_unparseable_dead_letter_is_parked_with_its_reason(
    pipeline: Pipeline, aws_env: dict[str, Any]
) -> None:
    garbage = {
        "MessageId": "garbage-1",
        "ReceiptHandle": "rh",
        "Body": "this is not json",
        "Attributes": {"ApproximateReceiveCount": "6"},
    }
    response = invoke("dlq", Pipeline.sqs_event([garbage], "arn:aws:sqs:::dlq"))
    assert response == {"batchItemFailures": []}
    parked = aws_env["sqs"].receive_message(
        QueueUrl=aws_env["parking_url"], MessageAttributeNames=["All"], WaitTimeSeconds=0
    )["Messages"]
    assert [m["Body"] for m in parked] == ["this is not json"]
    attributes = parked[0]["MessageAttributes"]
    assert attributes["dead_letter_message_id"]["StringValue"] == "garbage-1"
    assert "not a chunk" in attributes["reason"]["StringValue"]


def test_unparseable_dead_letter_stays_when_parking_fails(
    pipeline: Pipeline, monkeypatch: Any
) -> None:
    monkeypatch.setenv("PARKING_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/gone")
    from batchpredict import store

    store.reset()
    garbage = {"MessageId": "garbage-2", "ReceiptHandle": "rh", "Body": "{}", "Attributes": {}}
    response = invoke("dlq", Pipeline.sqs_event([garbage], "arn:aws:sqs:::dlq"))
    assert response == {"batchItemFailures": [{"itemIdentifier": "garbage-2"}]}
