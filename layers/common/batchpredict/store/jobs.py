"""The jobs table: job items, counter shards, chunk manifests, chunk results and job events.

Layout (pk = TENANT#<tenant>#JOB#<job_id>):
  sk META            the job: settings, status, timestamps (GSI by-tenant: gsi1pk/gsi1sk)
  sk SHARD#nn        counters, ADDed by chunk transactions; status sums them with one Query
  sk MANIFEST#nnnnn  the entity ids of up to 1,000 items, so any chunk can be re-sent
  sk RESULT#<chunk>  one chunk's item results (zlib JSON), written once: the exactly-once key
  sk EVENT#<ts>#<n>  the job's history
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from batchpredict.chunking import (
    Chunk,
    base_chunk_id,
    chunks_per_manifest_page,
    plan_chunks,
    shard_of,
)
from batchpredict.constants import ACTIVE_STATUSES, JobStatus, Priority
from batchpredict.store import dynamo

COUNTER_FIELDS = ("succeeded", "failed", "cancelled", "cached", "retried")


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return iso(datetime.now(UTC))


def parse_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def job_pk(tenant: str, job_id: str) -> str:
    return f"TENANT#{tenant}#JOB#{job_id}"


def tenant_pk(tenant: str) -> str:
    return f"TENANT#{tenant}"


SWEEP_INDEX = "sweep"
SWEEP_PARTITIONS = 4


def sweep_partition(kind: str, pk: str) -> str:
    """The sparse `sweep` index spreads active jobs and due portfolios over a few partitions."""
    return f"{kind}#{zlib.crc32(pk.encode()) % SWEEP_PARTITIONS}"


@dataclass(slots=True)
class Job:
    tenant: str
    job_id: str
    prediction_type: str
    predictor_version: str
    parameters: dict[str, Any]
    total_items: int
    chunk_size: int
    chunk_count: int
    counter_shards: int
    created_at: str
    expires_at: int
    status: JobStatus = JobStatus.QUEUED
    priority: Priority = Priority.NORMAL
    metadata: dict[str, str] = field(default_factory=dict)
    client_token: str | None = None
    request_hash: str = ""
    tolerated_failure_percent: float = 100.0
    use_cache: bool = True
    callback_url: str | None = None
    portfolio_id: str | None = None
    input_uri: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str | None = None
    cancel_requested_at: str | None = None
    failure_tolerance_exceeded: bool = False
    # What the sweep last saw: a job whose done count stops moving is re-dispatched.
    swept_done: int = 0
    swept_at: str | None = None
    # The end is announced (history event + EventBridge) after the job turns terminal; until
    # it is, the job stays on the sweep index so that a failed announcement is retried.
    announced_at: str | None = None
    announcing_until: str | None = None

    @property
    def pk(self) -> str:
        return job_pk(self.tenant, self.job_id)

    @property
    def accepts_predictions(self) -> bool:
        return self.status in ACTIVE_STATUSES and not self.failure_tolerance_exceeded

    def to_item(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = str(self.status)
        data["priority"] = str(self.priority)
        data["parameters"] = json.dumps(self.parameters, sort_keys=True)
        data.update(
            pk=self.pk,
            sk="META",
            gsi1pk=tenant_pk(self.tenant),
            gsi1sk=f"{self.created_at}#{self.job_id}",
        )
        if not self.status.is_terminal or self.announced_at is None:
            data.update(sweep_pk=sweep_partition("ACTIVE", self.pk), sweep_sk=self.created_at)
        return data

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Job:
        fields = {k: item[k] for k in cls.__dataclass_fields__ if k in item}
        fields["parameters"] = json.loads(item.get("parameters") or "{}")
        fields["status"] = JobStatus(item["status"])
        fields["priority"] = Priority(item.get("priority", Priority.NORMAL))
        fields["metadata"] = dict(item.get("metadata") or {})
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class Counts:
    total: int
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    cached: int = 0
    retried: int = 0

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.cancelled

    @property
    def pending(self) -> int:
        return self.total - self.done


@dataclass(frozen=True, slots=True)
class ResultRow:
    """One item's outcome, as the results endpoint shows it."""

    entity_id: str
    status: str
    prediction: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    quality: float | None = None
    cached: bool = False
    attempts: int = 1
    duration_ms: float = 0.0

    def to_compact(self) -> list[Any]:
        return [
            self.entity_id,
            self.status,
            self.prediction,
            self.error,
            self.quality,
            self.cached,
            self.attempts,
            self.duration_ms,
        ]

    @classmethod
    def from_compact(cls, row: Sequence[Any]) -> ResultRow:
        return cls(*row)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ChunkResult:
    """What one chunk settled, plus the retry chunk that carries its still-transient items."""

    chunk_id: str
    rows: tuple[ResultRow, ...]
    retry: Chunk | None = None
    retry_delay_seconds: int = 0

    def counts(self) -> dict[str, int]:
        totals = dict.fromkeys(COUNTER_FIELDS, 0)
        for row in self.rows:
            totals[row.status] += 1
            totals["cached"] += int(row.cached)
        totals["retried"] = len(self.retry.entity_ids) if self.retry else 0
        return totals


def encode_rows(rows: Sequence[ResultRow]) -> bytes:
    payload = json.dumps([r.to_compact() for r in rows], separators=(",", ":"))
    return zlib.compress(payload.encode(), level=6)


def decode_rows(blob: bytes) -> list[ResultRow]:
    return [ResultRow.from_compact(r) for r in json.loads(zlib.decompress(blob))]


class JobStore:
    """Data access for the jobs table. Built by `stores()` with the table name and a client."""

    def __init__(self, client: Any, table: str, retention_days: int) -> None:
        self.client = client
        self.table = table
        self.retention = timedelta(days=retention_days)

    # ------------------------------------------------------------ helpers

    def expires_at(self, created: datetime | None = None) -> int:
        return int(((created or datetime.now(UTC)) + self.retention).timestamp())

    def _live(self, item: Mapping[str, Any] | None) -> bool:
        """DynamoDB deletes expired items up to days late (moto never): check expires_at."""
        if not item:
            return False
        expires = item.get("expires_at")
        return expires is None or int(expires) > int(datetime.now(UTC).timestamp())

    # ------------------------------------------------------------ jobs

    def get(self, tenant: str, job_id: str, *, consistent: bool = False) -> Job | None:
        response = self.client.get_item(
            TableName=self.table,
            Key=dynamo.serialize({"pk": job_pk(tenant, job_id), "sk": "META"}),
            ConsistentRead=consistent,
        )
        item = dynamo.deserialize(response["Item"]) if "Item" in response else None
        return Job.from_item(item) if item and self._live(item) else None

    def get_many(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Job]:
        items = dynamo.batch_get(
            self.client,
            self.table,
            [{"pk": job_pk(t, j), "sk": "META"} for t, j in keys],
            consistent=True,
        )
        jobs = (Job.from_item(i) for i in items if self._live(i))
        return {(job.tenant, job.job_id): job for job in jobs}

    def create(self, job: Job, entity_ids: Sequence[str]) -> bool:
        """Write the manifest, then the job item (the commit point). False if the job exists.

        The manifest goes first so that a job item never exists without it; a crash between
        the two leaves only manifest pages, which expire, and a retry rewrites them identically.
        """
        per_page = chunks_per_manifest_page(job.chunk_size) * job.chunk_size
        pages = [
            {
                "pk": job.pk,
                "sk": f"MANIFEST#{n:05d}",
                "ids": json.dumps(list(entity_ids[start : start + per_page])),
                "expires_at": job.expires_at,
            }
            for n, start in enumerate(range(0, len(entity_ids), per_page))
        ]
        event = self._event_item(job, "JobCreated", {"total_items": job.total_items})
        dynamo.batch_write(self.client, self.table, [*pages, event])
        try:
            self.client.put_item(
                TableName=self.table,
                Item=dynamo.serialize(job.to_item()),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def manifest_chunks(self, job: Job, pages: range | None = None) -> list[Chunk]:
        """The job's planned chunks (all, or those of some manifest pages), in order."""
        return [chunk for page in self.manifest_pages(job, pages).values() for chunk in page]

    def manifest_pages(self, job: Job, pages: range | None = None) -> dict[int, list[Chunk]]:
        """The job's planned chunks by manifest page (all pages, or some), in order."""
        if pages is None:
            condition = "pk = :pk AND begins_with(sk, :p)"
            values = {":pk": job.pk, ":p": "MANIFEST#"}
        else:
            condition = "pk = :pk AND sk BETWEEN :first AND :last"
            values = {
                ":pk": job.pk,
                ":first": f"MANIFEST#{pages.start:05d}",
                ":last": f"MANIFEST#{pages.stop - 1:05d}",
            }
        per_page = chunks_per_manifest_page(job.chunk_size)
        by_page: dict[int, list[Chunk]] = {}
        for item in dynamo.query_all(
            self.client,
            TableName=self.table,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=dynamo.values(values),
            ConsistentRead=True,
        ):
            page = int(item["sk"].removeprefix("MANIFEST#"))
            by_page[page] = [
                Chunk(base_chunk_id(page * per_page + int(chunk.chunk_id)), chunk.entity_ids)
                for chunk in plan_chunks(json.loads(item["ids"]), job.chunk_size)
            ]
        return by_page

    def _update_meta(
        self, job: Job, update: str, condition: str, values: Mapping[str, Any]
    ) -> None:
        """One conditional UpdateItem of the job's META item (`#s` names its status)."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "Key": dynamo.serialize({"pk": job.pk, "sk": "META"}),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": dynamo.values(values),
        }
        if "#s" in update or "#s" in condition:
            request["ExpressionAttributeNames"] = {"#s": "status"}
        self.client.update_item(**request)

    def _transition(self, job: Job, update: str, condition: str, values: Mapping[str, Any]) -> bool:
        """`_update_meta`; False when its condition no longer holds (another caller won)."""
        try:
            self._update_meta(job, update, condition, values)
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def mark_processing(self, job: Job) -> bool:
        """QUEUED -> PROCESSING, once; the first chunk to run does it."""
        now = now_iso()
        if not self._transition(
            job,
            "SET #s = :processing, started_at = :now, updated_at = :now",
            "#s = :queued",
            {":processing": JobStatus.PROCESSING, ":queued": JobStatus.QUEUED, ":now": now},
        ):
            return False
        job.status, job.started_at = JobStatus.PROCESSING, now
        self.put_event(job, "JobStarted")
        return True

    def request_cancel(self, job: Job) -> bool:
        """QUEUED/PROCESSING -> CANCELLING. False if the job was no longer active."""
        now = now_iso()
        if not self._transition(
            job,
            "SET #s = :cancelling, cancel_requested_at = :now, updated_at = :now",
            "#s IN (:queued, :processing)",
            {
                ":cancelling": JobStatus.CANCELLING,
                ":queued": JobStatus.QUEUED,
                ":processing": JobStatus.PROCESSING,
                ":now": now,
            },
        ):
            return False
        job.status, job.cancel_requested_at = JobStatus.CANCELLING, now
        self.put_event(job, "CancelRequested")
        return True

    def mark_failure_tolerance_exceeded(self, job: Job) -> None:
        self._update_meta(
            job,
            "SET failure_tolerance_exceeded = :t, updated_at = :now",
            "attribute_exists(pk)",
            {":t": True, ":now": now_iso()},
        )
        job.failure_tolerance_exceeded = True

    def finalize(self, job: Job, status: JobStatus, *, lease_seconds: int) -> bool:
        """Move a job to a terminal status exactly once; True for the caller that did it.

        The caller also holds the claim to announce the end (see `claim_announcement`).
        """
        now = datetime.now(UTC)
        until = iso(now + timedelta(seconds=lease_seconds))
        if not self._transition(
            job,
            "SET #s = :final, finished_at = :now, updated_at = :now, announcing_until = :until",
            "#s IN (:q, :p, :c)",
            {
                ":final": status,
                ":now": iso(now),
                ":until": until,
                ":q": JobStatus.QUEUED,
                ":p": JobStatus.PROCESSING,
                ":c": JobStatus.CANCELLING,
            },
        ):
            return False
        job.status, job.finished_at, job.announcing_until = status, iso(now), until
        return True

    def claim_announcement(self, job: Job, *, lease_seconds: int) -> bool:
        """Take the right to announce a finished job's end, if it is unannounced and unclaimed.

        A claim whose holder crashed lapses after `lease_seconds`; then another caller (a
        replayed chunk, the sweep) takes it over.
        """
        now = datetime.now(UTC)
        until = iso(now + timedelta(seconds=lease_seconds))
        if not self._transition(
            job,
            "SET announcing_until = :until",
            "attribute_exists(finished_at) AND attribute_not_exists(announced_at) AND "
            "(attribute_not_exists(announcing_until) OR announcing_until < :now)",
            {":until": until, ":now": iso(now)},
        ):
            return False
        job.announcing_until = until
        return True

    def release_announcement(self, job: Job) -> None:
        """Give the claim back after a failed announcement, so a retry need not wait it out."""
        self._transition(
            job,
            "REMOVE announcing_until",
            "announcing_until = :mine",
            {":mine": job.announcing_until},
        )
        job.announcing_until = None

    def mark_announced(self, job: Job) -> None:
        """The end is announced: the job leaves the sweep index for good."""
        now = now_iso()
        self._update_meta(
            job,
            "SET announced_at = :now REMOVE announcing_until, sweep_pk, sweep_sk",
            "attribute_exists(pk)",
            {":now": now},
        )
        job.announced_at, job.announcing_until = now, None

    def list_for_tenant(
        self, tenant: str, *, limit: int, start_key: dict[str, Any] | None
    ) -> tuple[list[Job], dict[str, Any] | None]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "by-tenant",
            "KeyConditionExpression": "gsi1pk = :t",
            "ExpressionAttributeValues": dynamo.values({":t": tenant_pk(tenant)}),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if start_key:
            request["ExclusiveStartKey"] = start_key
        response = self.client.query(**request)
        items = [dynamo.deserialize(i) for i in response.get("Items", [])]
        jobs = [Job.from_item(i) for i in items if self._live(i)]
        return jobs, response.get("LastEvaluatedKey")

    def created_since(self, gsi1pk: str, since: str) -> Iterator[Job]:
        for item in dynamo.query_all(
            self.client,
            TableName=self.table,
            IndexName="by-tenant",
            KeyConditionExpression="gsi1pk = :t AND gsi1sk >= :since",
            ExpressionAttributeValues=dynamo.values({":t": gsi1pk, ":since": since}),
        ):
            if self._live(item):
                yield Job.from_item(item)

    def list_key(self, tenant: str, created_at: str, job_id: str) -> dict[str, Any]:
        """The by-tenant index's key of a job, to resume a listing after it."""
        return dynamo.serialize(
            {
                "pk": job_pk(tenant, job_id),
                "sk": "META",
                "gsi1pk": tenant_pk(tenant),
                "gsi1sk": f"{created_at}#{job_id}",
            }
        )

    def active_jobs(self) -> list[Job]:
        """Every job not yet terminal, from the sparse sweep index (keys only), then its item."""
        keys: list[dict[str, Any]] = []
        for partition in range(SWEEP_PARTITIONS):
            keys.extend(
                {"pk": item["pk"], "sk": item["sk"]}
                for item in dynamo.query_all(
                    self.client,
                    TableName=self.table,
                    IndexName=SWEEP_INDEX,
                    KeyConditionExpression="sweep_pk = :p",
                    ExpressionAttributeValues=dynamo.values({":p": f"ACTIVE#{partition}"}),
                )
            )
        items = dynamo.batch_get(self.client, self.table, keys, consistent=True)
        return [Job.from_item(i) for i in items if self._live(i)]

    def note_sweep(self, job: Job, done: int) -> None:
        now = now_iso()
        self._update_meta(
            job,
            "SET swept_done = :d, swept_at = :now",
            "attribute_exists(pk)",
            {":d": done, ":now": now},
        )
        job.swept_done, job.swept_at = done, now

    # ------------------------------------------------------------ counters

    def counts(self, job: Job, *, consistent: bool = True) -> Counts:
        totals = dict.fromkeys(COUNTER_FIELDS, 0)
        for shard in dynamo.query_all(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
            ExpressionAttributeValues=dynamo.values({":pk": job.pk, ":p": "SHARD#"}),
            ConsistentRead=consistent,
        ):
            for name in COUNTER_FIELDS:
                totals[name] += int(shard.get(name, 0))
        return Counts(total=job.total_items, **totals)

    # ------------------------------------------------------------ results

    def result_item(self, job: Job, result: ChunkResult) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": job.pk,
            "sk": f"RESULT#{result.chunk_id}",
            "rows": encode_rows(result.rows),
            "created_at": now_iso(),
            "expires_at": job.expires_at,
            **{f"n_{k}": v for k, v in result.counts().items()},
        }
        if result.retry:
            item["retry_chunk_id"] = result.retry.chunk_id
            item["retry_ids"] = json.dumps(result.retry.entity_ids)
            item["retry_attempt"] = result.retry.attempt
            item["retry_delay_seconds"] = result.retry_delay_seconds
        return item

    def get_result(self, job: Job, chunk_id: str) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.table,
            Key=dynamo.serialize({"pk": job.pk, "sk": f"RESULT#{chunk_id}"}),
            ConsistentRead=True,
        )
        return dynamo.deserialize(response["Item"]) if "Item" in response else None

    def recorded_chunks(self, keys: Sequence[tuple[Job, str]]) -> set[tuple[str, str]]:
        """Which (job pk, chunk id) of `keys` already have a result (one batched, keys-only read)."""
        items = dynamo.batch_get(
            self.client,
            self.table,
            [{"pk": job.pk, "sk": f"RESULT#{chunk_id}"} for job, chunk_id in keys],
            projection="pk, sk",
            consistent=True,
        )
        return {(i["pk"], i["sk"].removeprefix("RESULT#")) for i in items}

    def result_chunk_ids(self, job: Job) -> dict[str, dict[str, Any]]:
        """chunk id -> the result item's retry fields, for every recorded chunk (no rows)."""
        found: dict[str, dict[str, Any]] = {}
        for item in dynamo.query_all(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
            ExpressionAttributeValues=dynamo.values({":pk": job.pk, ":p": "RESULT#"}),
            ProjectionExpression="sk, retry_chunk_id, retry_ids, retry_attempt",
            ConsistentRead=True,
        ):
            found[item["sk"].removeprefix("RESULT#")] = item
        return found

    def iter_results(
        self, job: Job, *, from_sk: str | None
    ) -> Iterator[tuple[str, list[ResultRow]]]:
        """(sk, rows) of each chunk result in chunk order, from `from_sk` (inclusive) on."""
        yield from (
            (item["sk"], decode_rows(item["rows"]))
            for item in dynamo.query_all(
                self.client,
                TableName=self.table,
                KeyConditionExpression="pk = :pk AND sk BETWEEN :from AND :to",
                ExpressionAttributeValues=dynamo.values(
                    {":pk": job.pk, ":from": from_sk or "RESULT#", ":to": "RESULT#\uffff"}
                ),
                ProjectionExpression="sk, #rows",
                ExpressionAttributeNames={"#rows": "rows"},
                Limit=25,
            )
        )

    # ------------------------------------------------------------ events

    def _event_item(
        self, job: Job, kind: str, detail: Mapping[str, Any] | None, at: str | None = None
    ) -> dict[str, Any]:
        at = at or now_iso()
        return {
            "pk": job.pk,
            "sk": f"EVENT#{at}#{kind}",
            "kind": kind,
            "at": at,
            "detail": json.dumps(dict(detail or {}), sort_keys=True),
            "expires_at": job.expires_at,
        }

    def put_event(
        self,
        job: Job,
        kind: str,
        detail: Mapping[str, Any] | None = None,
        *,
        at: str | None = None,
    ) -> None:
        """Add to the job's history; an event given its own `at` is written once however often."""
        self.client.put_item(
            TableName=self.table, Item=dynamo.serialize(self._event_item(job, kind, detail, at))
        )

    def events(self, job: Job) -> list[dict[str, Any]]:
        items = dynamo.query_all(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
            ExpressionAttributeValues=dynamo.values({":pk": job.pk, ":p": "EVENT#"}),
        )
        return [
            {"at": i["at"], "kind": i["kind"], "detail": json.loads(i.get("detail") or "{}")}
            for i in items
        ]


# 25 chunks: at most 50 actions (the limit is 100) and far under the 4 MB request limit.
MAX_CHUNKS_PER_TRANSACTION = 25

Outcome = bool | Exception  # recorded now, recorded before (a replay), or why it could not be


class ChunkAccounting:
    """The exactly-once write: a chunk's result and its counts in one TransactWriteItems.

    Put the chunk's result item if it does not exist, and ADD the chunk's counts to one counter
    shard. A replayed chunk fails the condition, so nothing is counted twice; the worker, the DLQ
    consumer and cancellation all record through here. The chunks of one worker batch share one
    transaction (their ADDs to the same shard merged); if any of them fails, each is retried in
    its own transaction, so one duplicate or conflict never decides for the others.
    """

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def record(self, job: Job, result: ChunkResult) -> bool:
        """True if this call recorded the chunk, False if it had been recorded already."""
        (outcome,) = self.record_many([(job, result)])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def record_many(self, entries: Sequence[tuple[Job, ChunkResult]]) -> list[Outcome]:
        keys = {(job.pk, result.chunk_id) for job, result in entries}
        if len(keys) < len(entries):
            # The same chunk twice in one batch: one at a time, so the first copy counts.
            return [self._record_group([entry])[0] for entry in entries]
        outcomes: list[Outcome] = []
        for start in range(0, len(entries), MAX_CHUNKS_PER_TRANSACTION):
            outcomes.extend(self._record_group(entries[start : start + MAX_CHUNKS_PER_TRANSACTION]))
        return outcomes

    def _record_group(self, group: Sequence[tuple[Job, ChunkResult]]) -> list[Outcome]:
        try:
            self.store.client.transact_write_items(TransactItems=self._actions(group))
        except self.store.client.exceptions.TransactionCanceledException as error:
            if len(group) > 1:
                return [self._record_group([entry])[0] for entry in group]
            reasons = error.response.get("CancellationReasons") or []
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                return [False]
            return [error]
        except Exception as error:
            if len(group) > 1:
                return [self._record_group([entry])[0] for entry in group]
            return [error]
        return [True] * len(group)

    def _actions(self, group: Sequence[tuple[Job, ChunkResult]]) -> list[dict[str, Any]]:
        puts = []
        shards: dict[tuple[str, str], dict[str, Any]] = {}
        for job, result in group:
            puts.append(
                {
                    "Put": {
                        "TableName": self.store.table,
                        "Item": dynamo.serialize(self.store.result_item(job, result)),
                        "ConditionExpression": "attribute_not_exists(sk)",
                    }
                }
            )
            key = (job.pk, f"SHARD#{shard_of(result.chunk_id, job.counter_shards):02d}")
            entry = shards.setdefault(key, {"expires_at": job.expires_at, "counts": {}})
            for name, value in result.counts().items():
                entry["counts"][name] = entry["counts"].get(name, 0) + value
        updates = [
            {
                "Update": {
                    "TableName": self.store.table,
                    "Key": dynamo.serialize({"pk": pk, "sk": sk}),
                    "UpdateExpression": "ADD "
                    + ", ".join(f"{name} :{name}" for name in entry["counts"])
                    + " SET expires_at = :exp",
                    "ExpressionAttributeValues": dynamo.values(
                        {
                            **{f":{k}": v for k, v in entry["counts"].items()},
                            ":exp": entry["expires_at"],
                        }
                    ),
                }
            }
            for (pk, sk), entry in shards.items()
        ]
        return puts + updates
