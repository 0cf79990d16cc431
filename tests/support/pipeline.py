"""Drive the pipeline under moto the way API Gateway and Lambda's SQS event source mapping do.

`Pipeline.api()` invokes the API functions with REST proxy events; `drain()` polls the work
queue, builds SQS events of up to `batch_size` records, invokes the worker, deletes only the
records not in `batchItemFailures`, and lets failed ones come back; dead letters go to the DLQ
function the same way.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from tests.support.handlers import FakeContext, invoke
from tests.support.stack import routes

TENANT_A = "arn:aws:iam::123456789012:user/alice"
TENANT_B = "arn:aws:iam::123456789012:user/bob"


def _match(method: str, path: str) -> tuple[str, str, dict[str, str]]:
    parts = path.strip("/").split("/")
    for (m, resource), function in routes().items():
        rparts = resource.strip("/").split("/")
        if m != method or len(rparts) != len(parts):
            continue
        params = {}
        for r, p in zip(rparts, parts, strict=True):
            if r.startswith("{"):
                params[r[1:-1]] = p
            elif r != p:
                break
        else:
            return function, resource, params
    raise KeyError(f"no route {method} {path}")


def api_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    tenant: str = TENANT_A,
    query: dict[str, Any] | None = None,
    raw_body: str | None = None,
) -> tuple[str, dict[str, Any]]:
    function, resource, params = _match(method, path)
    query = {k: str(v) for k, v in (query or {}).items() if v is not None}
    event = {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {"content-type": "application/json", "Host": "api.example.com"},
        "multiValueHeaders": {"content-type": ["application/json"]},
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} or None,
        "pathParameters": params or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/dev{path}" + (f"?{urlencode(query)}" if query else ""),
            "stage": "dev",
            "requestId": str(uuid.uuid4()),
            "accountId": "123456789012",
            "identity": {
                "accountId": tenant.split(":")[4] if tenant.startswith("arn:") else None,
                "caller": tenant,
                "userArn": tenant,
                "sourceIp": "127.0.0.1",
            },
        },
        "body": raw_body
        if raw_body is not None
        else (json.dumps(body) if body is not None else None),
        "isBase64Encoded": False,
    }
    return function, event


@dataclass
class Response:
    status: int
    body: Any

    def __repr__(self) -> str:
        return f"Response({self.status}, {json.dumps(self.body)[:500]})"


@dataclass
class Pipeline:
    sqs: Any
    work_queue_url: str
    dlq_url: str
    batch_size: int = 10
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    worker_context: Callable[[], FakeContext] = lambda: FakeContext(function_name="worker")
    invocations: int = 0
    deliveries: int = 0

    def api(self, method: str, path: str, **kwargs: Any) -> Response:
        function, event = api_event(method, path, **kwargs)
        result = invoke(function, event)
        body = json.loads(result["body"]) if result.get("body") else None
        return Response(result["statusCode"], body)

    def submit(self, **body: Any) -> Response:
        return self.api("POST", "/v1/jobs", body=body, tenant=body.pop("tenant", TENANT_A))

    def receive(self, queue_url: str, max_messages: int) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, max_messages),
            MessageSystemAttributeNames=["All"],
            VisibilityTimeout=30,
            WaitTimeSeconds=0,  # the template's queues long-poll; a drained queue must answer at once
        )
        return response.get("Messages", [])

    def receive_batch(self, queue_url: str, batch_size: int) -> list[dict[str, Any]]:
        """Up to `batch_size` messages, ten per ReceiveMessage, as the event source mapping
        gathers a batch over its batching window."""
        batch: list[dict[str, Any]] = []
        while len(batch) < batch_size:
            received = self.receive(queue_url, batch_size - len(batch))
            if not received:
                break
            batch.extend(received)
        return batch

    @staticmethod
    def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": hashlib.md5(m["Body"].encode()).hexdigest(),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": queue_arn,
                    "awsRegion": "us-east-1",
                }
                for m in messages
            ]
        }

    def deliver(
        self, function: str, queue_url: str, messages: list[dict[str, Any]], context: FakeContext
    ) -> set[str]:
        """Invoke `function` with the messages; delete the acknowledged ones; return failures."""
        self.invocations += 1
        self.deliveries += len(messages)
        event = self.sqs_event(messages, f"arn:aws:sqs:us-east-1:123456789012:{function}")
        try:
            response = invoke(function, event, context)
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except Exception:
            failed = {m["MessageId"] for m in messages}
        done = [m for m in messages if m["MessageId"] not in failed]
        for i in range(0, len(done), 10):
            self.sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                    for n, m in enumerate(done[i : i + 10])
                ],
            )
        for m in messages:
            if m["MessageId"] in failed:
                # The visibility timeout passing, compressed: the message is visible again now.
                self.sqs.change_message_visibility(
                    QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                )
        return failed

    def drain(self, max_rounds: int = 10_000) -> int:
        """Run worker and DLQ function until both queues are empty; returns rounds run."""
        for round_ in range(max_rounds):
            work = self.receive_batch(self.work_queue_url, self.batch_size)
            if work:
                self.deliver("worker", self.work_queue_url, work, self.worker_context())
                continue
            dead = self.receive(self.dlq_url, 10)
            if dead:
                self.deliver("dlq", self.dlq_url, dead, FakeContext(function_name="dlq"))
                continue
            if self.queue_empty(self.work_queue_url) and self.queue_empty(self.dlq_url):
                return round_
        raise AssertionError("queues did not drain")

    def queue_empty(self, url: str) -> bool:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return all(int(v) == 0 for v in attrs.values())
