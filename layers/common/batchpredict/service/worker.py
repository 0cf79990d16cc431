"""The worker: turns one SQS batch of chunks into predictions, recorded exactly once.

Reads are made for the whole batch at once (jobs, entities and their neighbourhoods, cache
entries), and the batch's chunk results are written together (store/jobs.py: ChunkAccounting),
so a batch of ten 25-item chunks costs a handful of requests rather than dozens. A chunk whose
processing or recording fails is reported alone in `batchItemFailures` and comes back.
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError

from batchpredict.chunking import Chunk, retry_chunk_id
from batchpredict.constants import ErrorCode, ItemStatus, Metric
from batchpredict.entities import Entity
from batchpredict.models import ChunkMessage, FanoutMessage
from batchpredict.observability import logger, metrics
from batchpredict.predictors import (
    EntityGraph,
    Outcome,
    Prediction,
    PredictionError,
    Predictor,
    get_predictor,
)
from batchpredict.service.completion import check_job_or_leave_it_to_the_sweep
from batchpredict.service.dispatch import continue_fanout, parse_fanout, send_chunks
from batchpredict.store import Stores
from batchpredict.store.cache import CacheKey, inputs_fingerprint, params_hash
from batchpredict.store.jobs import ChunkResult, Job, ResultRow

MAX_GRAPH_ENTITIES = 50_000
MAX_PREDICTION_BYTES = 8_192
INLINE_BACKOFF_BASE_S = 0.05
INLINE_BACKOFF_CAP_S = 2.0

JobKey = tuple[str, str]


class TimeRunningOutError(RuntimeError):
    """Too little of the invocation is left to finish a chunk; its message comes back later."""


class UnparseableChunkError(ValueError):
    """A message body that is not a chunk: it fails until the queue dead-letters it."""


def parse_chunk(body: str) -> ChunkMessage:
    try:
        return ChunkMessage.model_validate_json(body)
    except ValidationError as error:
        raise UnparseableChunkError(f"not a chunk message: {error.errors()[:3]}") from None


def full_jitter(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Capped exponential backoff with full jitter (the AWS Architecture Blog's recommendation)."""
    return rng.uniform(0, min(cap, base * 2**attempt))


@dataclass
class Clock:
    """What the worker asks of time; tests pass their own."""

    remaining_ms: Callable[[], int]
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)


@dataclass
class _Prepared:
    message: ChunkMessage
    job: Job | None
    predictor: Predictor[Any] | None = None
    params: Any = None
    graph: EntityGraph | None = None
    cache_keys: dict[str, CacheKey] = field(default_factory=dict)
    cache_hits: dict[str, Any] = field(default_factory=dict)
    already_recorded: bool = False


class BatchWork:
    """One invocation's batch: `prepare` reads in bulk, `handle` does one chunk, `finish` ends."""

    def __init__(self, stores: Stores, clock: Clock) -> None:
        self.stores = stores
        self.clock = clock
        self.prepared: dict[str, _Prepared] = {}  # by message body
        self.fanouts: dict[str, FanoutMessage] = {}  # by message body
        self.touched: dict[JobKey, Job] = {}
        self.prepare_error: Exception | None = None
        self.to_record: list[tuple[str, Job, ChunkResult]] = []  # (message id, job, result)

    # ------------------------------------------------------------ bulk reads

    def prepare(self, bodies: Iterable[str]) -> None:
        """Parse every body and read what the batch needs. A failure here fails each chunk."""
        messages = {}
        for body in bodies:
            try:
                messages[body] = parse_chunk(body)
            except UnparseableChunkError:
                if fanout := parse_fanout(body):
                    self.fanouts[body] = fanout
                continue  # else handle() raises for it, so it alone fails
        try:
            self._prefetch(messages)
        except Exception as error:
            logger.exception("batch prefetch failed; every chunk of the batch will retry")
            self.prepare_error = error

    def _prefetch(self, messages: Mapping[str, ChunkMessage]) -> None:
        keys = {(m.tenant, m.job_id) for m in messages.values()}
        jobs = self.stores.jobs.get_many(sorted(keys)) if keys else {}
        for body, message in messages.items():
            self.prepared[body] = _Prepared(message, jobs.get((message.tenant, message.job_id)))
        self._skip_recorded_redispatches()
        live = [
            p
            for p in self.prepared.values()
            if p.job and p.job.accepts_predictions and not p.already_recorded
        ]
        for p in live:
            assert p.job is not None
            p.predictor = get_predictor(p.job.prediction_type)
            p.params = p.predictor.parse_params(p.job.parameters)
        self._load_graphs(live)
        self._read_cache(live)

    def _skip_recorded_redispatches(self) -> None:
        """A chunk the sweep re-sent may have been only slow: don't predict it twice."""
        resent = [p for p in self.prepared.values() if p.message.redispatched and p.job]
        if not resent:
            return
        recorded = self.stores.jobs.recorded_chunks(
            [(p.job, p.message.chunk_id) for p in resent if p.job]
        )
        for p in resent:
            assert p.job is not None
            p.already_recorded = (p.job.pk, p.message.chunk_id) in recorded

    def _load_graphs(self, work: Sequence[_Prepared]) -> None:
        """Each tenant's targets and their neighbourhoods, hop by hop, in batched reads."""
        by_tenant: dict[str, list[_Prepared]] = defaultdict(list)
        for p in work:
            by_tenant[p.message.tenant].append(p)
        for tenant, group in by_tenant.items():
            loaded: dict[str, Entity] = {}
            absent: set[str] = set()
            frontier = {i for p in group for i in p.message.entity_ids}
            hops = max(p.predictor.neighbour_hops(p.params) for p in group if p.predictor)
            for hop in range(hops + 1):
                wanted = frontier - loaded.keys() - absent
                if not wanted or len(loaded) >= MAX_GRAPH_ENTITIES:
                    break
                found = self.stores.entities.get_many(tenant, sorted(wanted))
                loaded.update(found)
                absent |= wanted - found.keys()
                if hop < hops:
                    frontier = {n.entity_id for e in found.values() for n in e.neighbours}
            graph = EntityGraph(loaded)
            for p in group:
                p.graph = graph

    def _read_cache(self, work: Sequence[_Prepared]) -> None:
        keys: list[CacheKey] = []
        generations = {
            t: self.stores.cache.generations(t) for t in {p.message.tenant for p in work}
        }
        for p in work:
            assert p.job is not None
            assert p.predictor is not None
            assert p.graph is not None
            phash = params_hash(p.job.parameters)
            for entity_id in p.message.entity_ids:
                entity = p.graph.get(entity_id)
                if entity is None:
                    continue
                inputs = p.predictor.input_ids(entity, p.graph, p.params)
                versions = [(i, e.version) for i in inputs if (e := p.graph.get(i)) is not None]
                key = CacheKey(
                    p.job.tenant,
                    entity_id,
                    p.job.prediction_type,
                    p.job.predictor_version,
                    phash,
                    inputs_fingerprint(versions),
                    generations[p.job.tenant].get(p.job.prediction_type, 0),
                )
                p.cache_keys[entity_id] = key
                if p.job.use_cache:
                    keys.append(key)
        hits = self.stores.cache.get_many(keys) if keys else {}
        for p in work:
            p.cache_hits = {i: hits[k] for i, k in p.cache_keys.items() if k in hits}

    # ------------------------------------------------------------ one chunk

    def handle(self, message_id: str, body: str) -> None:
        """Process one chunk (recorded by finish()); raise to have its message come back."""
        if self.prepare_error is not None:
            raise self.prepare_error
        if self.clock.remaining_ms() < self.stores.settings.time_safety_margin_ms:
            raise TimeRunningOutError("too little time left in this invocation for a chunk")
        if fanout := self.fanouts.get(body):
            margin = self.stores.settings.time_safety_margin_ms
            continue_fanout(self.stores, fanout, lambda: self.clock.remaining_ms() >= margin)
            return
        prepared = self.prepared.get(body)
        if prepared is None:
            parse_chunk(body)  # raises UnparseableChunkError with the reason
            raise RuntimeError("chunk was not prepared")
        message, job = prepared.message, prepared.job
        logger.append_keys(tenant=message.tenant, job_id=message.job_id, chunk_id=message.chunk_id)
        if job is None:
            # The job expired or never existed (a stray message): nothing can count it.
            logger.warning("chunk for an unknown job dropped", extra={"job_id": message.job_id})
            return
        self.touched[(job.tenant, job.job_id)] = job
        if job.status.is_terminal:
            metrics.add_metric(name=Metric.DUPLICATE_CHUNKS, unit=MetricUnit.Count, value=1)
            return
        if prepared.already_recorded:
            self._after_record(job, ChunkResult(message.chunk_id, ()), recorded=False)
            return
        if not job.accepts_predictions:
            self.to_record.append((message_id, job, self._cancelled(job, message)))
            return
        if job.status.value == "QUEUED":
            self.stores.jobs.mark_processing(job)
        started = time.perf_counter()
        self.to_record.append((message_id, job, self._predict_chunk(prepared)))
        metrics.add_metric(
            name=Metric.CHUNK_LATENCY,
            unit=MetricUnit.Milliseconds,
            value=(time.perf_counter() - started) * 1000,
        )

    def _cancelled(self, job: Job, message: ChunkMessage) -> ChunkResult:
        if job.failure_tolerance_exceeded:
            code, why = (
                ErrorCode.FAILURE_TOLERANCE_EXCEEDED,
                "the job exceeded its failure tolerance",
            )
        else:
            code, why = ErrorCode.CANCELLED, "the job was cancelled"
        error = {"code": str(code), "message": why}
        rows = tuple(
            ResultRow(i, ItemStatus.CANCELLED, error=error, attempts=message.attempt)
            for i in message.entity_ids
        )
        return ChunkResult(message.chunk_id, rows)

    def _predict_chunk(self, p: _Prepared) -> ChunkResult:
        assert p.job
        assert p.predictor
        assert p.graph is not None
        message, settings = p.message, self.stores.settings
        rows: dict[str, ResultRow] = {}
        targets: list[Entity] = []
        for entity_id in message.entity_ids:
            hit = p.cache_hits.get(entity_id)
            entity = p.graph.get(entity_id)
            if hit is not None:
                rows[entity_id] = ResultRow(
                    entity_id, ItemStatus.SUCCEEDED, hit.value, None, hit.quality, True,
                    message.attempt, 0.0,
                )  # fmt: skip
            elif entity is None:
                rows[entity_id] = _failed(
                    entity_id, ErrorCode.ENTITY_NOT_FOUND, "entity is not stored", message.attempt
                )
            else:
                targets.append(entity)
        metrics.add_metric(name=Metric.CACHE_HITS, unit=MetricUnit.Count, value=len(p.cache_hits))
        metrics.add_metric(name=Metric.CACHE_MISSES, unit=MetricUnit.Count, value=len(targets))

        settled, leftover, per_item_ms = self._predict_with_retries(p, targets)
        to_cache = []
        for entity in targets:
            outcome = settled.get(entity.entity_id)
            if outcome is None:
                continue
            row = _row(entity.entity_id, outcome, message.attempt, per_item_ms)
            rows[entity.entity_id] = row
            if row.status == ItemStatus.SUCCEEDED and row.prediction is not None:
                to_cache.append((p.cache_keys[entity.entity_id], row.prediction, row.quality))
        if to_cache:
            self.stores.cache.put_many(to_cache, self._ttl(p.predictor))

        retry = None
        delay = 0
        if leftover and message.attempt < settings.max_attempts:
            attempt = message.attempt + 1
            retry = Chunk(
                retry_chunk_id(message.chunk_id, attempt), tuple(leftover), attempt=attempt
            )
            delay = min(900, settings.retry_base_delay_seconds * 2 ** (message.attempt - 1))
        else:
            for entity_id, error in leftover.items():
                rows[entity_id] = _failed(
                    entity_id,
                    ErrorCode.TRANSIENT_EXHAUSTED,
                    f"still failing after {message.attempt} attempt(s): {error.message}",
                    message.attempt,
                )
        ordered = tuple(rows[i] for i in message.entity_ids if i in rows)
        return ChunkResult(message.chunk_id, ordered, retry, delay)

    def _ttl(self, predictor: Predictor[Any]) -> int:
        overrides = self.stores.settings.cache_ttl_overrides
        return overrides.get(predictor.prediction_type, predictor.cache_ttl_seconds)

    def _predict_with_retries(
        self, p: _Prepared, targets: list[Entity]
    ) -> tuple[dict[str, Outcome], dict[str, PredictionError], float]:
        """Predict; retry transient errors in place while time allows; return what is left."""
        assert p.predictor is not None
        assert p.graph is not None
        settled: dict[str, Outcome] = {}
        pending = targets
        last_errors: dict[str, PredictionError] = {}
        elapsed = 0.0
        for attempt in range(self.stores.settings.inline_retries + 1):
            if not pending:
                break
            if attempt:
                pause = full_jitter(
                    attempt, INLINE_BACKOFF_BASE_S, INLINE_BACKOFF_CAP_S, self.clock.rng
                )
                budget = self.clock.remaining_ms() - self.stores.settings.time_safety_margin_ms
                if pause * 1000 >= budget:
                    break
                metrics.add_metric(name=Metric.RETRIES, unit=MetricUnit.Count, value=len(pending))
                self.clock.sleep(pause)
            started = time.perf_counter()
            outcomes = safe_predict(p.predictor, pending, p.params, p.graph)
            elapsed += time.perf_counter() - started
            still = []
            for entity, outcome in zip(pending, outcomes, strict=True):
                if isinstance(outcome, PredictionError) and outcome.transient:
                    last_errors[entity.entity_id] = outcome
                    still.append(entity)
                else:
                    settled[entity.entity_id] = outcome
                    last_errors.pop(entity.entity_id, None)
            pending = still
        if targets:
            metrics.add_metric(
                name=Metric.PREDICTION_LATENCY,
                unit=MetricUnit.Milliseconds,
                value=elapsed * 1000 / len(targets),
            )
        per_item_ms = elapsed * 1000 / len(targets) if targets else 0.0
        leftover = {e.entity_id: last_errors[e.entity_id] for e in pending}
        return settled, leftover, per_item_ms

    def _after_record(self, job: Job, result: ChunkResult, recorded: bool) -> None:
        retry, delay = result.retry, result.retry_delay_seconds
        if recorded:
            counts = result.counts()
            for name, metric in (
                ("succeeded", Metric.ITEMS_SUCCEEDED),
                ("failed", Metric.ITEMS_FAILED),
                ("cancelled", Metric.ITEMS_CANCELLED),
            ):
                if counts[name]:
                    metrics.add_metric(name=metric, unit=MetricUnit.Count, value=counts[name])
        else:
            # A replay: the first delivery counted it. Its retry chunk may not have been sent
            # (a crash right after the transaction), so send the recorded one again; the retry
            # chunk's own result is conditional too, so a second copy is harmless.
            metrics.add_metric(name=Metric.DUPLICATE_CHUNKS, unit=MetricUnit.Count, value=1)
            stored = self.stores.jobs.get_result(job, result.chunk_id) or {}
            retry = None
            if stored.get("retry_chunk_id"):
                retry = Chunk(
                    stored["retry_chunk_id"],
                    tuple(json.loads(stored["retry_ids"])),
                    attempt=int(stored["retry_attempt"]),
                )
                delay = int(stored.get("retry_delay_seconds", 0))
        if retry is not None:
            send_chunks(
                self.stores.sqs,
                self.stores.settings.work_queue_url,
                job.tenant,
                job.job_id,
                [retry],
                delay_seconds=delay,
            )

    # ------------------------------------------------------------ end of batch

    def finish(self) -> list[str]:
        """Record the batch's chunks, then check each job it touched (completion exactly once).

        Returns the message ids whose chunk could not be recorded: they must come back.
        """
        failed: list[str] = []
        entries = [(job, result) for _, job, result in self.to_record]
        outcomes = self.stores.accounting.record_many(entries)
        for (message_id, job, result), outcome in zip(self.to_record, outcomes, strict=True):
            try:
                if isinstance(outcome, Exception):
                    raise outcome
                self._after_record(job, result, outcome)
            except Exception:
                logger.exception("recording a chunk failed", extra={"chunk_id": result.chunk_id})
                failed.append(message_id)
        self.to_record.clear()
        for job in self.touched.values():
            logger.append_keys(tenant=job.tenant, job_id=job.job_id, chunk_id=None)
            check_job_or_leave_it_to_the_sweep(self.stores, job)
        logger.remove_keys(["tenant", "job_id", "chunk_id"])
        return failed


def safe_predict(
    predictor: Predictor[Any], entities: Sequence[Entity], params: Any, graph: EntityGraph
) -> list[Outcome]:
    """predict_batch, with one entity's crash isolated to that entity."""
    try:
        outcomes = predictor.predict_batch(entities, params, graph)
        if len(outcomes) != len(entities):
            raise RuntimeError(f"{len(outcomes)} outcomes for {len(entities)} entities")
        return outcomes
    except Exception:
        if len(entities) == 1:
            logger.exception("predictor failed", extra={"entity_id": entities[0].entity_id})
            return [_crash_error()]
        return [safe_predict(predictor, [e], params, graph)[0] for e in entities]


def _crash_error() -> PredictionError:
    return PredictionError.permanent(
        ErrorCode.PREDICTOR_ERROR, "the predictor failed on this entity"
    )


def _failed(entity_id: str, code: ErrorCode, message: str, attempt: int) -> ResultRow:
    return ResultRow(
        entity_id,
        ItemStatus.FAILED,
        error={"code": str(code), "message": message},
        attempts=attempt,
    )


def _row(entity_id: str, outcome: Outcome, attempt: int, duration_ms: float) -> ResultRow:
    if isinstance(outcome, Prediction):
        value = dict(outcome.value)
        if len(json.dumps(value)) > MAX_PREDICTION_BYTES:
            return _failed(
                entity_id,
                ErrorCode.RESULT_TOO_LARGE,
                f"prediction larger than {MAX_PREDICTION_BYTES} bytes",
                attempt,
            )
        return ResultRow(
            entity_id, ItemStatus.SUCCEEDED, value, None, outcome.quality, False, attempt,
            round(duration_ms, 3),
        )  # fmt: skip
    return ResultRow(
        entity_id,
        ItemStatus.FAILED,
        error={"code": outcome.code, "message": outcome.message},
        attempts=attempt,
        duration_ms=round(duration_ms, 3),
    )
