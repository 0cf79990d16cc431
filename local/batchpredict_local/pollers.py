"""SQS event source mappings: pollers that feed queue messages to functions as Lambda does."""

from __future__ import annotations

import base64
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from batchpredict_local.resources import Queue
from batchpredict_local.runtime import FunctionRuntime, Outcome
from batchpredict_local.template import REGION

log = logging.getLogger("batchpredict_local.sqs")

# Lambda starts with five concurrent pollers for an SQS mapping without MaximumConcurrency
# (and scales up from there); the local stack keeps to those five.
DEFAULT_CONCURRENCY = 5
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's invocation payload limit caps a batch too
_LONG_POLL_SECONDS = 1  # short enough that stopping is quick
_SLOT_WAIT_SECONDS = 0.2


@dataclass(frozen=True)
class SqsSource:
    """One AWS::Lambda::EventSourceMapping on an SQS queue, as the template declares it."""

    logical_id: str
    function: str
    queue: Queue
    batch_size: int = 10
    batching_window_seconds: float = 0.0
    report_batch_item_failures: bool = False
    maximum_concurrency: int | None = None
    enabled: bool = True

    @property
    def concurrency(self) -> int:
        return self.maximum_concurrency or DEFAULT_CONCURRENCY


def sqs_record(message: dict[str, Any], queue: Queue) -> dict[str, Any]:
    """The Lambda event record for one received message."""
    attributes = dict(message.get("Attributes", {}))
    message_attributes = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        binary = value.get("BinaryValue")
        message_attributes[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": base64.b64encode(binary).decode() if binary is not None else None,
            "stringListValues": list(value.get("StringListValues", [])),
            "binaryListValues": [
                base64.b64encode(b).decode() for b in value.get("BinaryListValues", [])
            ],
            "dataType": value.get("DataType"),
        }
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue.arn,
        "awsRegion": REGION,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def failed_message_ids(outcome: Outcome, batch: list[dict[str, Any]], partial: bool) -> set[str]:
    """The batch's messages that Lambda would leave on the queue after this outcome.

    With ReportBatchItemFailures: only the reported ones, unless the response is malformed
    (then the whole batch, as Lambda treats it as a complete failure).
    """
    every = {record["messageId"] for record in batch}
    if not outcome.ok:
        return every
    if not partial:
        return set()
    response = outcome.result
    if response is None:
        return set()
    if not isinstance(response, dict):
        return every
    failures = response.get("batchItemFailures")
    if not failures:
        return set()
    if not isinstance(failures, list):
        return every
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in every:
            return every
        failed.add(identifier)
    return failed


class SqsPoller:
    """The pollers of one event source mapping: ``concurrency`` threads, one batch each."""

    def __init__(
        self,
        source: SqsSource,
        runtime: FunctionRuntime,
        sqs: Any,
        stopping: threading.Event,
    ) -> None:
        self.source = source
        self.runtime = runtime
        self._sqs = sqs
        self._stopping = stopping
        self._threads: list[threading.Thread] = []
        self._held_lock = threading.Lock()
        self._held = 0

    @property
    def held(self) -> int:
        """Messages received and not yet settled (deleted or left to time out)."""
        with self._held_lock:
            return self._held

    def _hold(self, delta: int) -> None:
        with self._held_lock:
            self._held += delta

    def start(self) -> None:
        if not self.source.enabled:
            log.info("%s is disabled in the template", self.source.logical_id)
            return
        for index in range(self.source.concurrency):
            thread = threading.Thread(
                target=self._run,
                name=f"sqs-{self.source.logical_id}-{index}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def join(self) -> None:
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    def _run(self) -> None:
        carry: list[dict[str, Any]] = []
        while not self._stopping.is_set():
            try:
                batch = self._collect(carry)
                if batch:
                    self._deliver(batch)
            except Exception:
                if self._stopping.is_set():
                    break
                log.exception("poller %s failed; retrying", self.source.logical_id)
                self._stopping.wait(1)
        if carry:
            self._release(carry)

    def _receive(self, count: int, wait: int) -> list[dict[str, Any]]:
        response = self._sqs.receive_message(
            QueueUrl=self.source.queue.url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        self._hold(len(messages))
        return messages

    def _collect(self, carry: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Up to BatchSize records, or fewer once the batching window has passed."""
        source = self.source
        batch = [sqs_record(m, source.queue) for m in carry]
        carry.clear()
        size = sum(len(r["body"].encode()) for r in batch)
        deadline = time.monotonic() + source.batching_window_seconds if batch else None
        while len(batch) < source.batch_size and not self._stopping.is_set():
            if deadline is None:
                wait = _LONG_POLL_SECONDS
            else:
                remaining = deadline - time.monotonic()
                if source.batching_window_seconds <= 0 or remaining <= 0:
                    break
                wait = 1 if remaining >= 1 else 0
            messages = self._receive(min(10, source.batch_size - len(batch)), wait)
            for message in messages:
                body_size = len(message.get("Body", "").encode())
                if batch and (size + body_size > MAX_PAYLOAD_BYTES or carry):
                    carry.append(message)  # starts the next batch
                    continue
                batch.append(sqs_record(message, source.queue))
                size += body_size
            if carry:
                break
            if batch and deadline is None:
                deadline = time.monotonic() + source.batching_window_seconds
            if batch and not messages and wait == 0:
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))  # type: ignore[operator]
        if self._stopping.is_set() and batch:
            self._release_records(batch)
            return []
        return batch

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        source, runtime = self.source, self.runtime
        try:
            while True:
                if self._stopping.is_set():
                    self._change_visibility([r["receiptHandle"] for r in batch])
                    return
                with runtime.slot(timeout=_SLOT_WAIT_SECONDS) as acquired:
                    if not acquired:
                        if runtime.throttled_entirely:
                            self._stopping.wait(_SLOT_WAIT_SECONDS)
                        continue
                    outcome = runtime.invoke(
                        {"Records": batch}, source=source.logical_id, batch_size=len(batch)
                    )
                    break
            failed = failed_message_ids(outcome, batch, source.report_batch_item_failures)
            done = [r for r in batch if r["messageId"] not in failed]
            self._delete(done)
            if outcome.ok and not failed:
                result = "ok"
            elif outcome.ok:
                result = f"{len(failed)} failed"
            else:
                result = f"error ({outcome.describe_error()})"
            log.info(
                "%s -> %s batch=%d %s %.0fms",
                source.queue.name,
                source.function,
                len(batch),
                result,
                outcome.duration_ms,
            )
        finally:
            self._hold(-len(batch))

    def _delete(self, records: list[dict[str, Any]]) -> None:
        for start in range(0, len(records), 10):
            chunk = records[start : start + 10]
            response = self._sqs.delete_message_batch(
                QueueUrl=self.source.queue.url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)
                ],
            )
            for failure in response.get("Failed", []):
                log.warning("could not delete a message: %s", failure.get("Message"))

    def _release_records(self, records: list[dict[str, Any]]) -> None:
        """Stopping: make received, undelivered messages visible again at once."""
        self._change_visibility([r["receiptHandle"] for r in records])
        self._hold(-len(records))

    def _release(self, messages: list[dict[str, Any]]) -> None:
        self._change_visibility([m["ReceiptHandle"] for m in messages])
        self._hold(-len(messages))

    def _change_visibility(self, handles: list[str]) -> None:
        for start in range(0, len(handles), 10):
            chunk = handles[start : start + 10]
            try:
                self._sqs.change_message_visibility_batch(
                    QueueUrl=self.source.queue.url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                        for i, h in enumerate(chunk)
                    ],
                )
            except Exception:
                log.debug("could not release messages", exc_info=True)
