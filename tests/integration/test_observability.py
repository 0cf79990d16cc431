"""What operators see: EMF metrics with the right values, log lines with job and tenant, and
exactly one EventBridge event per finished job."""

from __future__ import annotations

import json
from typing import Any

import pytest

from batchpredict import aws
from batchpredict.constants import Metric
from tests.integration.conftest import put_entities
from tests.support.data import ids, ring_entities
from tests.support.pipeline import Pipeline


def emf_documents(text: str) -> list[dict[str, Any]]:
    docs = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{") and '"_aws"' in line:
            docs.append(json.loads(line))
    return docs


def metric_sum(docs: list[dict[str, Any]], name: str) -> float:
    total = 0.0
    for doc in docs:
        value = doc.get(name)
        if value is None:
            continue
        total += sum(value) if isinstance(value, list) else value
    return total


def test_job_emf_metrics_carry_the_job_counts(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    entities = ring_entities(60)
    put_entities(pipeline, entities)
    capsys.readouterr()
    pipeline.submit(prediction_type="ising", entity_ids=ids(entities))
    pipeline.drain()
    docs = emf_documents(capsys.readouterr().out)

    assert metric_sum(docs, Metric.JOBS_CREATED) == 1
    assert metric_sum(docs, Metric.ITEMS_SUCCEEDED) == 60
    assert metric_sum(docs, Metric.CACHE_MISSES) == 60
    assert metric_sum(docs, Metric.JOBS_COMPLETED) == 1
    assert metric_sum(docs, Metric.SUBMIT_LATENCY) > 0
    namespaces = {
        d["_aws"]["CloudWatchMetrics"][0]["Namespace"]
        for d in docs
        if d["_aws"]["CloudWatchMetrics"]
    }
    assert namespaces == {"BatchPredict"}


def test_worker_log_lines_name_job_and_tenant(pipeline: Pipeline) -> None:
    import io
    import logging

    from batchpredict.observability import logger

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    logger.setLevel("INFO")
    try:
        entities = ring_entities(5)
        put_entities(pipeline, entities)
        job_id = pipeline.submit(prediction_type="ews", entity_ids=ids(entities)).body["job_id"]
        pipeline.drain()
    finally:
        logger.setLevel("WARNING")
        logger.removeHandler(handler)
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    finished = [x for x in lines if x.get("message") == "job finished"]
    assert len(finished) == 1, lines
    assert finished[0]["job_id"] == job_id
    assert finished[0]["tenant"].endswith("user/alice")
    created = [x for x in lines if x.get("message") == "job created"]
    assert created[0]["tenant"].endswith("user/alice")


def test_finished_job_emits_exactly_one_eventbridge_event(pipeline: Pipeline) -> None:
    events = aws.client("events")
    sqs = aws.client("sqs")
    sink = sqs.create_queue(QueueName="job-events")["QueueUrl"]
    sink_arn = sqs.get_queue_attributes(QueueUrl=sink, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(Name="jobs", EventPattern=json.dumps({"source": ["batchpredict"]}))
    events.put_targets(Rule="jobs", Targets=[{"Id": "sink", "Arn": sink_arn}])

    entities = ring_entities(80)
    put_entities(pipeline, entities)
    job_id = pipeline.submit(prediction_type="ews", entity_ids=ids(entities)).body["job_id"]
    # Deliver every chunk twice: completion must still be announced once.
    messages = []
    while batch := pipeline.receive(pipeline.work_queue_url, 10):
        messages.extend(batch)
    for message in messages + messages:
        pipeline.deliver("worker", pipeline.work_queue_url, [message], pipeline.worker_context())
    from batchpredict.service.jobs import cancel_job  # a late cancel must not announce again
    from batchpredict.store import stores

    with pytest.raises(Exception, match="already finished"):
        cancel_job(stores(), "arn:aws:iam::123456789012:user/alice", job_id)

    received = sqs.receive_message(QueueUrl=sink, MaxNumberOfMessages=10)["Messages"]
    assert len(received) == 1
    event = json.loads(received[0]["Body"])
    assert event["detail-type"] == "JobCompleted"
    assert event["detail"]["job_id"] == job_id
    assert event["detail"]["counts"]["succeeded"] == 80
