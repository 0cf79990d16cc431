"""Shared fixtures: a moto account with the stack's tables and queues, held to AWS's limits."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from batchpredict import aws, store
from tests.support.limits import enforce_aws_limits
from tests.support.pipeline import Pipeline
from tests.support.stack import provision

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


# Quiet, untraced handlers in tests; everything else comes from template.yaml.
TEST_ENVIRONMENT = {
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "RETRY_BASE_DELAY_SECONDS": "0",
}


@pytest.fixture
def plain_moto_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3 reaches the in-process moto, even after a local stack in this worker set its endpoint."""
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.fixture
def aws_env(plain_moto_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A fresh moto account holding template.yaml's tables and queues, settings pointing at them."""
    with mock_aws():
        store.reset()
        clients = {name: boto3.client(name) for name in ("dynamodb", "sqs", "sns", "s3", "events")}
        stack = provision(clients)
        for name, value in {**stack.environment, **TEST_ENVIRONMENT}.items():
            monkeypatch.setenv(name, value)
        store.reset()
        # The stores use these cached clients: hold them to AWS's real limits.
        enforce_aws_limits(aws.client("dynamodb"))
        enforce_aws_limits(aws.client("sqs"))
        yield {
            "sqs": aws.client("sqs"),
            "ddb": aws.client("dynamodb"),
            "work_url": stack.queues["WorkQueue"],
            "dlq_url": stack.queues["DeadLetterQueue"],
            "parking_url": stack.queues["ParkingQueue"],
            "tables": stack.tables,
        }
        store.reset()


@pytest.fixture
def pipeline(aws_env: dict[str, Any]) -> Pipeline:
    return Pipeline(aws_env["sqs"], aws_env["work_url"], aws_env["dlq_url"])
