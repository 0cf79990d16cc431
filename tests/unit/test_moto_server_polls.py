"""The local moto server's emulated long poll asks moto again only when a message may be there."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws

from batchpredict_local.moto_server import _certainly_empty

pytestmark = pytest.mark.usefixtures("plain_moto_env")

AUTH = "AWS4-HMAC-SHA256 Credential=testing/20261124/us-east-1/sqs/aws4_request, SignedHeaders=host"


def _environ() -> dict[str, Any]:
    return {"HTTP_AUTHORIZATION": AUTH}


def test_empty_queue_is_certainly_empty_until_a_message_is_visible() -> None:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="polls")["QueueUrl"]
        request = {"QueueUrl": url}
        assert _certainly_empty(_environ(), request)

        sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
        assert _certainly_empty(_environ(), request)  # delayed: nothing to give yet

        sqs.send_message(QueueUrl=url, MessageBody="now")
        assert not _certainly_empty(_environ(), request)

        sqs.receive_message(QueueUrl=url, VisibilityTimeout=60)
        assert _certainly_empty(_environ(), request)  # in flight: invisible


def test_anything_unexpected_means_ask_moto() -> None:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="polls")["QueueUrl"]
        assert not _certainly_empty({}, {"QueueUrl": url})  # unsigned
        assert not _certainly_empty(_environ(), {"QueueUrl": url + "-missing"})
        assert not _certainly_empty(_environ(), {})
