"""Low-level DynamoDB helpers: typed (de)serialisation and batch calls within the real limits.

The low-level client is used rather than the resource layer: it is faster, and it keeps every
request explicit (the benchmarks count them).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer

from batchpredict.constants import DDB_BATCH_GET_MAX, DDB_BATCH_WRITE_MAX

Item = dict[str, Any]
Key = dict[str, Any]

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
_MAX_UNPROCESSED_ROUNDS = 8


def _to_dynamo_value(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {k: _to_dynamo_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_dynamo_value(v) for v in value]
    return value


def _from_dynamo_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo_value(v) for v in value]
    if isinstance(value, Binary):
        return bytes(value)  # type: ignore[call-overload]  # Binary defines __bytes__; stubs omit it
    if isinstance(value, set):
        return {_from_dynamo_value(v) for v in value}
    return value


def serialize(item: Mapping[str, Any]) -> Item:
    return {k: _serializer.serialize(_to_dynamo_value(v)) for k, v in item.items() if v is not None}


def deserialize(item: Mapping[str, Any]) -> Item:
    return {k: _from_dynamo_value(_deserializer.deserialize(v)) for k, v in item.items()}


def values(mapping: Mapping[str, Any]) -> Item:
    """ExpressionAttributeValues from plain Python values."""
    return {k: _serializer.serialize(_to_dynamo_value(v)) for k, v in mapping.items()}


def chunked(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


def _backoff(round_: int) -> None:
    time.sleep(random.uniform(0, min(1.0, 0.02 * 2**round_)))


def batch_get(
    client: Any,
    table: str,
    keys: Sequence[Key],
    *,
    projection: str | None = None,
    names: Mapping[str, str] | None = None,
    consistent: bool = False,
    parallel: int = 1,
) -> list[Item]:
    """Every item that exists among `keys` (plain-valued keys), deserialised, in no set order.

    Requests of at most 100 keys; UnprocessedKeys are retried with jittered backoff. With
    `parallel` > 1 the requests run on that many threads.
    """
    unique = list({tuple(sorted(k.items())): k for k in keys}.values())
    if not unique:
        return []

    def fetch(group: Sequence[Key]) -> list[Item]:
        request: dict[str, Any] = {
            "Keys": [serialize(k) for k in group],
            "ConsistentRead": consistent,
        }
        if projection:
            request["ProjectionExpression"] = projection
        if names:
            request["ExpressionAttributeNames"] = dict(names)
        found: list[Item] = []
        pending: dict[str, Any] = {table: request}
        for round_ in range(_MAX_UNPROCESSED_ROUNDS):
            response = client.batch_get_item(RequestItems=pending)
            found.extend(deserialize(i) for i in response.get("Responses", {}).get(table, []))
            pending = response.get("UnprocessedKeys") or {}
            if not pending:
                return found
            _backoff(round_)
        raise RuntimeError(f"BatchGetItem on {table} left keys unprocessed")

    groups = list(chunked(unique, DDB_BATCH_GET_MAX))
    if parallel > 1 and len(groups) > 1:
        with ThreadPoolExecutor(max_workers=min(parallel, len(groups))) as pool:
            return [item for part in pool.map(fetch, groups) for item in part]
    return [item for group in groups for item in fetch(group)]


def batch_write(
    client: Any,
    table: str,
    puts: Iterable[Mapping[str, Any]] = (),
    deletes: Iterable[Key] = (),
) -> int:
    """Put and delete items in requests of at most 25; returns how many requests it made."""
    requests = [{"PutRequest": {"Item": serialize(i)}} for i in puts]
    requests += [{"DeleteRequest": {"Key": serialize(k)}} for k in deletes]
    calls = 0
    for group in chunked(requests, DDB_BATCH_WRITE_MAX):
        pending: dict[str, Any] = {table: list(group)}
        for round_ in range(_MAX_UNPROCESSED_ROUNDS):
            calls += 1
            response = client.batch_write_item(RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                break
            _backoff(round_)
        else:
            raise RuntimeError(f"BatchWriteItem on {table} left items unprocessed")
    return calls


def query_all(client: Any, **request: Any) -> Iterator[Item]:
    """Every item of a Query, following LastEvaluatedKey."""
    while True:
        response = client.query(**request)
        yield from (deserialize(i) for i in response.get("Items", []))
        last = response.get("LastEvaluatedKey")
        if not last:
            return
        request["ExclusiveStartKey"] = last


def is_conditional_failure(error: Exception) -> bool:
    return getattr(error, "response", {}).get("Error", {}).get("Code") == (
        "ConditionalCheckFailedException"
    )
