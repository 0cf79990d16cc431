"""The fault injector: botocore event hooks on the clients the product uses, plus a virtual clock.

Where it hooks, and why there:
- `provide-client-params` keeps the call's parameters for the later hooks (and drops entries of a
  SendMessageBatch for a partial failure);
- `before-call` runs above botocore's retry handler and its HTTP layer (moto answers at
  `before-send`). Returning an error response here skips both, so an injected
  ThrottlingException is the one botocore would raise after its own retries (standard mode, 4
  attempts) all failed: it always reaches the product's code. A WorkerCrash raised here is the
  process dying before the call was made;
- `after-call` runs once the call has landed in moto: raising WorkerCrash is the process dying
  after the write; turning the response into an error is a write whose response was lost.

Decisions are not drawn from one sequential RNG but hashed from (seed, fault kind, scope,
operation, the call's stable parameters, how many times that call was seen). A run is thus
reproducible from its seed even where the product calls AWS from threads (send_chunks), and a
change in one part of the product does not reshuffle every later decision.

Nothing here raises AssertionError inside a hook (the product would catch it as an error and
carry on): invariant breaches seen by the monitors are collected in `violations`.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.exceptions import ReadTimeoutError

from tests.faults.flaky import unit
from tests.faults.plan import FaultPlan
from tests.support.handlers import FakeContext

CALL_MS = 2.0  # virtual time one AWS call takes
DEFAULT_BUDGET_MS = 120_000.0  # the worker's timeout in these tests
THROTTLE_CODES = (
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
)
DDB_THROTTLED_OPS = frozenset(
    {
        "BatchGetItem",
        "BatchWriteItem",
        "GetItem",
        "PutItem",
        "Query",
        "TransactWriteItems",
        "UpdateItem",
    }
)
WORKER_ONLY = frozenset({"crash_before_write", "crash_after_write", "race", "cancel_race"})


@dataclass
class Rule:
    """A fault forced at chosen decision points, whatever the plan's rate (hand-checked tests)."""

    kind: str
    op: str | None = None
    scope: str | None = None
    times: int = 1  # how many decision points fire
    skip: int = 0  # how many matching decision points pass first
    call: str | None = None  # a part of the call's description (injector.describe_call)

    def matches(self, kind: str, key: str) -> bool:
        scope, op = ([*key.split("|"), "", ""])[:2]
        return (
            self.kind == kind
            and self.times > 0
            and (self.op is None or self.op == op)
            and (self.scope is None or self.scope == scope)
            and (self.call is None or self.call in key)
        )


class WorkerCrash(BaseException):
    """The Lambda process died (killed at its timeout, out of memory, host lost).

    A BaseException, so neither the product nor Powertools' BatchProcessor (both catch
    Exception) can swallow it: it ends the invocation, and every record of the batch comes back.
    """


@dataclass
class VirtualClock:
    """Milliseconds of virtual time: AWS calls, predictions and the worker's sleeps advance it."""

    now_ms: float = 0.0

    def advance(self, ms: float) -> None:
        self.now_ms += ms

    def sleep(self, seconds: float) -> None:
        self.advance(seconds * 1000.0)


@dataclass
class FaultContext(FakeContext):
    """A Lambda context whose remaining time runs on the virtual clock."""

    clock: VirtualClock = field(default_factory=VirtualClock)
    deadline_ms: float = DEFAULT_BUDGET_MS

    def get_remaining_time_in_millis(self) -> int:
        return int(self.deadline_ms - self.clock.now_ms)


def _s(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("S", value.get("N", "")))
    return "" if value is None else str(value)


def result_puts(params: dict[str, Any]) -> list[tuple[str, str]]:
    """(job pk, chunk id) of every chunk result a TransactWriteItems puts."""
    out = []
    for action in params.get("TransactItems", []):
        put = action.get("Put")
        if put and _s(put["Item"].get("sk")).startswith("RESULT#"):
            out.append((_s(put["Item"]["pk"]), _s(put["Item"]["sk"]).removeprefix("RESULT#")))
    return out


def _chunk_ids(params: dict[str, Any]) -> list[str]:
    ids = []
    for entry in params.get("Entries", []):
        try:
            body = json.loads(entry["MessageBody"])
            ids.append(f"{body['job_id']}/{body['chunk_id']}")
        except (ValueError, KeyError, TypeError):
            ids.append("?")
    return sorted(ids)


def describe_call(op: str, params: dict[str, Any]) -> str:
    """The parameters of a call that are stable across runs (no timestamps, no random ids)."""
    if op == "TransactWriteItems":
        parts = []
        for action in params.get("TransactItems", []):
            ((kind, body),) = action.items()
            item = body.get("Item") or body.get("Key") or {}
            parts.append(f"{kind}:{_s(item.get('pk'))}:{_s(item.get('sk'))}")
        return ",".join(sorted(parts))
    if op in ("GetItem", "UpdateItem", "DeleteItem"):
        key = params.get("Key", {})
        return f"{_s(key.get('pk'))}:{_s(key.get('sk'))}:{params.get('UpdateExpression', '')[:24]}"
    if op == "PutItem":
        item = params.get("Item", {})
        return f"{_s(item.get('pk'))}:{_s(item.get('sk')).split('#')[0]}:{_s(item.get('kind'))}"
    if op == "Query":
        values = {k: _s(v) for k, v in sorted(params.get("ExpressionAttributeValues", {}).items())}
        return f"{params.get('IndexName', '')}:{params.get('KeyConditionExpression')}:{values}"
    if op == "BatchGetItem":
        keys = sorted(
            f"{table}:{_s(k.get('pk'))}:{_s(k.get('sk'))}"
            for table, request in params.get("RequestItems", {}).items()
            for k in request.get("Keys", [])
        )
        return f"{len(keys)}:{unit(*keys):.12f}"
    if op == "SendMessageBatch":
        return ",".join(_chunk_ids(params))
    if op == "PutEvents":
        return ",".join(sorted(e.get("DetailType", "") for e in params.get("Entries", [])))
    return ""


def error_response(code: str, message: str, **extra: Any) -> tuple[AWSResponse, dict[str, Any]]:
    http = AWSResponse("https://fault-injector.invalid/", 400, HTTPHeaders(), None)
    parsed = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": 400, "RequestId": "fault-injector"},
        **extra,
    }
    return http, parsed


def ok_response(parsed: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
    http = AWSResponse("https://fault-injector.invalid/", 200, HTTPHeaders(), None)
    return http, {**parsed, "ResponseMetadata": {"HTTPStatusCode": 200, "RequestId": "fault"}}


def _detail(entry: dict[str, Any]) -> dict[str, Any]:
    try:
        detail = json.loads(entry.get("Detail", "{}"))
    except ValueError:
        return {}
    return detail if isinstance(detail, dict) else {}


def _is_announce_mark(params: dict[str, Any]) -> bool:
    """The UpdateItem that marks a job announced (store/jobs.py: mark_announced)."""
    return str(params.get("UpdateExpression", "")).startswith("SET announced_at")


def _job_id(params: dict[str, Any]) -> str:
    return _s(params.get("Key", {}).get("pk")).rpartition("#JOB#")[2]


def _failed_entry(entry_id: str) -> dict[str, Any]:
    return {"Id": entry_id, "SenderFault": False, "Code": "InternalError", "Message": "injected"}


def transaction_canceled(params: dict[str, Any], reason: str) -> dict[str, Any]:
    """The body of a TransactionCanceledException: one reason per action, like DynamoDB's."""
    actions = params.get("TransactItems", [])
    reasons: list[dict[str, str]] = []
    for action in actions:
        ((kind, body),) = action.items()
        is_result_put = kind == "Put" and _s(body["Item"].get("sk")).startswith("RESULT#")
        if reason == "ConditionalCheckFailed":
            code = reason if is_result_put else "None"
        else:  # TransactionConflict: on the hot counter shard, as at scale
            code = reason if kind == "Update" else "None"
        entry = {"Code": code}
        if code != "None":
            entry["Message"] = {
                "ConditionalCheckFailed": "The conditional request failed",
                "TransactionConflict": "Transaction is ongoing for the item",
            }[code]
        reasons.append(entry)
    if reasons and all(r["Code"] == "None" for r in reasons):
        reasons[-1] = {"Code": reason, "Message": "injected"}
    names = ", ".join(r["Code"] for r in reasons)
    return {
        "Error": {
            "Code": "TransactionCanceledException",
            "Message": f"Transaction cancelled, please refer cancellation reasons for specific "
            f"reasons [{names}]",
        },
        "Message": f"Transaction cancelled [{names}]",
        "CancellationReasons": reasons,
    }


class FaultInjector:
    """Injects the plan's AWS and process faults into the product's boto3 clients."""

    def __init__(
        self,
        plan: FaultPlan,
        clock: VirtualClock,
        observer: Any,
        jobs_table: str,
        shards: int,
        totals: dict[str, int],
    ) -> None:
        self.plan = plan
        self.jobs_table = jobs_table
        self.shards = shards  # the most counter shards a job can have
        self.clock = clock
        self.observer = observer  # a DynamoDB client with no hooks, for the monitors
        self.totals = totals  # job pk -> total items
        self.scope: str | None = None  # None: no faults (the test itself is calling)
        self.context: FaultContext | None = None
        self.bodies: list[str] = []
        self.poisoned: set[tuple[str, str]] = set()  # (job pk, chunk id)
        self.twin: Callable[[str], None] | None = None  # runs a concurrent duplicate delivery
        self.cancel: Callable[[str], None] | None = None  # cancels a job by its pk
        self.injected: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()
        self.writers: dict[tuple[str, str], str] = {}  # (job pk, chunk id) -> first recorder
        # The end of each job as EventBridge saw it, in order: ("sent", event_id) for an
        # accepted PutEvents entry, ("marked", "") when the job was marked announced, and
        # ("window", what) when the announcer died or failed between the two (the documented
        # window in which the event may go out again, with the same event_id).
        self.announcing: dict[str, list[tuple[str, str]]] = {}
        self.deaths = 0  # WorkerCrash raised: a Lambda process died
        self.violations: list[str] = []
        self.max_counts: dict[str, dict[str, int]] = {}
        self.rules: list[Rule] = []
        self.lost_response_variant: str | None = None  # "timeout" | "retried": force one
        self.throttle_code: str | None = None  # force one of THROTTLE_CODES
        self.events_variant: str | None = None  # "error" | "entry_failed": force one
        self._seen: Counter[tuple[str, str]] = Counter()
        self._lock = threading.RLock()

    # ------------------------------------------------------------ wiring

    def install(self, *clients: Any) -> None:
        for client in clients:
            events = client.meta.events
            service = client.meta.service_model.service_id.hyphenize()
            # first in the node tests/support/limits.py uses, so this sees calls it refuses
            events.register_first(f"provide-client-params.{service}.*", self._on_params)
            events.register("before-call", self._before_call)
            events.register("after-call", self._after_call)

    @contextmanager
    def armed(
        self, scope: str | None, context: FaultContext | None = None, bodies: Any = ()
    ) -> Iterator[None]:
        """Inject faults into the calls made inside, as function `scope` would see them."""
        saved = (self.scope, self.context, self.bodies)
        self.scope, self.context, self.bodies = scope, context, list(bodies)
        try:
            yield
        finally:
            self.scope, self.context, self.bodies = saved

    def force(
        self,
        kind: str,
        *,
        op: str | None = None,
        scope: str | None = None,
        times: int = 1,
        skip: int = 0,
        call: str | None = None,
    ) -> Rule:
        """Fire `kind` at the next matching decision points (after `skip` of them)."""
        rule = Rule(kind, op, scope, times, skip, call)
        self.rules.append(rule)
        return rule

    def chance(self, kind: str, key: str, rate: float | None = None) -> bool:
        with self._lock:
            for rule in self.rules:
                if rule.matches(kind, key):
                    if rule.skip:
                        rule.skip -= 1
                        return False
                    rule.times -= 1
                    self.injected[kind] += 1
                    return True
        rate = getattr(self.plan, kind) if rate is None else rate
        if not rate:
            return False
        with self._lock:
            n = self._seen[(kind, key)]
            self._seen[(kind, key)] = n + 1
        hit = unit(self.plan.seed, kind, key, n) < rate
        if hit:
            self.injected[kind] += 1
        return hit

    # ------------------------------------------------------------ hooks

    def _on_params(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any):
        context["fault.params"] = params
        if model.name == "TransactWriteItems":
            targets = [
                describe_call(model.name, {"TransactItems": [a]})
                for a in params.get("TransactItems", [])
            ]
            if len(set(targets)) != len(targets):
                # DynamoDB refuses this (ValidationException); tests/support/limits.py raises
                self.stats["transactions_touching_one_item_twice"] += 1
        scope = self.scope
        if (
            scope not in (None, "submit")
            and model.name == "SendMessageBatch"
            and len(params.get("Entries", [])) > 1
            and self.chance("sqs_partial", f"{scope}|{describe_call(model.name, params)}")
        ):
            entries = params["Entries"]
            dropped = [e["Id"] for i, e in enumerate(entries) if i % 2 == 1]
            params["Entries"] = [e for e in entries if e["Id"] not in dropped]
            context["fault.dropped"] = dropped
        return None

    def _before_call(self, model: Any, context: dict[str, Any], **_: Any) -> Any:
        try:
            response = self._before(model, context)
        except BaseException:
            if model.name == "UpdateItem":
                self._note_announce_window(model, context, "died before the mark")
            raise
        if response is not None and model.name == "UpdateItem":
            self._note_announce_window(model, context, "the mark failed")
        return response

    def _before(self, model: Any, context: dict[str, Any]) -> Any:
        scope = self.scope
        if scope is None:
            return None
        op = model.name
        service = model.service_model.service_name
        params = context.get("fault.params") or {}
        key = f"{scope}|{op}|{describe_call(op, params)}"

        if scope == "submit":  # the job is written; only its fan-out fails
            if op == "SendMessageBatch" and self.chance("submit_fail", key):
                return error_response("RequestThrottled", "injected: request throttled")
            return None

        if isinstance(self.context, FaultContext):  # time runs on the virtual clock
            if self.context.get_remaining_time_in_millis() <= 0:
                self.injected["timeout_kill"] += 1
                raise self._death("the invocation reached its timeout and was killed")
            self.clock.advance(CALL_MS)

        if op == "TransactWriteItems" and scope == "worker":
            puts = result_puts(params)
            if any(p in self.poisoned for p in puts):
                self.injected["poison"] += 1
                return error_response(
                    "ValidationException", "Item size has exceeded the maximum allowed size"
                )
            if puts and self.twin and self.chance("race", key):
                self._nested(self.twin, puts[0][0] + "|" + puts[0][1])
            if puts and self.cancel and self.chance("cancel_race", key):
                self._nested(self.cancel, puts[0][0])
            if self.chance("crash_before_write", key):
                raise self._death("crashed before the chunk's transaction")
        if self.chance("crash_any_call", key + "|before"):
            raise self._death(f"crashed before {op}")

        if service == "dynamodb":
            if op == "TransactWriteItems" and self.chance("conflict", key):
                body = transaction_canceled(params, "TransactionConflict")
                return error_response(body.pop("Error")["Code"], body["Message"], **body)
            if op in DDB_THROTTLED_OPS and self.chance("throttle", key):
                code = (
                    self.throttle_code or THROTTLE_CODES[int(unit(self.plan.seed, "code", key) * 3)]
                )
                return error_response(code, "injected: throughput exceeded")
        elif service == "sqs":
            if op in ("SendMessage", "SendMessageBatch") and self.chance("sqs_throttle", key):
                return error_response("RequestThrottled", "injected: request throttled")
            entries = params.get("Entries", [])
            if (
                op == "SendMessageBatch"
                and len(entries) == 1
                and "fault.dropped" not in context
                and self.chance("sqs_partial", key)
            ):
                # a batch of one whose entry failed: SQS answers 200 with it under Failed
                return ok_response({"Successful": [], "Failed": [_failed_entry(entries[0]["Id"])]})
        elif service == "events" and op == "PutEvents" and self.chance("events_throttle", key):
            variant = self.events_variant or (
                "error" if unit(self.plan.seed, "events-variant", key) < 0.5 else "entry_failed"
            )
            if variant == "error":
                return error_response("ThrottlingException", "injected: rate exceeded")
            # PutEvents' partial failure: HTTP 200, the entry refused in the body
            self.injected["events_throttle.entry_failed"] += 1
            entries = params.get("Entries", [])
            return ok_response(
                {
                    "FailedEntryCount": len(entries),
                    "Entries": [
                        {"ErrorCode": "ThrottlingException", "ErrorMessage": "injected"}
                        for _ in entries
                    ],
                }
            )
        return None

    def _after_call(
        self,
        http_response: Any,
        parsed: dict[str, Any],
        model: Any,
        context: dict[str, Any],
        **_: Any,
    ) -> None:
        try:
            self._after(http_response, parsed, model, context)
        except BaseException:
            if model.name == "PutEvents":
                self._note_announce_window(model, context, "died after PutEvents")
            raise

    def _after(
        self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any]
    ) -> None:
        op = model.name
        params = context.get("fault.params") or {}
        ok = http_response.status_code < 300
        self._monitor(op, params, parsed, ok)
        if ok and context.get("fault.dropped"):
            parsed.setdefault("Failed", []).extend(
                _failed_entry(i) for i in context["fault.dropped"]
            )
            parsed["Successful"] = [
                s for s in parsed.get("Successful", []) if s["Id"] not in context["fault.dropped"]
            ]
        scope = self.scope
        if scope in (None, "submit") or not ok:
            return
        key = f"{scope}|{op}|{describe_call(op, params)}"
        if op == "TransactWriteItems":
            if scope == "worker" and self.chance("crash_after_write", key):
                raise self._death("crashed after the chunk's transaction landed")
            if self.chance("lost_response", key):
                variant = self.lost_response_variant or (
                    "timeout" if unit(self.plan.seed, "lost-variant", key) < 0.5 else "retried"
                )
                self.injected[f"lost_response.{variant}"] += 1
                if variant == "timeout":
                    # botocore gave up on a read timeout: the caller sees an error
                    raise ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")
                # botocore retried the timed-out request: the retry finds the item it wrote
                body = transaction_canceled(params, "ConditionalCheckFailed")
                self.stats["duplicate_writes"] += len(result_puts(params))  # as the caller sees
                parsed.clear()
                parsed.update(body)
                http_response.status_code = 400
                return
        if self.chance("crash_any_call", key + "|after"):
            raise self._death(f"crashed after {op}")

    # ------------------------------------------------------------ helpers

    def _nested(self, action: Callable[[str], None], arg: str) -> None:
        """Run another actor (a twin worker, a cancel) in the middle of this call, fault-free."""
        with self.armed(None, bodies=self.bodies):
            try:
                action(arg)
            except Exception as error:
                self.stats[f"nested_error.{type(error).__name__}"] += 1

    def _monitor(self, op: str, params: dict[str, Any], parsed: dict[str, Any], ok: bool) -> None:
        if op == "TransactWriteItems":
            if ok:
                self.stats["transactions"] += 1
                touched = set()
                for pk, chunk_id in result_puts(params):
                    self.writers.setdefault((pk, chunk_id), self.scope or "test")
                    touched.add(pk)
                for pk in touched:
                    self._check_counters(pk)
            else:
                reasons = parsed.get("CancellationReasons") or []
                self.stats["duplicate_writes"] += sum(
                    1 for r in reasons if r.get("Code") == "ConditionalCheckFailed"
                )
        elif op == "SendMessageBatch" and ok:
            sent = _chunk_ids(params)
            self.stats[f"sent.{self.scope or 'test'}"] += len(sent)
            self.stats["retry_chunks_sent"] += sum(1 for c in sent if ".r" in c)
        elif op == "PutEvents" and ok:
            answers = parsed.get("Entries") or [{} for _ in params.get("Entries", [])]
            for entry, answer in zip(params.get("Entries", []), answers, strict=False):
                if answer.get("ErrorCode"):
                    continue  # refused: not delivered to any rule
                detail = _detail(entry)
                job_id = str(detail.get("job_id", "?"))
                history = self.announcing.setdefault(job_id, [])
                if ("marked", "") in history:
                    self.violations.append(f"{job_id}: end sent again after it was marked")
                history.append(("sent", f"{entry.get('DetailType')}|{detail.get('event_id')}"))
        elif op == "UpdateItem" and ok and _is_announce_mark(params):
            job_id = _job_id(params)
            self.announcing.setdefault(job_id, []).append(("marked", ""))

    def _death(self, why: str) -> WorkerCrash:
        self.deaths += 1
        return WorkerCrash(why)

    def _note_announce_window(self, model: Any, context: dict[str, Any], what: str) -> None:
        """A fault between an accepted PutEvents and the job's announced mark."""
        params = context.get("fault.params") or {}
        if model.name == "PutEvents":
            jobs = {str(_detail(e).get("job_id", "?")) for e in params.get("Entries", [])}
        elif model.name == "UpdateItem" and _is_announce_mark(params):
            jobs = {_job_id(params)}
        else:
            return
        for job_id in jobs:
            history = self.announcing.get(job_id, [])
            if history and history[-1][0] == "sent":
                history.append(("window", what))

    def _check_counters(self, pk: str) -> None:
        """Right after a counter write: the job's counters are within its total."""
        total = self.totals.get(pk)
        if total is None:
            return
        sums: Counter[str] = Counter()
        # GetItem-style reads: moto answers a Query by walking the whole table, a key directly
        keys = [{"pk": {"S": pk}, "sk": {"S": f"SHARD#{n:02d}"}} for n in range(self.shards)]
        for start in range(0, len(keys), 100):
            page = self.observer.batch_get_item(
                RequestItems={
                    self.jobs_table: {"Keys": keys[start : start + 100], "ConsistentRead": True}
                }
            )
            for item in page["Responses"].get(self.jobs_table, []):
                for name in ("succeeded", "failed", "cancelled", "cached"):
                    sums[name] += int(item.get(name, {}).get("N", 0))
        done = sums["succeeded"] + sums["failed"] + sums["cancelled"]
        if done > total or sums["cached"] > sums["succeeded"]:
            self.violations.append(f"{pk}: counters {dict(sums)} exceed total {total}")
        seen = self.max_counts.setdefault(pk, {})
        for name, value in sums.items():
            if value < seen.get(name, 0):
                self.violations.append(f"{pk}: counter {name} went down to {value}")
            seen[name] = max(value, seen.get(name, 0))
