"""Counting AWS requests, billed SQS requests and DynamoDB capacity units with botocore hooks.

The handlers use the clients of `batchpredict.aws.client(service)` (cached per process), so a
`provide-client-params` hook (which sees the API parameters) and an `after-call` hook (which
sees the parsed response) on those clients see every call the functions make. A `before-send`
hook counts HTTP attempts too (botocore's retries are billed requests).

Capacity units follow DynamoDB's on-demand rules (https://aws.amazon.com/dynamodb/pricing/on-demand/):
- writes: 1 WRU per started KB of the item written, per item; x2 inside TransactWriteItems.
  An UpdateItem is sized by the item after the update (read back through an uncounted client,
  when `sizer` is given; else 1 KB). Writes to the jobs table's global secondary indexes are
  added: `by-tenant` projects ALL (the META item's size again on every change of it), `sweep`
  projects keys only (1 WRU when an item enters or leaves it).
- reads: 1 RRU per started 4 KB, strongly consistent; 0.5 eventually consistent. Per item for
  GetItem and BatchGetItem (a key that is not found still costs the minimum), per total size
  of the items read for Query (minimum one unit per request). A projection does not lower the
  bill: a projected item is sized whole (re-read through `sizer`).
- SQS: one billed request per started 64 KB of payload of each call.
"""

from __future__ import annotations

import copy
import math
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

KB = 1024
SQS_CHUNK = 64 * KB
EVENTS_CHUNK = 64 * KB
_STASH = "_bench_call"


# ------------------------------------------------------------------ item sizes


def _value_size(value: Mapping[str, Any]) -> int:
    """DynamoDB's size of one typed value (developer guide, "Item sizes and formats")."""
    ((kind, raw),) = value.items()
    if kind == "S":
        return len(raw.encode())
    if kind == "N":
        digits = raw.lstrip("-").replace(".", "").lstrip("0") or "0"
        digits = digits.split("e")[0].split("E")[0]
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(raw) if isinstance(raw, bytes | bytearray) else len(str(raw))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(v.encode()) for v in raw)
    if kind == "NS":
        return sum(_value_size({"N": v}) for v in raw)
    if kind == "BS":
        return sum(len(v) for v in raw)
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in raw)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(v) for k, v in raw.items())
    return len(str(raw))


def item_size(item: Mapping[str, Any]) -> int:
    """Bytes of a typed (low-level) item: attribute names plus values."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / KB))


def _partition_key(request: dict[str, Any], sk: dict[str, Any]) -> dict[str, Any] | None:
    """The typed pk of the item with sort key `sk` that a Query or BatchGetItem asked for."""
    condition = re.search(r"\bpk\s*=\s*(:\w+)", request.get("KeyConditionExpression", ""))
    if condition:
        found: dict[str, Any] | None = request["ExpressionAttributeValues"][condition.group(1)]
        return found
    return next((k["pk"] for k in request.get("Keys", []) if k.get("sk") == sk), None)


def read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / (4 * KB)))
    return units if consistent else units / 2


# ------------------------------------------------------------------ the counter


@dataclass
class Tally:
    """What a set of AWS calls cost. Keys are (service, operation) or table names."""

    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    attempts: Counter[tuple[str, str]] = field(default_factory=Counter)
    billed: Counter[tuple[str, str]] = field(default_factory=Counter)  # SQS/EventBridge chunks
    wru: Counter[str] = field(default_factory=Counter)  # by table (+ ":index" for GSI writes)
    rru: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    wru_by_op: Counter[tuple[str, str]] = field(default_factory=Counter)  # (table, op)
    seconds: float = 0.0  # wall time inside the calls and in counting them (summed over threads)

    def add(self, other: Tally) -> None:
        self.calls.update(other.calls)
        self.attempts.update(other.attempts)
        self.billed.update(other.billed)
        self.wru.update(other.wru)
        for table, units in other.rru.items():
            self.rru[table] += units
        self.wru_by_op.update(other.wru_by_op)
        self.seconds += other.seconds

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def calls_of(self, service: str) -> int:
        return sum(n for (s, _), n in self.calls.items() if s == service)

    def billed_of(self, service: str) -> int:
        return sum(n for (s, _), n in self.billed.items() if s == service)

    @property
    def total_wru(self) -> float:
        return float(sum(self.wru.values()))

    @property
    def total_rru(self) -> float:
        return float(sum(self.rru.values()))

    def by_operation(self) -> list[tuple[str, str, int]]:
        return sorted(((s, o, n) for (s, o), n in self.calls.items()), key=lambda r: (-r[2], r[0]))


class AwsCounter:
    """Hooks on botocore clients that tally their calls into the current `Tally`.

    `sizer(table, key)` returns the typed item at `key` (or None); it must use a client the
    counter does not watch. Without it UpdateItem is costed as a 1 KB item.
    """

    def __init__(
        self,
        *,
        capacity: bool = True,
        sizer: Callable[[str, dict[str, Any]], dict[str, Any] | None] | None = None,
        gsi_tables: Iterable[str] = (),
        record: bool = False,
    ) -> None:
        self.capacity = capacity
        # (service, operation, params) of every call, to replay them elsewhere
        self.recorded: list[tuple[str, str, dict[str, Any]]] | None = [] if record else None
        self.sizer = sizer
        self.gsi_tables = set(gsi_tables)
        self.tally = Tally()
        self._lock = threading.Lock()
        self._watched: list[tuple[Any, list[tuple[str, Any]]]] = []

    # -------------------------------------------------------------- wiring

    def watch(self, client: Any, label: str | None = None) -> Any:
        """Count this client's calls (under `label` as the service name if given)."""
        service = label or client.meta.service_model.service_name
        handlers: list[tuple[str, Any]] = [
            ("provide-client-params.*.*", self._params_hook(service)),
            ("before-send.*.*", self._send_hook(service)),
            ("after-call.*.*", self._after_hook(service)),
        ]
        for event, handler in handlers:
            # first: moto's in-process mock answers `before-send` and stops the chain there
            client.meta.events.register_first(event, handler)
        self._watched.append((client, handlers))
        return client

    def unwatch_all(self) -> None:
        for client, handlers in self._watched:
            for event, handler in handlers:
                client.meta.events.unregister(event, handler)
        self._watched.clear()

    def take(self) -> Tally:
        """The tally so far, and start a new one."""
        with self._lock:
            tally, self.tally = self.tally, Tally()
        return tally

    # -------------------------------------------------------------- hooks

    def _params_hook(self, service: str) -> Any:
        def hook(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
            context[_STASH] = {"params": params, "started": time.perf_counter()}
            if self.recorded is not None:
                with self._lock:
                    self.recorded.append((service, model.name, copy.deepcopy(params)))

        return hook

    def _send_hook(self, service: str) -> Any:
        def hook(event_name: str = "", **_: Any) -> None:
            operation = event_name.rsplit(".", 1)[-1] if event_name else "?"
            with self._lock:
                self.tally.attempts[(service, operation)] += 1

        return hook

    def _after_hook(self, service: str) -> Any:
        def hook(parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
            stash = context.pop(_STASH, None) or {"params": {}, "started": time.perf_counter()}
            operation = model.name
            local = Tally()
            local.calls[(service, operation)] += 1
            params = stash["params"]
            try:
                if service == "sqs":
                    local.billed[(service, operation)] += _sqs_billed(operation, params, parsed)
                elif service == "events":
                    local.billed[(service, operation)] += _events_billed(operation, params)
                elif service == "dynamodb" and self.capacity:
                    self._capacity(operation, params, parsed, local)
            except Exception as error:  # a costing bug must not break the system under test
                local.calls[(service, f"{operation}!costing-error:{type(error).__name__}")] += 0
            # up to now: the sizer's re-reads are the counter's work, not the caller's
            local.seconds = time.perf_counter() - stash["started"]
            with self._lock:
                self.tally.add(local)

        return hook

    # -------------------------------------------------------------- DynamoDB capacity

    def _capacity(
        self, operation: str, params: dict[str, Any], parsed: dict[str, Any], out: Tally
    ) -> None:
        failed = "Error" in parsed
        if operation == "PutItem":
            self._write(out, params["TableName"], operation, params["Item"], factor=1)
        elif operation == "UpdateItem":
            item = None if failed else self._size_after(params["TableName"], params["Key"])
            self._write(
                out,
                params["TableName"],
                operation,
                item,
                factor=1,
                removes_sweep="REMOVE sweep_pk" in params.get("UpdateExpression", ""),
            )
        elif operation == "DeleteItem":
            out.wru[params["TableName"]] += 1
            out.wru_by_op[(params["TableName"], operation)] += 1
        elif operation == "BatchWriteItem":
            unprocessed = parsed.get("UnprocessedItems") or {}
            for table, requests in params["RequestItems"].items():
                skipped = len(unprocessed.get(table, []))
                for request in requests[: len(requests) - skipped]:
                    if "PutRequest" in request:
                        self._write(out, table, operation, request["PutRequest"]["Item"], 1)
                    else:
                        out.wru[table] += 1
                        out.wru_by_op[(table, operation)] += 1
        elif operation == "TransactWriteItems":
            for action in params["TransactItems"]:
                ((kind, body),) = action.items()
                table = body["TableName"]
                if kind == "Put":
                    self._write(out, table, operation, body["Item"], factor=2)
                elif kind == "Update":
                    item = None if failed else self._size_after(table, body["Key"])
                    self._write(out, table, operation, item, factor=2)
                else:  # Delete, ConditionCheck
                    out.wru[table] += 2
                    out.wru_by_op[(table, operation)] += 2
        elif operation == "GetItem":
            consistent = bool(params.get("ConsistentRead"))
            size = item_size(parsed["Item"]) if parsed.get("Item") else 0
            out.rru[params["TableName"]] += read_units(size, consistent)
        elif operation == "BatchGetItem":
            unprocessed = parsed.get("UnprocessedKeys") or {}
            for table, request in params["RequestItems"].items():
                consistent = bool(request.get("ConsistentRead"))
                found = parsed.get("Responses", {}).get(table, [])
                asked = len(request["Keys"]) - len(unprocessed.get(table, {}).get("Keys", []))
                units = sum(
                    read_units(self._read_size(table, i, request), consistent) for i in found
                )
                units += max(0, asked - len(found)) * read_units(0, consistent)
                out.rru[table] += units
        elif operation in ("Query", "Scan"):
            consistent = bool(params.get("ConsistentRead"))
            items = parsed.get("Items", [])
            size = sum(self._read_size(params["TableName"], i, params) for i in items)
            name = params["TableName"] + (
                f":{params['IndexName']}" if "IndexName" in params else ""
            )
            out.rru[name] += read_units(size, consistent)

    def _read_size(self, table: str, item: dict[str, Any], request: dict[str, Any]) -> int:
        """The size a read is billed for: the whole item's, even if a projection returned less.

        Every table here is keyed by pk and sk; a projection returns sk at least, and the pk is
        the request's: a Query's key condition names it, a BatchGetItem's keys hold it.
        """
        if "ProjectionExpression" not in request or self.sizer is None or "sk" not in item:
            return item_size(item)
        pk = item.get("pk") or _partition_key(request, item["sk"])
        whole = self.sizer(table, {"pk": pk, "sk": item["sk"]}) if pk else None
        return item_size(whole or item)

    def _size_after(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        if self.sizer is None:
            return None
        return self.sizer(table, key)

    def _write(
        self,
        out: Tally,
        table: str,
        operation: str,
        item: dict[str, Any] | None,
        factor: int,
        removes_sweep: bool = False,
    ) -> None:
        size = item_size(item) if item else KB
        units = write_units(size) * factor
        out.wru[table] += units
        out.wru_by_op[(table, operation)] += units
        if table in self.gsi_tables and item:
            # The GSI replicas are written with standard (not transactional) writes.
            if "gsi1pk" in item:
                out.wru[f"{table}:by-tenant"] += write_units(size)
            if ("sweep_pk" in item and operation in ("PutItem", "BatchWriteItem")) or removes_sweep:
                out.wru[f"{table}:sweep"] += 1


def _sqs_billed(operation: str, params: dict[str, Any], parsed: dict[str, Any]) -> int:
    """SQS bills each started 64 KB of a call's payload as one request."""
    if operation == "SendMessageBatch":
        payload = sum(_message_size(e) for e in params.get("Entries", []))
    elif operation == "SendMessage":
        payload = _message_size(params)
    elif operation == "ReceiveMessage":
        payload = sum(len(m.get("Body", "").encode()) for m in parsed.get("Messages", []))
    else:
        payload = 0
    return max(1, math.ceil(payload / SQS_CHUNK))


def _message_size(entry: Mapping[str, Any]) -> int:
    size = len(entry.get("MessageBody", "").encode())
    for name, attribute in (entry.get("MessageAttributes") or {}).items():
        size += len(name.encode()) + len(str(attribute.get("DataType", "")).encode())
        size += len(str(attribute.get("StringValue", "")).encode())
        size += len(attribute.get("BinaryValue", b"") or b"")
    return size


def _events_billed(operation: str, params: dict[str, Any]) -> int:
    if operation != "PutEvents":
        return 1
    return sum(
        max(1, math.ceil(len(str(e.get("Detail", "")).encode()) / EVENTS_CHUNK))
        for e in params.get("Entries", [])
    )


def summarize_calls(tally: Tally) -> dict[str, dict[str, int]]:
    """service -> operation -> calls, for the report."""
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for (service, operation), n in sorted(tally.calls.items()):
        if n:
            out[service][operation] = n
    return dict(out)
