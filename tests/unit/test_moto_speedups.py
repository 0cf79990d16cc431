"""The local stack's moto speedups answer exactly as moto does, without copying whole tables."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models.table import Table

from batchpredict_local import moto_speedups

pytestmark = pytest.mark.usefixtures("plain_moto_env")

TABLE = "speedups"
T = TypeVar("T")


def _plain_and_patched(service: str, scenario: Callable[[Any], T]) -> tuple[T, T]:
    """The scenario's answers from plain moto, then from moto with the speedups installed."""
    answers = []
    for patched in (False, True):
        speedups = moto_speedups.installed() if patched else contextlib.nullcontext()
        with mock_aws(), speedups:
            client = boto3.client(service, region_name="us-east-1")  # type: ignore[call-overload]
            answers.append(scenario(client))
    return answers[0], answers[1]


def _create(client: Any) -> None:
    client.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "gsi_pk", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-gsi",
                "KeySchema": [
                    {"AttributeName": "gsi_pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )


def _item(pk: str, sk: str, n: int) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}, "n": {"N": str(n)}, "gsi_pk": {"S": f"g{n % 2}"}}


def _counter_update(pk: str, by: int, below: int) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": TABLE,
            "Key": {"pk": {"S": pk}, "sk": {"S": "META"}},
            "UpdateExpression": "ADD done :by",
            "ConditionExpression": "attribute_not_exists(done) OR done < :below",
            "ExpressionAttributeValues": {":by": {"N": str(by)}, ":below": {"N": str(below)}},
        }
    }


def _put_new(pk: str, sk: str, n: int) -> dict[str, Any]:
    return {
        "Put": {
            "TableName": TABLE,
            "Item": _item(pk, sk, n),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }


def _scenario(client: Any) -> list[Any]:
    """A run of writes and reads; returns everything moto answered, errors included."""
    answers: list[Any] = []

    def record(call: str, **kwargs: Any) -> None:
        try:
            response = getattr(client, call)(**kwargs)
            response.pop("ResponseMetadata", None)
            answers.append((call, response))
        except ClientError as error:
            answers.append(
                (call, error.response["Error"], error.response.get("CancellationReasons"))
            )

    _create(client)
    for pk in ("job-a", "job-b"):
        client.put_item(TableName=TABLE, Item=_item(pk, "META", 0))
        for i in range(0, 30, 3):
            client.put_item(TableName=TABLE, Item=_item(pk, f"chunk#{i:03d}", i))

    record(
        "transact_write_items",
        TransactItems=[_put_new("job-a", "chunk#100", 1), _counter_update("job-a", 5, 10)],
    )
    # Cancelled: the duplicate chunk fails its condition after the counter and a new item moved.
    record(
        "transact_write_items",
        TransactItems=[
            _counter_update("job-a", 3, 10),
            _put_new("job-a", "chunk#101", 2),
            {
                "Delete": {
                    "TableName": TABLE,
                    "Key": {"pk": {"S": "job-b"}, "sk": {"S": "chunk#003"}},
                }
            },
            _put_new("job-a", "chunk#100", 1),
        ],
    )
    # Cancelled by the counter's condition, after a delete of a whole hash key's last item.
    client.put_item(TableName=TABLE, Item=_item("solo", "only", 7))
    record(
        "transact_write_items",
        TransactItems=[
            {"Delete": {"TableName": TABLE, "Key": {"pk": {"S": "solo"}, "sk": {"S": "only"}}}},
            _counter_update("job-a", 9, 5),
        ],
    )
    record(
        "transact_write_items",
        TransactItems=[_counter_update("job-b", 2, 10), _put_new("job-b", "chunk#200", 4)],
    )
    record(
        "transact_write_items",
        TransactItems=[_counter_update("job-a", 1, 99), _counter_update("job-a", 1, 99)],
    )
    for forward in (True, False):
        record(
            "query",
            TableName=TABLE,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "job-a"}},
            ScanIndexForward=forward,
        )
    start = None
    while True:
        extra = {"ExclusiveStartKey": start} if start else {}
        page = client.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :p AND begins_with(sk, :c)",
            ExpressionAttributeValues={":p": {"S": "job-b"}, ":c": {"S": "chunk#"}},
            Limit=4,
            **extra,
        )
        page.pop("ResponseMetadata", None)
        answers.append(("query page", page))
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    record(
        "query",
        TableName=TABLE,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "nobody"}},
    )
    record(
        "query",
        TableName=TABLE,
        IndexName="by-gsi",
        KeyConditionExpression="gsi_pk = :g",
        ExpressionAttributeValues={":g": {"S": "g1"}},
    )
    scan = client.scan(TableName=TABLE)["Items"]
    answers.append(("scan", sorted(scan, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))))
    return answers


def test_same_answers_as_moto() -> None:
    plain, fast = _plain_and_patched("dynamodb", _scenario)
    assert fast == plain
    cancelled = [a for a in plain if a[0] == "transact_write_items" and len(a) == 3]
    assert len(cancelled) == 3  # two cancelled, one refused: the rollbacks ran


RICH_ITEM = {
    "pk": {"S": "tenant"},
    "sk": {"S": "rich"},
    "x_empty": {"S": ""},
    "n": {"N": "-1.5e3"},
    "x_yes": {"BOOL": False},
    "x_nothing": {"NULL": True},
    "x_names": {"SS": ["a", "b"]},
    "x_numbers": {"NS": ["1", "2.5"]},
    "x_blob": {"B": b"\x00zlib"},
    "x_blobs": {"BS": [b"\x01", b"\x02"]},
    "x_features": {
        "M": {
            "x_degree": {"N": "3"},
            "x_series": {"L": [{"N": "0.1"}, {"N": "0.2"}, {"M": {"x_deep": {"S": "deep"}}}]},
            "x_packed": {"B": b"\xff"},
            "x_none": {"M": {}},
        }
    },
    "x_neighbours": {
        "L": [{"S": "e1"}, {"M": {"x_id": {"S": "e2"}, "x_w": {"N": "0.5"}}}, {"L": []}]
    },
}
PROJECTIONS = (
    "sk",
    "x_features.x_degree, x_neighbours[1].x_w, #n",
    "x_features.x_series[2].x_deep, x_neighbours[0], x_blob, x_missing",
    "x_features, x_names, x_numbers, x_yes, x_nothing, x_empty",
    "x_neighbours[7], x_features.x_nope.x_deeper",
    "sk, #n, x_blobs, x_names, x_neighbours",
)


def _reads(client: Any) -> list[Any]:
    """Items of every attribute type read whole and through projections."""
    _create(client)
    client.put_item(TableName=TABLE, Item=RICH_ITEM)
    client.put_item(TableName=TABLE, Item=_item("tenant", "plain", 3))
    keys = [{"pk": {"S": "tenant"}, "sk": {"S": sk}} for sk in ("rich", "plain", "ghost")]
    answers: list[Any] = []
    for projection in (None, *PROJECTIONS):
        extra: dict[str, Any] = {}
        if projection:
            extra["ProjectionExpression"] = projection
            if "#n" in projection:
                extra["ExpressionAttributeNames"] = {"#n": "n"}
        batch = client.batch_get_item(RequestItems={TABLE: {"Keys": keys, **extra}})
        answers.append(batch["Responses"])
        answers.append(client.get_item(TableName=TABLE, Key=keys[0], **extra).get("Item"))
        answers.append(
            client.query(
                TableName=TABLE,
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": "tenant"}},
                **extra,
            )["Items"]
        )
    for forward in (True, False):  # a range read a page at a time (the existence check's)
        request: dict[str, Any] = {
            "TableName": TABLE,
            "KeyConditionExpression": "pk = :p AND sk BETWEEN :a AND :z",
            "ExpressionAttributeValues": {
                ":p": {"S": "tenant"},
                ":a": {"S": "a"},
                ":z": {"S": "z"},
            },
            "ProjectionExpression": "pk, sk, n",
            "ScanIndexForward": forward,
            "Limit": 1,
        }
        while True:
            page = client.query(**request)
            answers.append([page["Items"], page["ScannedCount"], page.get("LastEvaluatedKey")])
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    for duplicated in (
        lambda: client.batch_get_item(RequestItems={TABLE: {"Keys": [keys[0], keys[1], keys[0]]}}),
        lambda: client.batch_write_item(
            RequestItems={
                TABLE: [{"PutRequest": {"Item": _item("tenant", "twice", 1)}} for _ in range(2)]
            }
        ),
    ):
        with pytest.raises(ClientError) as refused:
            duplicated()
        answers.append(refused.value.response["Error"])
    return answers


def test_reads_of_every_attribute_type_same_as_moto() -> None:
    plain, fast = _plain_and_patched("dynamodb", _reads)
    assert fast == plain
    assert plain[1]["x_blob"] == {"B": b"\x00zlib"}  # whole items carry every type back
    assert plain[1]["x_features"]["M"]["x_series"]["L"][2] == {"M": {"x_deep": {"S": "deep"}}}


def _receives(sqs: Any, computed: list[Any]) -> tuple[list[Any], int]:
    """Receives from a queue whose second message has outlived the retention period, and how
    many times they computed the queue's attributes."""
    from moto.sqs.models import sqs_backends

    url = sqs.create_queue(QueueName="retention", Attributes={"MessageRetentionPeriod": "60"})[
        "QueueUrl"
    ]
    for i in range(4):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
    account = boto3.client("sts", region_name="us-east-1").get_caller_identity()["Account"]
    queue = sqs_backends[account]["us-east-1"].queues["retention"]
    queue._messages[1].sent_timestamp -= 120_000  # sent two minutes ago
    computed.clear()
    bodies = []
    for _ in range(3):
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        bodies.append(sorted(m["Body"] for m in received.get("Messages", [])))
    return bodies, len(computed)


def test_receives_same_as_moto_without_computing_queue_attributes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto.sqs.models import Queue

    computed: list[Any] = []
    every_attribute = Queue.attributes
    monkeypatch.setattr(
        Queue, "attributes", property(lambda q: computed.append(q) or every_attribute.fget(q))
    )
    (plain, plain_computed), (fast, fast_computed) = _plain_and_patched(
        "sqs", lambda sqs: _receives(sqs, computed)
    )
    assert plain_computed >= 9  # moto's own: every attribute, thrice per message received
    assert fast == plain
    assert plain[0] == ["m0"]  # moto stops a receive at a message past its retention period
    assert fast_computed == 0


def _queue_counts(sqs: Any) -> list[Any]:
    """A queue's counts and receives with messages visible, delayed and in flight."""
    url = sqs.create_queue(QueueName="counts")["QueueUrl"]
    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(5)]
    )
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    in_flight = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, VisibilityTimeout=60)
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesDelayed",
        "ApproximateNumberOfMessagesNotVisible",
    ]
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    rest = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [
        counts,
        len(in_flight["Messages"]),
        sorted(m["Body"] for m in in_flight["Messages"] + rest["Messages"]),
    ]


def test_queue_counts_same_as_moto() -> None:
    plain, fast = _plain_and_patched("sqs", _queue_counts)
    assert fast == plain
    assert plain[0] == {
        "ApproximateNumberOfMessages": "3",
        "ApproximateNumberOfMessagesDelayed": "1",
        "ApproximateNumberOfMessagesNotVisible": "2",
    }
    assert plain[2] == ["m0", "m1", "m2", "m3", "m4"]  # the delayed one is not given yet


@pytest.fixture
def tables_refuse_copies() -> Iterator[None]:
    def refuse(self: Table, memo: Any) -> Table:
        raise AssertionError("a whole table was copied")

    Table.__deepcopy__ = refuse  # type: ignore[attr-defined]
    try:
        yield
    finally:
        del Table.__deepcopy__  # type: ignore[attr-defined]


def test_transactions_copy_items_not_tables(tables_refuse_copies: None) -> None:
    with mock_aws(), moto_speedups.installed():
        client = boto3.client("dynamodb", region_name="us-east-1")
        _create(client)
        client.transact_write_items(
            TransactItems=[_put_new("job-a", "chunk#000", 1), _counter_update("job-a", 1, 5)]
        )
        with pytest.raises(ClientError, match="TransactionCanceled"):
            client.transact_write_items(
                TransactItems=[_counter_update("job-a", 1, 5), _put_new("job-a", "chunk#000", 1)]
            )
        item = client.get_item(TableName=TABLE, Key={"pk": {"S": "job-a"}, "sk": {"S": "META"}})[
            "Item"
        ]
        assert item["done"] == {"N": "1"}


def test_installed_is_undone() -> None:
    from moto import backends
    from moto.core.serialize import BaseJSONSerializer
    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.responses import DynamoHandler
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    from moto.sqs.models import Queue, SQSBackend

    def current() -> tuple[Any, ...]:
        return (
            models.DynamoDBBackend.transact_write_items,
            Table.query,
            backends.list_of_moto_modules,
            DomainDispatcherApplication.get_backend_for_host,
            Item.project,
            BaseJSONSerializer._serialize_type_structure,
            SQSBackend.is_message_valid_based_on_retention_period,
            Queue.messages,
            Queue.approximate_number_of_messages_delayed,
            Queue.approximate_number_of_messages_not_visible,
            DynamoHandler._contains_duplicates,
            DynamoHandler.dynamodb_backend,
        )

    before = current()
    with moto_speedups.installed():
        assert all(now is not then for now, then in zip(current(), before, strict=True))
        assert list(backends.list_of_moto_modules()) == list(before[2]())
    assert current() == before
