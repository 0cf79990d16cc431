"""Shared fixtures: a moto account with the stack's tables and queues, held to AWS's limits."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from batchpredict import aws, store
from tests.support.limits import enforce_aws_limits
from tests.support.pipeline import Pipeline

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "BatchPredict")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "batchpredict")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fault-seeds",
        type=int,
        default=int(os.environ.get("FAULT_SEEDS", "0")) or None,
        help="how many seeds the fault-injection suite runs (default: its CI share)",
    )


TABLES = {"JOBS_TABLE": "jobs", "ENTITIES_TABLE": "entities", "CACHE_TABLE": "cache"}


def _create_table(ddb: Any, name: str, gsi: bool) -> None:
    spec: dict[str, Any] = {
        "TableName": name,
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if gsi:
        spec["AttributeDefinitions"] += [
            {"AttributeName": "gsi1pk", "AttributeType": "S"},
            {"AttributeName": "gsi1sk", "AttributeType": "S"},
            {"AttributeName": "sweep_pk", "AttributeType": "S"},
            {"AttributeName": "sweep_sk", "AttributeType": "S"},
        ]
        spec["GlobalSecondaryIndexes"] = [
            {
                "IndexName": "by-tenant",
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": "sweep",
                "KeySchema": [
                    {"AttributeName": "sweep_pk", "KeyType": "HASH"},
                    {"AttributeName": "sweep_sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
        ]
    ddb.create_table(**spec)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A fresh moto account with the tables and queues, and the settings pointing at them."""
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("RETRY_BASE_DELAY_SECONDS", "0")
    with mock_aws():
        store.reset()
        ddb = enforce_aws_limits(aws.client("dynamodb"))
        sqs = enforce_aws_limits(aws.client("sqs"))
        for env, name in TABLES.items():
            _create_table(ddb, name, gsi=name == "jobs")
            monkeypatch.setenv(env, name)
        parking_url = sqs.create_queue(QueueName="parking")["QueueUrl"]
        monkeypatch.setenv("PARKING_QUEUE_URL", parking_url)
        dlq_url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        work_url = sqs.create_queue(
            QueueName="work",
            Attributes={
                "VisibilityTimeout": "720",
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}),
            },
        )["QueueUrl"]
        monkeypatch.setenv("WORK_QUEUE_URL", work_url)
        boto3.client("events").list_event_buses()
        store.reset()
        # the stores rebuild their clients from the cache: keep the limit hooks on them
        enforce_aws_limits(aws.client("dynamodb"))
        enforce_aws_limits(aws.client("sqs"))
        yield {
            "sqs": aws.client("sqs"),
            "ddb": aws.client("dynamodb"),
            "work_url": work_url,
            "dlq_url": dlq_url,
            "parking_url": parking_url,
        }
        store.reset()


@pytest.fixture
def pipeline(aws_env: dict[str, Any]) -> Pipeline:
    return Pipeline(aws_env["sqs"], aws_env["work_url"], aws_env["dlq_url"])
