"""Make moto as strict as AWS where it is not: the limits a real deployment would hit.

Registered as botocore `before-call` hooks on the clients the code under test uses, so a call
that AWS would reject fails the test with the limit it broke.
"""

from __future__ import annotations

from typing import Any

from batchpredict import constants as c


class AwsLimitExceededError(AssertionError):
    pass


def _size(value: dict[str, Any]) -> int:
    """DynamoDB's item size: attribute names plus values (close enough for a limit check)."""
    total = 0
    for kind, raw in value.items():
        if kind in ("S", "N"):
            total += len(str(raw).encode())
        elif kind == "B":
            total += len(raw) if isinstance(raw, bytes | bytearray) else len(str(raw))
        elif kind == "BOOL" or kind == "NULL":
            total += 1
        elif kind in ("SS", "NS", "BS"):
            total += sum(len(str(v).encode()) for v in raw)
        elif kind == "L":
            total += 3 + sum(_size(v) + 1 for v in raw)
        elif kind == "M":
            total += 3 + sum(len(k) + _size(v) + 1 for k, v in raw.items())
    return total


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + _size(value) for name, value in item.items())


def _check_item(item: dict[str, Any], where: str) -> None:
    size = item_size(item)
    if size > c.DDB_ITEM_MAX_BYTES:
        raise AwsLimitExceededError(f"{where}: item of {size} bytes exceeds 400 KB")


def _dynamodb_hook(params: dict[str, Any], model: Any, **_: Any) -> None:
    op = model.name
    if op == "BatchWriteItem":
        requests = [r for rs in params["RequestItems"].values() for r in rs]
        if len(requests) > c.DDB_BATCH_WRITE_MAX:
            raise AwsLimitExceededError(f"BatchWriteItem with {len(requests)} requests (max 25)")
        for r in requests:
            if "PutRequest" in r:
                _check_item(r["PutRequest"]["Item"], op)
    elif op == "BatchGetItem":
        keys = sum(len(t["Keys"]) for t in params["RequestItems"].values())
        if keys > c.DDB_BATCH_GET_MAX:
            raise AwsLimitExceededError(f"BatchGetItem with {keys} keys (max 100)")
    elif op == "TransactWriteItems":
        actions = params["TransactItems"]
        if len(actions) > c.DDB_TRANSACT_MAX:
            raise AwsLimitExceededError(f"TransactWriteItems with {len(actions)} actions (max 100)")
        targets = []
        for action in actions:
            ((kind, body),) = action.items()
            if kind == "Put":
                _check_item(body["Item"], op)
                key = (body["Item"]["pk"]["S"], body["Item"]["sk"]["S"])
            else:
                key = (body["Key"]["pk"]["S"], body["Key"]["sk"]["S"])
            targets.append((body["TableName"], key))
        if len(set(targets)) != len(targets):
            raise AwsLimitExceededError("TransactWriteItems touches one item twice")
    elif op == "PutItem":
        _check_item(params["Item"], op)


def _sqs_hook(params: dict[str, Any], model: Any, **_: Any) -> None:
    op = model.name
    if op == "SendMessageBatch":
        entries = params["Entries"]
        if len(entries) > c.SQS_BATCH_MAX:
            raise AwsLimitExceededError(f"SendMessageBatch with {len(entries)} entries (max 10)")
        total = sum(len(e["MessageBody"].encode()) for e in entries)
        if total > c.SQS_MESSAGE_MAX_BYTES:
            raise AwsLimitExceededError(f"SendMessageBatch payload {total} bytes (max 256 KB)")
        for e in entries:
            if not 0 <= e.get("DelaySeconds", 0) <= c.SQS_MAX_DELAY_SECONDS:
                raise AwsLimitExceededError("DelaySeconds outside 0..900")
    elif op == "SendMessage":
        if len(params["MessageBody"].encode()) > c.SQS_MESSAGE_MAX_BYTES:
            raise AwsLimitExceededError("SendMessage body over 256 KB")
        if not 0 <= params.get("DelaySeconds", 0) <= c.SQS_MAX_DELAY_SECONDS:
            raise AwsLimitExceededError("DelaySeconds outside 0..900")
    elif op == "ReceiveMessage" and params.get("MaxNumberOfMessages", 1) > c.SQS_BATCH_MAX:
        raise AwsLimitExceededError("ReceiveMessage of more than 10 messages")
    elif op == "DeleteMessageBatch" and len(params["Entries"]) > c.SQS_BATCH_MAX:
        raise AwsLimitExceededError("DeleteMessageBatch with more than 10 entries")


def enforce_aws_limits(client: Any) -> Any:
    service = client.meta.service_model.service_name
    hook = {"dynamodb": _dynamodb_hook, "sqs": _sqs_hook}.get(service)
    if hook is not None:
        client.meta.events.register(f"provide-client-params.{service}.*", _wrap(hook))
    return client


def _wrap(hook: Any) -> Any:
    def handler(params: dict[str, Any], model: Any, **kwargs: Any) -> None:
        hook(params, model, **kwargs)

    return handler
