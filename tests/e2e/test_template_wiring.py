"""template.yaml drives the local wiring: change the template, and local behaviour changes."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from batchpredict_local import LocalStack, TemplateError
from batchpredict_local.template import parse_yaml
from tests.e2e.conftest import TEMPLATE, TOY_TEMPLATE, ApiSession, recorder

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

MakeTemplate = Callable[[Callable[[dict[str, Any]], None]], Path]


def worker_event(template: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = template["Resources"]["WorkerFunction"]["Properties"]["Events"]["Work"][
        "Properties"
    ]
    return props


def send(stack: LocalStack, count: int, sleep: float) -> None:
    sqs = stack.client("sqs")
    for start in range(0, count, 10):
        sqs.send_message_batch(
            QueueUrl=stack.queues["ToyQueue"],
            Entries=[
                {"Id": str(i), "MessageBody": json.dumps({"id": f"m{start + i}", "sleep": sleep})}
                for i in range(min(10, count - start))
            ],
        )


def test_wiring_batch_size_and_maximum_concurrency_come_from_the_template(
    make_toy_template: MakeTemplate,
) -> None:
    def edit(template: dict[str, Any]) -> None:
        worker_event(template)["BatchSize"] = 3
        worker_event(template)["ScalingConfig"]["MaximumConcurrency"] = 2

    with LocalStack(make_toy_template(edit), schedules=False) as stack:
        recorder().reset()
        send(stack, 24, sleep=0.3)
        assert stack.wait_idle(60)

        sizes = [len(batch) for batch in recorder().batches]
        (source,) = [s for s in stack.sources if s.function == "WorkerFunction"]
        assert (source.batch_size, source.maximum_concurrency) == (3, 2)
        assert sum(sizes) == 24
        assert max(sizes) == 3  # the toy template says 5
        assert recorder().max_running["WorkerFunction"] == 2  # the toy template says 3
        assert stack.stats.snapshot()["source_max_concurrency"]["WorkerFunctionWork"] == 2


def test_wiring_reserved_concurrency_caps_the_function_below_maximum_concurrency(
    make_toy_template: MakeTemplate,
) -> None:
    def edit(template: dict[str, Any]) -> None:
        template["Resources"]["WorkerFunction"]["Properties"]["ReservedConcurrentExecutions"] = 1

    with LocalStack(make_toy_template(edit), schedules=False) as stack:
        recorder().reset()
        send(stack, 15, sleep=0.2)
        assert stack.wait_idle(60)

        assert sum(len(batch) for batch in recorder().batches) == 15
        # MaximumConcurrency 3, ReservedConcurrentExecutions 1
        assert recorder().max_running["WorkerFunction"] == 1


def test_wiring_routes_queues_and_parameters_come_from_the_template(
    make_toy_template: MakeTemplate,
) -> None:
    def edit(template: dict[str, Any]) -> None:
        resources = template["Resources"]
        events = resources["EchoFunction"]["Properties"]["Events"]
        del events["Literal"]
        events["Hello"] = {
            "Type": "Api",
            "Properties": {"RestApiId": {"Ref": "ToyApi"}, "Path": "/v1/hello", "Method": "put"},
        }
        resources["ToyQueue"]["Properties"]["VisibilityTimeout"] = 7
        resources["ToyQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"] = 4

    path = make_toy_template(edit)
    with LocalStack(path, schedules=False, overrides={"Stage": "prod"}) as stack:
        session = ApiSession(stack.url, stack.api_key())
        literal = session.get("/v1/echo/literal").json()
        hello = session.put("/v1/hello")
        old_put = session.put("/v1/echo/x")
        attributes = stack.client("sqs").get_queue_attributes(
            QueueUrl=stack.queues["ToyQueue"], AttributeNames=["All"]
        )["Attributes"]
        session.close()

    assert literal["resource"] == "/v1/echo/{name}"  # the literal route is gone
    assert literal["request_context"]["stage"] == "prod"  # the Stage parameter, overridden
    assert literal["stage_env"] == "prod"  # Globals' variable that Refs it
    assert hello.status_code == 200
    assert hello.json()["resource"] == "/v1/hello"
    assert old_put.status_code == 403
    assert attributes["VisibilityTimeout"] == "7"
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == 4


def test_wiring_functions_that_disagree_on_a_variable_are_refused(
    make_toy_template: MakeTemplate,
) -> None:
    def edit(template: dict[str, Any]) -> None:
        template["Resources"]["EchoFunction"]["Properties"]["Environment"] = {
            "Variables": {"TOY_TABLE": "somewhere-else"}
        }

    threads_before = set(threading.enumerate())
    env_before = dict(os.environ)
    stack = LocalStack(make_toy_template(edit), schedules=False)

    with pytest.raises(TemplateError, match="TOY_TABLE"):
        stack.start()

    assert [t for t in threading.enumerate() if t not in threads_before and t.is_alive()] == []
    assert dict(os.environ) == env_before


def test_wiring_a_template_that_is_not_sam_or_cloudformation_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text("Resources: [not, a, mapping]\n")

    with pytest.raises(TemplateError):
        LocalStack(path).start()


def test_stop_finishes_in_flight_work_and_leaves_no_threads() -> None:
    before = set(threading.enumerate())
    env_before = dict(os.environ)
    stack = LocalStack(TOY_TEMPLATE, schedules=True).start()
    session = ApiSession(stack.url, stack.api_key())
    assert session.get("/v1/echo/x").status_code == 200
    send(stack, 3, sleep=1.0)
    deadline = time.monotonic() + 10
    while recorder().running["WorkerFunction"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert recorder().running["WorkerFunction"] > 0

    stack.stop()
    stack.stop()  # idempotent

    assert recorder().running["WorkerFunction"] == 0
    assert stack.stats.snapshot()["errors"] == {}  # the in-flight batch finished
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert leftover == []
    assert dict(os.environ) == env_before
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{stack.url}/v1/echo/x", timeout=2)
    session.close()


# -- the real template.yaml --------------------------------------------------------------------


def test_real_template_sqs_events_are_wired_as_declared(local_stack: LocalStack) -> None:
    template = parse_yaml(TEMPLATE.read_text())
    declared = {}
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event_id, event in (resource["Properties"].get("Events") or {}).items():
            if event.get("Type") == "SQS":
                declared[f"{logical_id}{event_id}"] = event.get("Properties", {})
    wired = {s.logical_id: s for s in local_stack.sources}

    assert set(wired) == set(declared)
    for logical_id, props in declared.items():
        source = wired[logical_id]
        if isinstance(props.get("BatchSize"), int):
            assert source.batch_size == props["BatchSize"]
        if isinstance(props.get("MaximumBatchingWindowInSeconds"), int):
            assert source.batching_window_seconds == props["MaximumBatchingWindowInSeconds"]
        assert source.report_batch_item_failures == (
            "ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or [])
        )
        scaling = props.get("ScalingConfig", {}).get("MaximumConcurrency")
        if isinstance(scaling, int):
            assert source.maximum_concurrency == scaling


def test_real_template_api_events_are_the_routes(local_stack: LocalStack) -> None:
    template = parse_yaml(TEMPLATE.read_text())
    declared = set()
    for resource in template["Resources"].values():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in (resource["Properties"].get("Events") or {}).values():
            if event.get("Type") == "Api":
                props = event["Properties"]
                declared.add((props["Method"].upper(), props["Path"]))

    assert {(r.method, r.resource) for r in local_stack.routes if r.function} == declared


def test_real_template_environment_refs_resolve_to_the_local_tables_and_queues(
    local_stack: LocalStack,
) -> None:
    template = parse_yaml(TEMPLATE.read_text())
    physical = {**local_stack.tables, **local_stack.queues}
    blocks = [template.get("Globals", {}).get("Function", {}).get("Environment", {})]
    blocks += [
        resource["Properties"].get("Environment", {})
        for resource in template["Resources"].values()
        if resource.get("Type") == "AWS::Serverless::Function"
    ]
    refs = {
        key: value["Ref"]
        for block in blocks
        for key, value in (block.get("Variables") or {}).items()
        if isinstance(value, dict) and value.get("Ref") in physical
    }

    assert refs, "no function variable Refs a table or queue of the template"
    for key, logical_id in refs.items():
        assert local_stack.environment[key] == physical[logical_id]
        assert os.environ[key] == physical[logical_id]


def _gateway_responses(template: dict[str, Any]) -> dict[str, Any]:
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Api":
            responses: dict[str, Any] = resource["Properties"].get("GatewayResponses") or {}
            if responses:
                return responses
    return {}


def _declared_code(responses: dict[str, Any], kind: str) -> str | None:
    spec = responses.get(kind) or responses.get("DEFAULT_4XX")
    if not spec:
        return None
    body = spec["ResponseTemplates"]["application/json"]
    code: str = json.loads(body.replace("$context.error.messageString", '"x"'))["error"]["code"]
    return code


def test_real_template_gateway_responses_shape_the_front_s_own_answers(
    local_stack: LocalStack,
) -> None:
    responses = _gateway_responses(parse_yaml(TEMPLATE.read_text()))
    if not responses:
        pytest.skip("template.yaml declares no GatewayResponses")

    unsigned = requests.get(f"{local_stack.url}/v1/jobs", timeout=10)
    bad_key = requests.get(f"{local_stack.url}/v1/jobs", headers={"x-api-key": "nope"}, timeout=10)
    no_route = requests.get(
        f"{local_stack.url}/v1/nothing-here", headers={"x-api-key": "local-demo-key"}, timeout=10
    )

    for response, kind in (
        (unsigned, "MISSING_AUTHENTICATION_TOKEN"),
        (bad_key, "INVALID_SIGNATURE"),
        (no_route, "MISSING_AUTHENTICATION_TOKEN"),
    ):
        assert response.status_code == 403
        assert response.headers["Content-Type"] == "application/json"
        assert response.json()["error"]["code"] == _declared_code(responses, kind)
