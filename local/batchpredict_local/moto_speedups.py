"""Costs of moto that grow with the table or are paid again on every request, removed.

Applied by the local stack's moto server (batchpredict_local.moto_server) and, for the
duration of a run, by the benchmarks' in-process moto (bench/moto_env.py); never to the tests'
in-process moto. Each replacement answers every request exactly as moto does; it only
stops moto from touching a whole table or queue to answer a request about a few items, from
recomputing what cannot change, or from taking a generic path to an answer it already holds:

- `TransactWriteItems` backed up every table it names with `copy.deepcopy` (once per item of
  the transaction) so that it could roll back. With a 100,000-item job that is thousands of
  chunk-result items copied 20 times per worker batch: gigabytes, and most of the time.
  Here the backup is a deep copy of the items the transaction names (at most 100), put back
  the same way if the transaction is cancelled.
- `Query` on a table's own key sorted every item of the table, then kept those with the hash
  key asked for, then sized each of them before testing the sort-key condition. Here it sees
  only that hash key's items whose sort key meets the condition (moto still sorts and pages
  them; unpatched, moto could end a page early on the size of an item it was not going to
  return). Queries on an index still scan the table, as moto does; the service runs those once a
  minute (the sweep) or when a client lists jobs. A query also sized each item twice and
  deep-copied every whole item before projecting it; here an item is sized once per query, and
  a projected query copies only what it projects. A keys-only query of 1,000 entities (the
  submission's existence check) went from 59 ms to 36 ms.
- A read with a `ProjectionExpression` turned the whole item into plain Python once per path
  of the projection (deep copies included) to pick a few attributes out of it. Here each path
  converts only the attribute it names, and a top-level string is copied as it is. A keys-only
  `BatchGetItem` of 100 entities went from about 36 ms to 7 ms.
- Every item moto returned went through its generic response serializer attribute value by
  attribute value, trying several spellings of every member name of `AttributeValue`. Here an
  attribute value already in DynamoDB's JSON form (strings, numbers, booleans, nulls, sets,
  maps and lists of those) is written as it is; binary values and anything unexpected still go
  through moto's serializer.
- `ReceiveMessage` checked each message it returned against the queue's retention period by
  asking for the queue's attributes, which computes all of them, three counts of the queue's
  messages among them, three times over: a receive of 10 messages from a queue of 4,000 chunk
  messages looked at 360,000 messages. Here the check reads the retention period itself.
- Every `SendMessage` computed all the queue's attributes to read one setting: three counts
  of its messages, each message asked for its visibility through a datetime clock reading. A
  `SendMessageBatch` of 10 into a queue of 4,000 chunk messages took 329 ms. Here a count reads
  the clock once per pass: 9 ms (and 2.8 ms instead of 9.1 ms into a queue of 50).
- `BatchGetItem` looked for duplicate keys by comparing each key with every key before it, and
  looked its backend up again for every key. Here duplicates are found with a set, and a
  request's handler looks its backend up once.
- Every request listed moto's package directory (a `stat` per service) and tried the URL
  patterns of every service to find its backend. Here the backend of a host is found once.

Measured in bench/RESULTS.md (the scale part and the findings) and kept honest by
tests/unit/test_moto_speedups.py, which runs the same requests against patched and unpatched
moto and compares the answers.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

_applied = False
_LIST_ELEMENT = re.compile(r"(.+)\[(\d+)\]$")  # moto's own test for `name[i]`
_lock = threading.Lock()


class _CopyModule:
    """A `copy` module for one part of moto whose deep copy of a `kind` is `shallow(value)`.

    Everything else, other deep copies included, is the real module's.
    """

    def __init__(self, kind: type, shallow: Callable[[Any], Any]) -> None:
        self._kind = kind
        self._shallow = shallow

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        if isinstance(value, self._kind):
            return self._shallow(value)
        return copy.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


@contextlib.contextmanager
def _copy_module(module: Any, stand_in: _CopyModule) -> Iterator[None]:
    """`module.copy` is `stand_in` for the duration of the block."""
    real = module.copy
    module.copy = stand_in
    try:
        yield
    finally:
        module.copy = real


def _key_of(backend: Any, op_type: str, op: dict[str, Any]) -> tuple[Any, Any, Any] | None:
    """(table, hash value, range value) of one transaction item, or None if moto will refuse it."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    table = backend.tables.get(op.get("TableName"))
    if table is None:
        return None
    attrs = op.get("Item") if op_type == "Put" else op.get("Key")
    if not isinstance(attrs, dict) or table.hash_key_attr not in attrs:
        return None
    hash_value = DynamoType(attrs[table.hash_key_attr])
    range_value = None
    if table.range_key_attr is not None:
        if table.range_key_attr not in attrs:
            return None
        range_value = DynamoType(attrs[table.range_key_attr])
    return table, hash_value, range_value


def _journal(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    entries = []
    for transact_item in transact_items:
        if not isinstance(transact_item, dict) or len(transact_item) != 1:
            continue
        op_type, op = next(iter(transact_item.items()))
        if not isinstance(op, dict):
            continue
        key = _key_of(backend, op_type, op)
        if key is None:
            continue
        table, hash_value, range_value = key
        before = table.get_item(hash_value, range_value)
        entries.append((table, hash_value, range_value, copy.deepcopy(before)))
    return entries


def _restore(entries: list[tuple[Any, ...]]) -> None:
    for table, hash_value, range_value, before in reversed(entries):
        if range_value is not None:
            rows = table.items[hash_value]
            if before is None:
                rows.pop(range_value, None)
                if not rows:
                    table.items.pop(hash_value, None)
            else:
                rows[range_value] = before
        elif before is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = before


def _patch_transactions() -> Callable[[], None]:
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    original = models.DynamoDBBackend.transact_write_items
    # moto's rollback assigns its "backup" of each table back into `self.tables`: with the
    # table as its own backup, that puts back the same object, and the journal rolls back.
    tables_as_they_are = _CopyModule(Table, lambda table: table)

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        entries = _journal(self, transact_items)
        try:
            with _copy_module(models, tables_as_they_are):
                original(self, transact_items)
        except BaseException:
            _restore(entries)
            raise

    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    return lambda: setattr(models.DynamoDBBackend, "transact_write_items", original)


@contextlib.contextmanager
def _only_candidates(
    table: Any,
    hash_key: Any,
    range_comparison: str | None,
    range_objs: Any,
    exclusive_start_key: dict[str, Any] | None,
    forward: bool,
) -> Iterator[None]:
    """Show moto's query code a table holding only the items the query can return.

    Those are the hash key's items whose sort key meets the condition: moto tests the same
    condition on the same values (`DynamoType.compare`) and drops the others unreturned. Where
    the sort key is a string, they are also shown in order, and only those after the page's
    ExclusiveStartKey: moto sorts them anyway (now a pass over sorted items), and skips those
    up to the start key one comparison at a time.
    """
    from moto.dynamodb.comparisons import get_comparison_func

    everything = table.items
    view = type(everything)(everything.default_factory)
    rows = everything.get(hash_key)
    if rows is not None:
        if range_comparison and table.range_key_attr is not None:
            # `DynamoType.compare`, its lookups done once rather than once per item
            meets = get_comparison_func(range_comparison)
            bounds = [bound.cast_value for bound in range_objs]
            if all(bound.type == "S" for bound in range_objs):
                rows = _strings_in_order(
                    [(k, v) for k, v in rows.items() if k.type == "S" and meets(k.value, *bounds)],
                    (exclusive_start_key or {}).get(table.range_key_attr),
                    forward,
                )
            else:
                rows = {k: v for k, v in rows.items() if meets(k.cast_value, *bounds)}
        view[hash_key] = rows
    table.items = view
    try:
        yield
    finally:
        table.items = everything


def _strings_in_order(rows: list[tuple[Any, Any]], start: Any, forward: bool) -> dict[Any, Any]:
    """`rows` (string sort keys) in the order the query reads them, after `start` ({"S": ...})."""
    if isinstance(start, dict) and isinstance(start.get("S"), str):
        after = start["S"]
        rows = [(k, v) for k, v in rows if (k.value > after if forward else k.value < after)]
    return dict(sorted(rows, key=lambda row: row[0].value, reverse=not forward))


def _patch_query() -> Callable[[], None]:
    from moto.dynamodb.models.table import Table

    original = Table.query

    def query(
        self: Any,
        hash_key: Any,
        range_comparison: Any,
        range_objs: Any,
        limit: Any,
        exclusive_start_key: Any,
        scan_index_forward: Any,
        projection_expressions: Any,
        index_name: str | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        arguments = (
            hash_key,
            range_comparison,
            range_objs,
            limit,
            exclusive_start_key,
            scan_index_forward,
            projection_expressions,
            index_name,
            *args,
        )
        if index_name or hash_key is None:
            return original(self, *arguments, **kwargs)
        with contextlib.ExitStack() as scope:
            scope.enter_context(
                _only_candidates(
                    self,
                    hash_key,
                    range_comparison,
                    range_objs,
                    exclusive_start_key,
                    scan_index_forward is not False,
                )
            )
            scope.enter_context(_sizes_remembered())
            if projection_expressions:
                scope.enter_context(_no_copy_before_projection())
            return original(self, *arguments, **kwargs)

    Table.query = query  # type: ignore[method-assign]
    return lambda: setattr(Table, "query", original)


@contextlib.contextmanager
def _sizes_remembered() -> Iterator[None]:
    """moto sizes each item twice while it pages a query (a walk over every attribute value);
    no item changes during a query, so the second answer is the first."""
    from moto.dynamodb.models.dynamo_type import Item

    original = Item.size
    sizes: dict[int, tuple[Any, int]] = {}  # the item is kept: its id is not reused meanwhile

    def size(self: Any) -> int:
        known = sizes.get(id(self))
        if known is None:
            known = sizes[id(self)] = (self, original(self))
        return known[1]

    Item.size = size  # type: ignore[method-assign]
    try:
        yield
    finally:
        Item.size = original  # type: ignore[method-assign]


@contextlib.contextmanager
def _no_copy_before_projection() -> Iterator[None]:
    """moto deep-copies every whole item a query returns and then, with a projection, builds
    new items from the copies: the projection alone already leaves the stored items untouched,
    so the result list is copied, not its items."""
    from moto.dynamodb.models import table

    with _copy_module(table, _CopyModule(list, list)):
        yield


def _patch_dispatch() -> Callable[[], None]:
    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original_modules = backends.list_of_moto_modules
    modules = tuple(original_modules())
    original_lookup = DomainDispatcherApplication.get_backend_for_host
    found: dict[str | None, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        if host not in found:
            found[host] = original_lookup(self, host)
        return found[host]

    backends.list_of_moto_modules = lambda: modules
    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]

    def undo() -> None:
        backends.list_of_moto_modules = original_modules
        DomainDispatcherApplication.get_backend_for_host = original_lookup  # type: ignore[method-assign]

    return undo


def _patch_projection() -> Callable[[], None]:
    from moto.dynamodb.models import dynamo_type
    from moto.dynamodb.models.dynamo_type import Item

    original = Item.project

    def project(self: Any, projection_expressions: list[list[str]]) -> Any:
        result: dict[str, Any] = {}
        strings: dict[str, dict[str, str]] = {}
        for path in projection_expressions:
            # moto looks the path's head up as an attribute name, or as `name[i]`'s name.
            head = path[0]
            if len(path) == 1 and head in self.attrs and self.attrs[head].type == "S":
                strings[head] = {"S": self.attrs[head].value}  # moto's round trip keeps a string
                continue
            indexed = _LIST_ELEMENT.match(head)
            names = {head, indexed.group(1)} if indexed else {head}
            regular = {
                name: dynamo_type.deserializer.deserialize(self.attrs[name].to_regular_json())
                for name in names
                if name in self.attrs
            }
            dynamo_type.merge_dicts(result, dynamo_type.find_nested_key(path, regular))
        attrs = dict(dynamo_type.serializer.serialize(result)["M"]) if result else {}
        return Item(hash_key=self.hash_key, range_key=self.range_key, attrs=attrs | strings)

    Item.project = project  # type: ignore[method-assign]
    return lambda: setattr(Item, "project", original)


def _plain_wire_form(value: Any) -> Any:
    """A DynamoDB attribute value as moto's JSON serializer would write it, or None where that
    could differ (binary values, anything unexpected): those go through moto's own code."""
    if not isinstance(value, dict) or not value:
        return None
    out: dict[str, Any] = {}
    for kind, member in value.items():
        if kind in ("S", "N"):
            if not isinstance(member, str):
                return None
        elif kind in ("BOOL", "NULL"):
            if not isinstance(member, bool):
                return None
        elif kind in ("SS", "NS"):
            if not isinstance(member, list) or not all(isinstance(x, str) for x in member):
                return None
            member = list(member)
        elif kind == "M":
            if not isinstance(member, dict):
                return None
            fields = {name: _plain_wire_form(field) for name, field in member.items()}
            if any(field is None for field in fields.values()):
                return None
            member = fields
        elif kind == "L":
            if not isinstance(member, list):
                return None
            elements = [_plain_wire_form(element) for element in member]
            if any(element is None for element in elements):
                return None
            member = elements
        else:
            return None
        out[kind] = member
    return out


def _patch_attribute_values() -> Callable[[], None]:
    from moto.core.serialize import BaseJSONSerializer

    original = BaseJSONSerializer._serialize_type_structure

    def serialize_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if (
            key
            and shape.name == "AttributeValue"
            and self.operation_model.service_model.service_name in _ITEM_SERVICES
        ):
            wire = _plain_wire_form(value)
            if wire is not None:
                self._default_serialize(serialized, wire, shape, key)
                return
        original(self, serialized, value, shape, key)

    BaseJSONSerializer._serialize_type_structure = serialize_structure  # type: ignore[method-assign]
    return lambda: setattr(BaseJSONSerializer, "_serialize_type_structure", original)


def _patch_retention_check() -> Callable[[], None]:
    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend

    original = SQSBackend.is_message_valid_based_on_retention_period

    def is_message_valid_based_on_retention_period(
        self: Any, queue_name: str, message: Any
    ) -> bool:
        # moto's reads the one attribute through get_queue_attributes, which computes every
        # attribute of the queue (three of them count its messages) three times.
        retention_period = self.get_queue(queue_name).message_retention_period
        return bool(retention_period + message.sent_timestamp / 1000 > unix_time())

    SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
        is_message_valid_based_on_retention_period
    )
    return lambda: setattr(SQSBackend, "is_message_valid_based_on_retention_period", original)


def _patch_queue_counts() -> Callable[[], None]:
    from moto.core.utils import unix_time_millis
    from moto.sqs.models import Queue

    # moto's asks each message whether it is visible or delayed, and each answer reads the clock
    # through datetime: microseconds per message. Every SendMessage computes all the queue's
    # attributes (to read one setting), so that was paid for every message in the queue, per
    # message sent. Here a pass over the queue reads the clock once and compares numbers.
    # (`approximate_number_of_messages` is moto's `len(self.messages)`.)
    def messages(self: Any) -> list[Any]:
        now = unix_time_millis()
        return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]

    def delayed(self: Any) -> int:
        now = unix_time_millis()
        return sum(1 for m in self._messages if now < m.delayed_until)

    def not_visible(self: Any) -> int:
        now = unix_time_millis()
        return sum(1 for m in self._messages if not now > m.visible_at)

    replacements = {
        "messages": messages,
        "approximate_number_of_messages_delayed": delayed,
        "approximate_number_of_messages_not_visible": not_visible,
    }
    originals = {name: Queue.__dict__[name] for name in replacements}
    for name, count in replacements.items():
        setattr(Queue, name, property(count))

    def undo() -> None:
        for name, original in originals.items():
            setattr(Queue, name, original)

    return undo


def _patch_batch_get_checks() -> Callable[[], None]:
    from moto.dynamodb.responses import DynamoHandler

    original_duplicates = DynamoHandler._contains_duplicates
    original_backend: Any = DynamoHandler.__dict__["dynamodb_backend"]  # the property itself

    def contains_duplicates(self: Any, keys: list[Any]) -> bool:
        # moto's compares each key with every key before it (100 keys: 4,950 comparisons).
        seen: set[str] = set()
        for key in keys:
            try:
                marker = key if isinstance(key, str) else json.dumps(key, sort_keys=True)
            except TypeError:  # bytes in a key: moto's own comparison
                return bool(original_duplicates(self, keys))
            if marker in seen:
                return True
            seen.add(marker)
        return False

    def dynamodb_backend(self: Any) -> Any:
        # moto looks the backend up again for each key of a batch; a handler serves one request.
        found = self.__dict__.get("_speedups_backend")
        if found is None:
            found = self.__dict__["_speedups_backend"] = original_backend.fget(self)
        return found

    DynamoHandler._contains_duplicates = contains_duplicates  # type: ignore[method-assign]
    DynamoHandler.dynamodb_backend = property(dynamodb_backend)  # type: ignore[method-assign,assignment]

    def undo() -> None:
        DynamoHandler._contains_duplicates = original_duplicates  # type: ignore[method-assign]
        DynamoHandler.dynamodb_backend = original_backend  # type: ignore[method-assign]

    return undo


_ITEM_SERVICES = ("dynamodb", "dynamodbstreams")
_PATCHES = (
    _patch_transactions,
    _patch_query,
    _patch_dispatch,
    _patch_projection,
    _patch_attribute_values,
    _patch_retention_check,
    _patch_queue_counts,
    _patch_batch_get_checks,
)


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """The replacements for the duration of the block (the tests compare with and without)."""
    with _lock:
        undo = [patch() for patch in _PATCHES]
    try:
        yield
    finally:
        with _lock:
            for step in reversed(undo):
                step()


def apply() -> None:
    """The replacements for the rest of the process: the moto server's, which serializes
    DynamoDB requests (SerializingMiddleware)."""
    global _applied
    with _lock:
        if not _applied:
            for patch in _PATCHES:
                patch()
            _applied = True
