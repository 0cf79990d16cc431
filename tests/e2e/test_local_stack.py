"""The local stack over real HTTP: its machinery on the toy template, the system on the real one."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any

import pytest
import requests

from batchpredict_local import LocalStack
from batchpredict_local.schedules import Scheduler, next_fire
from tests.e2e.conftest import ApiSession, recorder

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

DEMO_KEY = "local-demo-key"
OTHER_KEY = "local-other-key"


def send(stack: LocalStack, bodies: list[dict[str, Any]]) -> None:
    sqs = stack.client("sqs")
    for start in range(0, len(bodies), 10):
        sqs.send_message_batch(
            QueueUrl=stack.queues["ToyQueue"],
            Entries=[
                {"Id": str(i), "MessageBody": json.dumps(body)}
                for i, body in enumerate(bodies[start : start + 10])
            ],
        )


def done_items(stack: LocalStack) -> dict[str, int]:
    """The worker's writes: message id -> the receive count it succeeded on."""
    table = stack.tables["ToyTable"]
    items = stack.client("dynamodb").scan(TableName=table, ConsistentRead=True)["Items"]
    return {
        item["pk"]["S"].removeprefix("done#"): int(item["receive_count"]["N"])
        for item in items
        if item["pk"]["S"].startswith("done#")
    }


# -- the HTTP front ----------------------------------------------------------------------------


def test_front_get_route_passes_api_gateway_proxy_event(toy: LocalStack) -> None:
    response = requests.get(
        f"{toy.url}/v1/echo/some%20name?x=1&x=2&y=3", headers={"x-api-key": DEMO_KEY}, timeout=10
    )

    assert response.status_code == 200
    echo = response.json()
    assert echo["resource"] == "/v1/echo/{name}"
    assert echo["path"] == "/v1/echo/some name"
    assert echo["path_parameters"] == {"name": "some name"}
    assert echo["query"] == {"x": "2", "y": "3"}
    assert echo["multi_query"] == {"x": ["1", "2"], "y": ["3"]}
    assert echo["body"] is None
    context = echo["request_context"]
    assert context["stage"] == "test"  # the template's Stage parameter
    assert context["resourcePath"] == "/v1/echo/{name}"
    assert context["httpMethod"] == "GET"
    assert context["identity"]["accountId"] == "000000000000"
    assert context["identity"]["userArn"] == "arn:aws:iam::000000000000:user/demo"
    assert context["requestId"] == response.headers["x-amzn-RequestId"]
    assert echo["function_name"] == f"{toy.stack_name}-EchoFunction"
    assert echo["memory"] == 256  # Globals
    assert 0 < echo["remaining_ms"] <= 5000  # the function's own Timeout beats Globals
    assert echo["table"] == toy.tables["ToyTable"]


def test_front_literal_route_wins_over_parameter_route(toy: LocalStack) -> None:
    response = requests.get(
        f"{toy.url}/v1/echo/literal", headers={"x-api-key": DEMO_KEY}, timeout=10
    )

    assert response.json()["resource"] == "/v1/echo/literal"


def test_front_greedy_any_route_takes_every_method_and_depth(toy: LocalStack) -> None:
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        response = requests.request(
            method, f"{toy.url}/v1/proxy/a/b/c", headers={"x-api-key": DEMO_KEY}, timeout=10
        )
        assert response.status_code == 200, method
        assert response.json()["path_parameters"] == {"proxy": "a/b/c"}
        assert response.json()["method"] == method


def test_front_post_maps_status_headers_and_body(toy: LocalStack) -> None:
    response = requests.post(
        f"{toy.url}/v1/echo", json={"a": [1, 2]}, headers={"x-api-key": DEMO_KEY}, timeout=10
    )

    assert response.status_code == 201
    assert response.headers["X-Echo"] == "1"
    assert response.headers["X-Multi"] == "a, b"
    assert json.loads(response.json()["body"]) == {"a": [1, 2]}
    assert response.json()["is_base64"] is False


def test_front_unknown_route_or_method_answers_like_api_gateway(toy: LocalStack) -> None:
    before = toy.stats.snapshot()["invocations"]

    unknown = requests.get(f"{toy.url}/v1/nothing", headers={"x-api-key": DEMO_KEY}, timeout=10)
    wrong_method = requests.delete(
        f"{toy.url}/v1/echo/x", headers={"x-api-key": DEMO_KEY}, timeout=10
    )

    for response in (unknown, wrong_method):
        assert response.status_code == 403
        assert response.json() == {"message": "Missing Authentication Token"}
    assert toy.stats.snapshot()["invocations"] == before


def test_front_missing_or_unknown_key_is_forbidden_without_invoking(toy: LocalStack) -> None:
    before = toy.stats.snapshot()["invocations"]

    missing = requests.get(f"{toy.url}/v1/echo/x", timeout=10)
    unknown = requests.get(f"{toy.url}/v1/echo/x", headers={"x-api-key": "nope"}, timeout=10)

    for response in (missing, unknown):
        assert response.status_code == 403
        assert response.json() == {"message": "Forbidden"}
    assert toy.stats.snapshot()["invocations"] == before


def test_front_each_key_is_its_own_tenant(toy: LocalStack) -> None:
    other = requests.get(f"{toy.url}/v1/echo/x", headers={"x-api-key": OTHER_KEY}, timeout=10)

    assert other.json()["tenant"] == "arn:aws:iam::000000000000:user/other"
    assert toy.api_key("other") == OTHER_KEY


def test_front_function_error_or_malformed_response_answers_502(toy: LocalStack) -> None:
    for path in ("/v1/proxy/boom", "/v1/proxy/malformed"):
        response = requests.get(f"{toy.url}{path}", headers={"x-api-key": DEMO_KEY}, timeout=10)
        assert response.status_code == 502, path
        assert response.json() == {"message": "Internal server error"}


def test_front_body_over_10_mb_answers_413_without_invoking(toy: LocalStack) -> None:
    before = toy.stats.snapshot()["invocations"]

    response = requests.post(
        f"{toy.url}/v1/echo",
        data=b"x" * (10 * 1024 * 1024 + 1),
        headers={"x-api-key": DEMO_KEY},
        timeout=30,
    )

    assert response.status_code == 413
    assert toy.stats.snapshot()["invocations"] == before


# -- resources from the template ---------------------------------------------------------------


def test_resources_table_and_queues_are_created_as_declared(toy: LocalStack) -> None:
    ddb, sqs = toy.client("dynamodb"), toy.client("sqs")
    table = ddb.describe_table(TableName=toy.tables["ToyTable"])["Table"]
    ttl = ddb.describe_time_to_live(TableName=toy.tables["ToyTable"])["TimeToLiveDescription"]
    dlq_arn = sqs.get_queue_attributes(
        QueueUrl=toy.queues["ToyDeadLetterQueue"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    work = sqs.get_queue_attributes(QueueUrl=toy.queues["ToyQueue"], AttributeNames=["All"])

    assert toy.tables["ToyTable"] == f"{toy.stack_name}-ToyTable"
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["by-group"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    assert work["Attributes"]["VisibilityTimeout"] == "2"
    assert json.loads(work["Attributes"]["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": 2,
    }


# -- the SQS pollers ---------------------------------------------------------------------------


def test_pollers_honour_batch_size_and_maximum_concurrency(toy: LocalStack) -> None:
    send(toy, [{"id": str(i), "sleep": 0.3} for i in range(30)])

    assert toy.wait_idle(60)

    sizes = [len(batch) for batch in recorder().batches]
    assert sum(sizes) == 30
    assert max(sizes) == 5  # BatchSize
    assert recorder().max_running["WorkerFunction"] == 3  # ScalingConfig.MaximumConcurrency
    stats = toy.stats.snapshot()
    assert stats["max_concurrency"]["WorkerFunction"] == 3
    assert stats["batch_sizes"]["WorkerFunction"] == sizes
    assert sorted(done_items(toy)) == sorted(str(i) for i in range(30))


def test_pollers_partial_batch_failure_redelivers_only_failed_records(toy: LocalStack) -> None:
    key = uuid.uuid4().hex[:6]
    bodies = [{"id": f"{key}-{i}", "fail": "once" if i in (3, 7) else None} for i in range(10)]
    send(toy, bodies)

    assert toy.wait_idle(60)

    deliveries: dict[str, list[int]] = {}
    for batch in recorder().batches:
        for message_id, receive_count in batch:
            deliveries.setdefault(message_id, []).append(receive_count)
    for i in range(10):
        expected = [1, 2] if i in (3, 7) else [1]
        assert deliveries[f"{key}-{i}"] == expected, i
    done = done_items(toy)
    assert {done[f"{key}-{i}"] for i in (3, 7)} == {2}
    assert recorder().dead == []


def test_pollers_poison_record_is_redriven_to_dead_letter_function(toy: LocalStack) -> None:
    send(toy, [{"id": "poison", "fail": "always"}, {"id": "fine"}])

    assert toy.wait_idle(60)

    poison = [count for batch in recorder().batches for mid, count in batch if mid == "poison"]
    assert poison == [1, 2]  # maxReceiveCount 2, then SQS moved it
    dead = recorder().dead
    assert [d["id"] for d in dead] == ["poison"]
    assert dead[0]["source"].endswith(":" + toy.queues["ToyDeadLetterQueue"].rsplit("/", 1)[1])
    assert "poison" not in done_items(toy)
    assert toy.queue_depth("ToyQueue") == {"visible": 0, "in_flight": 0, "delayed": 0}


# -- schedules ---------------------------------------------------------------------------------


def test_fire_schedule_delivers_a_scheduled_event(toy: LocalStack) -> None:
    outcome = toy.fire_schedule("TickFunction")

    assert outcome.ok
    (event,) = recorder().events
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["account"] == "000000000000"
    assert event["resources"] == [
        f"arn:aws:events:us-east-1:000000000000:rule/{toy.stack_name}-TickFunctionTick"
    ]


def test_timer_fires_rate_schedules_on_time(toy: LocalStack) -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    began = time.monotonic()

    def fast_clock() -> dt.datetime:  # one real second is a simulated minute
        return start + dt.timedelta(minutes=(time.monotonic() - began))

    scheduler = Scheduler(toy.schedules, toy.functions, clock=fast_clock)
    scheduler.start()
    time.sleep(3.5)
    scheduler.stop()

    events = recorder().events
    assert len(events) == 3  # rate(1 minute): at 1, 2 and 3 simulated minutes
    assert all(e["detail-type"] == "Scheduled Event" for e in events)


def test_next_fire_reads_rate_and_cron_expressions() -> None:
    t0 = dt.datetime(2026, 3, 2, 10, 7, 30, tzinfo=dt.UTC)  # a Monday

    assert next_fire("rate(5 minutes)", t0, t0) == t0 + dt.timedelta(minutes=5)
    assert next_fire("rate(1 hour)", t0 + dt.timedelta(minutes=61), t0) == t0 + dt.timedelta(
        hours=2
    )
    assert next_fire("cron(0/15 * * * ? *)", t0, t0) == t0.replace(minute=15, second=0)
    assert next_fire("cron(0 9 ? * MON-FRI *)", t0, t0) == dt.datetime(
        2026, 3, 3, 9, 0, tzinfo=dt.UTC
    )


# -- the real system ---------------------------------------------------------------------------


@pytest.mark.slow
def test_job_of_2000_entities_completes_with_exact_counts(
    local_stack: LocalStack, api: ApiSession, other_api: ApiSession
) -> None:
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    ids = [f"{prefix}-{i:05d}" for i in range(2000)]
    entities = [
        {
            "entity_id": entity_id,
            "attributes": {"spin": 1 if i % 2 else -1, "field": 0.1},
            "neighbours": [
                {"entity_id": ids[(i + 1) % len(ids)], "weight": 0.5},
                {"entity_id": ids[(i + 7) % len(ids)], "weight": -0.25},
            ],
        }
        for i, entity_id in enumerate(ids)
    ]
    for start in (0, 1000):
        put = api.put("/v1/entities", json={"entities": entities[start : start + 1000]})
        assert put.status_code == 200, put.text
        assert put.json()["upserted"] == 1000

    submitted = api.post(
        "/v1/jobs",
        json={
            "prediction_type": "ising",
            "entity_ids": ids,
            "parameters": {"temperature": 2.0, "time_horizon": 1.0},
        },
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    assert submitted.json()["total_items"] == 2000

    deadline = time.monotonic() + 120
    while True:
        status = api.get(f"/v1/jobs/{job_id}")
        assert status.status_code == 200, status.text
        job = status.json()
        if job["status"] not in ("QUEUED", "PROCESSING"):
            break
        assert time.monotonic() < deadline, f"job still {job['status']}: {job['counts']}"
        time.sleep(0.5)

    assert job["status"] == "COMPLETED", job
    assert job["counts"]["total"] == 2000
    assert job["counts"]["succeeded"] == 2000
    assert job["counts"]["failed"] == 0
    assert job["counts"]["pending"] == 0
    assert job["progress"] == 1

    seen: list[str] = []
    token = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if token:
            params["next_token"] = token
        page = api.get(f"/v1/jobs/{job_id}/results", params=params)
        assert page.status_code == 200, page.text
        seen += [row["entity_id"] for row in page.json()["items"]]
        token = page.json().get("next_token")
        if not token:
            break
    assert len(seen) == 2000
    assert set(seen) == set(ids)

    assert other_api.get(f"/v1/jobs/{job_id}").status_code == 404
    assert other_api.get(f"/v1/jobs/{job_id}/results").status_code == 404
