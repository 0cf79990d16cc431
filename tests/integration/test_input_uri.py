"""Jobs whose entity ids come from an S3 JSONL object (input_uri), and the fan-out of big jobs."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
import pytest

from batchpredict.service import dispatch
from batchpredict.store import stores
from tests.integration.conftest import put_entities
from tests.support.data import ids, ring_entities
from tests.support.pipeline import TENANT_B, Pipeline


def upload(lines: list[str], key: str = "inputs/job.jsonl") -> str:
    bucket = os.environ["INPUT_BUCKET"]
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body="\n".join(lines).encode())
    return f"s3://{bucket}/{key}"


def as_lines(entity_ids: list[str]) -> list[str]:
    """Both line forms, and a blank line: what a user's export looks like."""
    lines = [
        json.dumps(i) if n % 2 else json.dumps({"entity_id": i, "region": "eu"})
        for n, i in enumerate(entity_ids)
    ]
    return [*lines[:10], "", *lines[10:]]


def all_results(pipeline: Pipeline, job_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    token = None
    while True:
        query = {"limit": "1000", **({"next_token": token} if token else {})}
        page = pipeline.api("GET", f"/v1/jobs/{job_id}/results", query=query).body
        rows.extend(page["items"])
        token = page["next_token"]
        if not token:
            return rows


def test_input_uri_job_completes_with_one_result_per_line(pipeline: Pipeline) -> None:
    entities = ring_entities(1200)
    put_entities(pipeline, entities)
    uri = upload(as_lines(ids(entities)))

    response = pipeline.submit(prediction_type="ews", input_uri=uri)
    assert response.status == 202, response
    assert response.body["total_items"] == 1200
    pipeline.drain()

    status = pipeline.api("GET", f"/v1/jobs/{response.body['job_id']}").body
    assert status["status"] == "COMPLETED"
    assert status["input_uri"] == uri
    assert status["counts"]["succeeded"] == 1200
    rows = all_results(pipeline, response.body["job_id"])
    assert sorted(r["entity_id"] for r in rows) == sorted(ids(entities))


def test_big_job_fans_out_from_worker_messages_counted_once_even_if_replayed(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 2,500 ids = 3 manifest pages; with one page per slice the submit sends page 0's chunks
    # and two fan-out messages, which workers turn into the rest.
    monkeypatch.setattr(dispatch, "FANOUT_PAGES", 1)
    entities = ring_entities(2500)
    put_entities(pipeline, entities)
    uri = upload([json.dumps(i) for i in ids(entities)])
    job_id = pipeline.submit(prediction_type="ews", input_uri=uri).body["job_id"]

    sent = pipeline.receive_batch(pipeline.work_queue_url, 10_000)
    fanouts = [m for m in sent if json.loads(m["Body"]).get("kind") == "fanout"]
    chunks = [m for m in sent if "chunk_id" in json.loads(m["Body"])]
    assert [json.loads(m["Body"])["first_page"] for m in fanouts] == [1, 2]
    assert len(chunks) == 40  # page 0: 1,000 ids in chunks of 25
    # every message delivered twice: the fan-outs send their chunks twice, each counted once
    for message in sent + sent:
        pipeline.deliver("worker", pipeline.work_queue_url, [message], pipeline.worker_context())
    pipeline.drain()

    status = pipeline.api("GET", f"/v1/jobs/{job_id}").body
    assert status["status"] == "COMPLETED"
    assert status["counts"]["succeeded"] == 2500
    assert status["chunk_count"] == 100
    rows = all_results(pipeline, job_id)
    assert len(rows) == 2500
    assert len({r["entity_id"] for r in rows}) == 2500


def test_fanout_short_of_time_hands_its_other_pages_to_a_new_fanout(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 4,500 ids = 5 manifest pages; two pages per slice: the submit sends pages 0-1 and the
    # fan-outs (2, 2 pages) and (4, 1 page).
    monkeypatch.setattr(dispatch, "FANOUT_PAGES", 2)
    entities = ring_entities(4500)
    put_entities(pipeline, entities)
    uri = upload([json.dumps(i) for i in ids(entities)])
    job_id = pipeline.submit(prediction_type="ising", input_uri=uri).body["job_id"]
    first = pipeline.receive_batch(pipeline.work_queue_url, 10_000)
    fanouts = [b for b in map(json.loads, (m["Body"] for m in first)) if b.get("kind") == "fanout"]
    assert [(b["first_page"], b["pages"]) for b in fanouts] == [(2, 2), (4, 1)]

    # The invocation has time for one page only: page 3 goes on in a new fan-out message.
    message = dispatch.parse_fanout(json.dumps(fanouts[0]))
    assert message is not None
    dispatch.continue_fanout(stores(), message, has_time=lambda: False)
    sent = pipeline.receive_batch(pipeline.work_queue_url, 10_000)  # what `first` left out
    bodies = [json.loads(m["Body"]) for m in sent]
    handed_on = [b for b in bodies if b.get("kind") == "fanout"]
    assert [(b["first_page"], b["pages"]) for b in handed_on] == [(3, 1)]
    assert sorted(b["chunk_id"] for b in bodies if "chunk_id" in b) == [
        f"{i:06d}" for i in range(80, 120)
    ]

    # Every message delivered, the first fan-out included: page 2 is sent twice, counted once.
    for received in first + sent:
        pipeline.deliver("worker", pipeline.work_queue_url, [received], pipeline.worker_context())
    pipeline.drain()
    status = pipeline.api("GET", f"/v1/jobs/{job_id}").body
    assert (status["status"], status["counts"]["succeeded"]) == ("COMPLETED", 4500)
    assert len({r["entity_id"] for r in all_results(pipeline, job_id)}) == 4500


def test_input_uri_unknown_entity_fails_alone_with_entity_not_found(pipeline: Pipeline) -> None:
    entities = ring_entities(30)
    put_entities(pipeline, entities)
    uri = upload([json.dumps(i) for i in [*ids(entities), "nobody-here"]])
    job_id = pipeline.submit(prediction_type="ews", input_uri=uri).body["job_id"]
    pipeline.drain()

    status = pipeline.api("GET", f"/v1/jobs/{job_id}").body
    assert status["status"] == "COMPLETED_WITH_ERRORS"
    assert (status["counts"]["succeeded"], status["counts"]["failed"]) == (30, 1)
    failed = pipeline.api("GET", f"/v1/jobs/{job_id}/results", query={"status": "failed"}).body
    assert [(r["entity_id"], r["error"]["code"]) for r in failed["items"]] == [
        ("nobody-here", "entity_not_found")
    ]


@pytest.mark.parametrize(
    ("lines", "status", "code", "field"),
    [
        (['"a-1"', '"a-2"', "{not json"], 400, "invalid_input_file", "input_uri[3]"),
        (['"a-1"', "{}"], 400, "invalid_input_file", "input_uri[2]"),
        (['"a-1"', "42"], 400, "invalid_input_file", "input_uri[2]"),
        (['"a-1"', '"bad id!"'], 400, "invalid_input_file", "input_uri[2]"),
        (['"a-1"', '"a-2"', '{"entity_id": "a-1"}'], 400, "duplicate_entity_ids", "input_uri[3]"),
        (["", "  "], 400, "invalid_input_file", "input_uri"),
    ],
)
def test_input_uri_bad_content_is_4xx_naming_the_line(
    pipeline: Pipeline, lines: list[str], status: int, code: str, field: str
) -> None:
    response = pipeline.submit(prediction_type="ews", input_uri=upload(lines))
    assert response.status == status, response
    assert response.body["error"]["code"] == code
    assert response.body["error"]["fields"][0]["path"] == field
    assert pipeline.api("GET", "/v1/jobs").body["jobs"] == []  # no half-made job


def test_input_uri_outside_the_input_bucket_or_missing_is_4xx(pipeline: Pipeline) -> None:
    boto3.client("s3").create_bucket(Bucket="someone-elses-bucket")
    outside = pipeline.submit(prediction_type="ews", input_uri="s3://someone-elses-bucket/x.jsonl")
    assert (outside.status, outside.body["error"]["code"]) == (400, "invalid_input_file")
    assert outside.body["error"]["fields"][0]["path"] == "input_uri"

    bucket = os.environ["INPUT_BUCKET"]
    missing = pipeline.submit(prediction_type="ews", input_uri=f"s3://{bucket}/nothing.jsonl")
    assert (missing.status, missing.body["error"]["code"]) == (422, "invalid_input_file")

    malformed = pipeline.submit(prediction_type="ews", input_uri="https://example.com/x")
    assert (malformed.status, malformed.body["error"]["fields"][0]["path"]) == (400, "input_uri")

    both = pipeline.submit(prediction_type="ews", input_uri=upload(['"a"']), entity_ids=["a"])
    assert both.status == 400
    assert "exactly one of" in both.body["error"]["message"]


def test_input_uri_over_the_line_limit_is_refused(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batchpredict import constants

    monkeypatch.setattr(constants, "MAX_INPUT_LINES", 5)
    response = pipeline.submit(
        prediction_type="ews", input_uri=upload([json.dumps(f"e-{n}") for n in range(6)])
    )
    assert (response.status, response.body["error"]["code"]) == (400, "invalid_input_file")
    assert "more than 5" in response.body["error"]["message"]


def test_input_uri_job_is_tenant_scoped(pipeline: Pipeline) -> None:
    entities = ring_entities(5)
    put_entities(pipeline, entities)
    job_id = pipeline.submit(
        prediction_type="ews", input_uri=upload([json.dumps(i) for i in ids(entities)])
    ).body["job_id"]
    assert pipeline.api("GET", f"/v1/jobs/{job_id}", tenant=TENANT_B).status == 404
