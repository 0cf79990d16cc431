"""The limits fixture must fail exactly where AWS would, or the suite proves nothing."""

from typing import Any

import pytest

from batchpredict.store import dynamo
from tests.support.limits import AwsLimitExceededError


def test_batch_write_of_26_items_is_rejected(aws_env: dict[str, Any]) -> None:
    requests = [
        {"PutRequest": {"Item": {"pk": {"S": "p"}, "sk": {"S": str(i)}}}} for i in range(26)
    ]
    with pytest.raises(AwsLimitExceededError):
        aws_env["ddb"].batch_write_item(RequestItems={aws_env["tables"]["JobsTable"]: requests})


def test_batch_write_helper_splits_into_legal_requests(aws_env: dict[str, Any]) -> None:
    calls = dynamo.batch_write(
        aws_env["ddb"],
        aws_env["tables"]["JobsTable"],
        [{"pk": "p", "sk": str(i)} for i in range(60)],
    )
    assert calls == 3


def test_batch_get_of_101_keys_is_rejected(aws_env: dict[str, Any]) -> None:
    keys = [{"pk": {"S": "p"}, "sk": {"S": str(i)}} for i in range(101)]
    with pytest.raises(AwsLimitExceededError):
        aws_env["ddb"].batch_get_item(RequestItems={aws_env["tables"]["JobsTable"]: {"Keys": keys}})


def test_item_over_400kb_is_rejected(aws_env: dict[str, Any]) -> None:
    with pytest.raises(AwsLimitExceededError):
        aws_env["ddb"].put_item(
            TableName=aws_env["tables"]["JobsTable"],
            Item={"pk": {"S": "p"}, "sk": {"S": "s"}, "x": {"S": "a" * 410_000}},
        )


def test_send_message_batch_of_11_is_rejected(aws_env: dict[str, Any]) -> None:
    entries = [{"Id": str(i), "MessageBody": "x"} for i in range(11)]
    with pytest.raises(AwsLimitExceededError):
        aws_env["sqs"].send_message_batch(QueueUrl=aws_env["work_url"], Entries=entries)


def test_oversized_message_is_rejected(aws_env: dict[str, Any]) -> None:
    with pytest.raises(AwsLimitExceededError):
        aws_env["sqs"].send_message(QueueUrl=aws_env["work_url"], MessageBody="x" * 262_145)


def test_transaction_touching_one_item_twice_is_rejected(aws_env: dict[str, Any]) -> None:
    key = {"pk": {"S": "p"}, "sk": {"S": "s"}}
    with pytest.raises(AwsLimitExceededError):
        aws_env["ddb"].transact_write_items(
            TransactItems=[
                {"Put": {"TableName": aws_env["tables"]["JobsTable"], "Item": key}},
                {"Update": {"TableName": aws_env["tables"]["JobsTable"], "Key": key, "UpdateExpression": "SET a = :a",
                            "ExpressionAttributeValues": {":a": {"S": "1"}}}},
            ]
        )  # fmt: skip
