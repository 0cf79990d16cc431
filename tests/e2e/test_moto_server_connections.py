"""The local stack's moto server keeps a client's connection open from one call to the next.

Werkzeug would close it after every answer; each AWS call of the local stack then paid a TCP
connect and a new server thread. Every kind of answer must leave the connection usable: items,
errors, S3 HEADs (a length but no body), bodiless PUTs and empty long polls.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from batchpredict_local.stack import _SharedMoto


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    url = _SharedMoto.acquire(0)
    try:
        yield url
    finally:
        _SharedMoto.release()


@pytest.fixture
def connections(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """The connections urllib3 opens (and re-opens after a server closed one) meanwhile."""
    opened: list[str] = []

    class Tap(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if "Starting new HTTP connection" in message or "Resetting dropped" in message:
                opened.append(message)

    tap = Tap(logging.DEBUG)
    logger = logging.getLogger("urllib3.connectionpool")
    level = logger.level
    logger.addHandler(tap)
    logger.setLevel(logging.DEBUG)
    try:
        yield opened
    finally:
        logger.removeHandler(tap)
        logger.setLevel(level)


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "max_attempts": 1}),
    )


def test_moto_server_keeps_one_connection_per_client_for_every_kind_of_answer(
    endpoint: str, connections: list[str]
) -> None:
    ddb, sqs, s3 = (_client(name, endpoint) for name in ("dynamodb", "sqs", "s3"))
    ddb.create_table(
        TableName="keepalive",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    queue = sqs.create_queue(QueueName="keepalive")["QueueUrl"]
    s3.create_bucket(Bucket="keepalive")  # a PUT without a body

    for i in range(10):
        ddb.put_item(TableName="keepalive", Item={"pk": {"S": f"k{i}"}})
        assert ddb.get_item(TableName="keepalive", Key={"pk": {"S": f"k{i}"}})["Item"]
        with pytest.raises(ClientError, match="ResourceNotFound"):
            ddb.get_item(TableName="missing", Key={"pk": {"S": "x"}})
        sqs.send_message(QueueUrl=queue, MessageBody=f"m{i}")
        received = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"]
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=received[0]["ReceiptHandle"])
        s3.put_object(Bucket="keepalive", Key=f"o{i}", Body=b"x" * (i * 1000))
        assert s3.head_object(Bucket="keepalive", Key=f"o{i}")["ContentLength"] == i * 1000
        assert s3.get_object(Bucket="keepalive", Key=f"o{i}")["Body"].read() == b"x" * (i * 1000)
    assert "Messages" not in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)

    assert len(connections) == 3, connections  # one per client, each kept for all its calls
