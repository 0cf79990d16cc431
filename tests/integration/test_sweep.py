"""No stuck job: the scheduled sweep repairs what a crash or a lost message left behind."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from batchpredict import aws
from batchpredict.predictors import get_predictor
from batchpredict.service.sweep import sweep_jobs
from batchpredict.store import stores
from tests.integration.conftest import put_entities
from tests.support.data import ids, ring_entities
from tests.support.pipeline import Pipeline

LATER = timedelta(seconds=901)  # past STUCK_AFTER_SECONDS' default


@pytest.fixture
def ews_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    calls: Counter[str] = Counter()
    predictor = get_predictor("ews")
    original = type(predictor).predict_batch

    def spy(self: Any, entities: Any, params: Any, graph: Any) -> Any:
        calls.update(e.entity_id for e in entities)
        return original(self, entities, params, graph)

    monkeypatch.setattr(type(predictor), "predict_batch", spy)
    return calls


def test_sweep_crash_before_dispatch_is_repaired_with_exact_counts(pipeline: Pipeline) -> None:
    entities = ring_entities(120)
    put_entities(pipeline, entities)
    sqs = aws.client("sqs")

    def crash(**_: Any) -> None:
        raise RuntimeError("the submit Lambda died here")

    sqs.meta.events.register("before-call.sqs.SendMessageBatch", crash)
    try:
        response = pipeline.submit(
            prediction_type="ews", entity_ids=ids(entities), client_token="retry-me"
        )
    finally:
        sqs.meta.events.unregister("before-call.sqs.SendMessageBatch", crash)
    assert response.status == 500
    job = pipeline.submit(prediction_type="ews", entity_ids=ids(entities), client_token="retry-me")
    assert job.status == 202  # the client's retry finds the job its token made
    job_id = job.body["job_id"]
    assert pipeline.queue_empty(pipeline.work_queue_url)

    assert sweep_jobs(stores()).redispatched == {}  # too early: it may only be slow
    report = sweep_jobs(stores(), now=datetime.now(UTC) + LATER)
    assert report.redispatched == {job_id: 5}
    pipeline.drain()
    status = pipeline.api("GET", f"/v1/jobs/{job_id}").body
    assert status["status"] == "COMPLETED"
    assert status["counts"]["succeeded"] == 120
    events = [e["kind"] for e in pipeline.api("GET", f"/v1/jobs/{job_id}/events").body["events"]]
    assert "ChunksRedispatched" in events


def test_sweep_resends_a_lost_chunk_and_skips_one_only_slow(
    pipeline: Pipeline, ews_calls: Counter[str]
) -> None:
    entities = ring_entities(100)
    put_entities(pipeline, entities)
    job_id = pipeline.submit(prediction_type="ews", entity_ids=ids(entities)).body["job_id"]
    messages = []
    while batch := pipeline.receive(pipeline.work_queue_url, 10):
        messages.extend(batch)
    lost, slow, rest = messages[0], messages[1], messages[2:]
    pipeline.sqs.delete_message(
        QueueUrl=pipeline.work_queue_url, ReceiptHandle=lost["ReceiptHandle"]
    )
    pipeline.deliver("worker", pipeline.work_queue_url, rest, pipeline.worker_context())
    sweep_jobs(stores())  # records the progress it sees
    # Nothing moves for a while: both the lost and the slow chunk are re-sent.
    report = sweep_jobs(stores(), now=datetime.now(UTC) + LATER)
    assert report.redispatched == {job_id: 2}
    pipeline.deliver("worker", pipeline.work_queue_url, [slow], pipeline.worker_context())
    pipeline.drain()

    status = pipeline.api("GET", f"/v1/jobs/{job_id}").body
    assert status["status"] == "COMPLETED"
    assert status["counts"]["succeeded"] == 100
    assert max(ews_calls.values()) == 1  # the slow chunk's re-sent copy was not predicted again


def test_sweep_announces_a_job_whose_end_eventbridge_refused(pipeline: Pipeline) -> None:
    entities = ring_entities(30)
    put_entities(pipeline, entities)
    events = aws.client("events")
    sent: list[str] = []

    def outage(**_: Any) -> None:
        raise events.exceptions.InternalException(
            {"Error": {"Code": "InternalException", "Message": "EventBridge is down"}}, "PutEvents"
        )

    def count(params: dict[str, Any], **_: Any) -> None:
        sent.extend(entry["DetailType"] for entry in params["Entries"])

    events.meta.events.register("before-call.events.PutEvents", outage)
    try:
        job_id = pipeline.submit(prediction_type="ews", entity_ids=ids(entities)).body["job_id"]
        pipeline.drain()  # nothing comes back: the chunks are recorded, only the end is pending
    finally:
        events.meta.events.unregister("before-call.events.PutEvents", outage)
    status = pipeline.api("GET", f"/v1/jobs/{job_id}").body
    assert (status["status"], status["counts"]["succeeded"]) == ("COMPLETED", 30)
    assert [j.job_id for j in stores().jobs.active_jobs()] == [job_id]  # still swept

    events.meta.events.register("provide-client-params.events.PutEvents", count)
    try:
        sweep_jobs(stores())
        sweep_jobs(stores())
    finally:
        events.meta.events.unregister("provide-client-params.events.PutEvents", count)
    assert sent == ["JobCompleted"]
    assert stores().jobs.active_jobs() == []
    history = [e["kind"] for e in pipeline.api("GET", f"/v1/jobs/{job_id}/events").body["events"]]
    assert history.count("JobCompleted") == 1
