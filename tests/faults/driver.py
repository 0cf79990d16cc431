"""The driver: Lambda's SQS event source mapping and the scheduled sweep, with delivery faults.

`FaultPipeline` extends tests/support/pipeline.py's Pipeline (unchanged) with a loop that does
what the event source mapping does (poll, batch, invoke, delete what succeeded, let failures
come back, let the queue's redrive policy dead-letter what failed maxReceiveCount times) and
what can go wrong around it: duplicate and reordered deliveries, lost messages, the process
dying, the invocation running out of time, cancels and sweeps at awkward moments.

Moto applies the work queue's RedrivePolicy itself: a message received maxReceiveCount (5)
times moves to the DLQ on the next receive (moto/sqs/models.py, receive_message), as in AWS.
The driver only receives; it never moves messages. The DLQ function moves an unparseable dead
letter to the parking queue itself and acknowledges it; one it keeps rejecting (parking fails
every time) is left in the DLQ, invisible and counted, never deleted.
"""

from __future__ import annotations

import importlib.util
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from types import ModuleType
from typing import Any

from batchpredict.constants import TERMINAL_STATUSES
from batchpredict.service.sweep import sweep_jobs
from batchpredict.service.worker import Clock, UnparseableChunkError, parse_chunk
from batchpredict.store import stores
from batchpredict.store.jobs import job_pk
from tests.faults.injector import (
    DEFAULT_BUDGET_MS,
    FaultContext,
    FaultInjector,
    VirtualClock,
    WorkerCrash,
)
from tests.faults.plan import FaultPlan
from tests.support.handlers import ROOT, FakeContext, invoke, load
from tests.support.pipeline import Pipeline

IN_FLIGHT_S = 900  # visibility of a received message until the driver delivers it
KEPT_S = 36_000  # a rejected dead letter stays put (under SQS's 12-hour visibility limit)
MAX_DLQ_TRIES = 40
MAX_DLQ_TRIES_UNPARSEABLE = 8
# A sweep runs every minute for ever; with throttling on most calls, finishing and announcing
# a job can take many of them.
MAX_IDLE_SWEEPS = 60
# The DLQ function's event source mapping polls while the worker's does: the driver drains the
# DLQ after this many worker deliveries even if work is still pending. (Draining it only once
# the work queue was empty let mid-run sweeps re-send a poison chunk faster than its copies
# could die, and the run never ended: seed 779.)
DLQ_POLL_EVERY = 10
QUEUE_ATTRIBUTES = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


@cache
def twin_worker() -> ModuleType:
    """A second copy of the worker function: a concurrent invocation in another process.

    Its own module object means its own Powertools BatchProcessor, so a nested invocation
    cannot disturb the state of the one it interrupts.
    """
    path = ROOT / "functions" / "worker" / "app.py"
    spec = importlib.util.spec_from_file_location("functions_worker_app_twin", path)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Held:
    """A received message the driver holds until it delivers it (a ghost is a duplicate copy)."""

    message: dict[str, Any]
    ghost: bool = False

    @property
    def id(self) -> str:
        return str(self.message["MessageId"])

    @property
    def body(self) -> str:
        return str(self.message["Body"])


@dataclass
class JobRun:
    """One submitted job and what the test knows about it."""

    job_id: str
    tenant: str
    entity_ids: list[str]
    chunk_size: int
    tolerated_failure_percent: float
    cancel_after: int | None = None  # worker invocations before POST /cancel
    cancel_sent: bool = False
    cancel_accepted: bool = False
    submit_attempts: int = 1
    last_counts: dict[str, int] = field(default_factory=dict)

    @property
    def pk(self) -> str:
        return job_pk(self.tenant, self.job_id)

    @property
    def total(self) -> int:
        return len(self.entity_ids)


@dataclass
class Invocation:
    function: str  # "worker" | "dlq"
    records: list[Held]
    failed: set[str]  # message ids reported (or, if it died, treated) as failed
    outcome: str  # "ok" | "crashed" | "raised <Error>"

    def chunk_ids(self) -> list[str]:
        return [_chunk_id(h.body) for h in self.records]

    def failed_chunk_ids(self) -> list[str]:
        return [_chunk_id(h.body) for h in self.records if h.id in self.failed]


@dataclass
class DeadLetter:
    job_id: str
    chunk_id: str
    entity_ids: tuple[str, ...]


@dataclass
class FaultPipeline(Pipeline):
    plan: FaultPlan = field(default_factory=FaultPlan)
    injector: FaultInjector | None = None
    clock: VirtualClock = field(default_factory=VirtualClock)
    jobs: list[JobRun] = field(default_factory=list)
    pool: list[Held] = field(default_factory=list)
    stats: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    parked: list[str] = field(default_factory=list)  # acknowledged unparseable dead letters
    kept: list[str] = field(default_factory=list)  # rejected every time: left in the DLQ
    parking_url: str | None = None
    lost: list[str] = field(default_factory=list)
    # every invocation: its records, its batchItemFailures, how it ended (hand-checked tests)
    log: list[Invocation] = field(default_factory=list)
    context_factory: Callable[[], FaultContext] | None = None

    def __post_init__(self) -> None:
        self.rng = random.Random(f"driver:{self.plan.seed}")
        self._dlq_tries: Counter[str] = Counter()
        self._ghosts = 0
        if self.injector is not None:
            self.injector.twin = self.run_twin
            self.injector.cancel = self._cancel_by_pk

    # ------------------------------------------------------------ the loop

    def run(self, max_steps: int = 5_000, *, sweep: bool = True) -> None:
        """Deliver until every queue is empty and every job is terminal.

        With sweep=False it stops once the queues are drained, terminal or not.
        """
        idle_sweeps = 0
        for step in range(1, max_steps + 1):
            self.intake()
            if self.pool:
                self.worker_step()
                self.between_deliveries()
                idle_sweeps = 0
                if step % DLQ_POLL_EVERY == 0:
                    self.dlq_step()
                continue
            if self.dlq_step():
                continue
            if self.drained() and (not sweep or self.all_terminal()):
                return
            if idle_sweeps >= MAX_IDLE_SWEEPS:
                raise AssertionError(
                    f"jobs not terminal after {idle_sweeps} sweeps with empty queues: "
                    + ", ".join(f"{j.job_id}={self.status(j)['status']}" for j in self.jobs)
                )
            self.lapse_dead_claims()
            self.sweep()
            idle_sweeps += 1
        raise AssertionError(f"the run did not finish in {max_steps} steps")

    def receive_all(self, queue_url: str) -> list[dict[str, Any]]:
        """Every visible message of the queue, each held in flight for IN_FLIGHT_S."""
        received: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=IN_FLIGHT_S,
            WaitTimeSeconds=0,
        ).get("Messages", []):
            received.extend(batch)
        return received

    def intake(self) -> None:
        """Poll the work queue dry, as the event source mapping's pollers would."""
        received = self.receive_all(self.work_queue_url)
        # Moto's order follows send order, which threads in send_chunks make nondeterministic.
        received.sort(key=lambda m: (m["Body"], int(m["Attributes"]["ApproximateReceiveCount"])))
        for message in received:
            self.pool.append(Held(message))
            if self.rng.random() < self.plan.duplicate:
                self._ghosts += 1
                ghost = dict(message, MessageId=f"ghost-{self._ghosts}-{message['MessageId']}")
                self.pool.append(Held(ghost, ghost=True))

    def next_batch(self) -> list[Held]:
        if self.plan.shuffle:
            before = [h.id for h in self.pool]
            self.rng.shuffle(self.pool)
            self.stats["reordered"] += before != [h.id for h in self.pool]
        batch, self.pool = self.pool[: self.batch_size], self.pool[self.batch_size :]
        kept = []
        for held in batch:
            if not held.ghost and _parseable(held.body) and self.rng.random() < self.plan.lost:
                self.sqs.delete_message(
                    QueueUrl=self.work_queue_url, ReceiptHandle=held.message["ReceiptHandle"]
                )
                self.lost.append(held.body)
                continue
            kept.append(held)
        return kept

    def fault_context(self) -> FaultContext:
        if self.context_factory is not None:
            return self.context_factory()
        return self.default_context()

    def default_context(self) -> FaultContext:
        """120 s of virtual time; sometimes (time_squeeze) just above the safety margin."""
        deadline = self.clock.now_ms + DEFAULT_BUDGET_MS
        if self.rng.random() < self.plan.time_squeeze:
            margin = stores().settings.time_safety_margin_ms
            deadline = self.clock.now_ms + margin + self.rng.uniform(0, 30)
            self.stats["time_squeezed"] += 1
        return FaultContext(function_name="worker", clock=self.clock, deadline_ms=deadline)

    def worker_step(self) -> set[str]:
        batch = self.next_batch()
        if not batch:
            return set()
        context = self.fault_context()
        event = self.sqs_event([h.message for h in batch], self._arn("worker"))
        self.invocations += 1
        self.deliveries += len(batch)
        self.stats["ghost_deliveries"] += sum(h.ghost for h in batch)
        assert self.injector is not None
        outcome = "ok"
        try:
            with self.injector.armed("worker", context, [h.body for h in batch]):
                response = invoke("worker", event, context)
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except WorkerCrash:
            failed, outcome = {h.id for h in batch}, "crashed"
            self.stats["worker_crashes"] += 1
        except Exception as error:
            failed, outcome = {h.id for h in batch}, f"raised {type(error).__name__}"
            self.stats["worker_errors"] += 1
        self.log.append(Invocation("worker", batch, failed, outcome))
        self.stats["record_failures"] += len(failed)
        self._settle(self.work_queue_url, [h for h in batch if not h.ghost], failed)
        return failed

    def _settle(self, queue_url: str, batch: list[Held], failed: set[str]) -> None:
        """Delete the acknowledged records; make the failed ones visible again at once."""
        done = [h for h in batch if h.id not in failed]
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": h.message["ReceiptHandle"]}
                    for n, h in enumerate(done[start : start + 10])
                ],
            )
        for held in batch:
            if held.id in failed:
                self.sqs.change_message_visibility(
                    QueueUrl=queue_url,
                    ReceiptHandle=held.message["ReceiptHandle"],
                    VisibilityTimeout=0,
                )

    def between_deliveries(self) -> None:
        self.observe()
        for job in self.jobs:
            if (
                job.cancel_after is not None
                and not job.cancel_sent
                and self.invocations >= job.cancel_after
            ):
                self.stats["planned_cancels"] += 1
                self.cancel(job)
        if self.rng.random() < self.plan.sweep_midrun:
            # The schedule fires while chunks are still in flight, far enough in the future
            # that every job looks stuck: whatever it re-sends must be harmless.
            self.sweep(now=datetime.now(UTC) + timedelta(days=1))
            self.stats["midrun_sweeps"] += 1

    # ------------------------------------------------------------ the DLQ function

    def dlq_step(self) -> bool:
        received = self.receive_all(self.dlq_url)
        if not received:
            return False
        received.sort(key=lambda m: m["Body"])
        assert self.injector is not None
        for start in range(0, len(received), 10):
            batch = [Held(m) for m in received[start : start + 10]]
            event = self.sqs_event([h.message for h in batch], self._arn("dlq"))
            self.stats["dlq_invocations"] += 1
            outcome = "ok"
            try:
                with self.injector.armed("dlq"):
                    response = invoke("dlq", event, FakeContext(function_name="dlq"))
                failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
            except WorkerCrash:
                failed, outcome = {h.id for h in batch}, "crashed"
                self.stats["dlq_crashes"] += 1
            except Exception as error:
                failed, outcome = {h.id for h in batch}, f"raised {type(error).__name__}"
                self.stats["dlq_errors"] += 1
            self.log.append(Invocation("dlq", batch, failed, outcome))
            for held in batch:
                parseable = _parseable(held.body)
                if held.id not in failed:
                    if parseable:
                        chunk = parse_chunk(held.body)
                        self.dead_letters.append(
                            DeadLetter(chunk.job_id, chunk.chunk_id, tuple(chunk.entity_ids))
                        )
                    else:  # acknowledged: it must now be in the parking queue
                        self.parked.append(held.body)
                    self._settle(self.dlq_url, [held], set())
                    continue
                self._dlq_tries[held.body] += 1
                if not parseable and self._dlq_tries[held.body] >= MAX_DLQ_TRIES_UNPARSEABLE:
                    # Rejected every time: it stays in the DLQ for a human (never dropped).
                    self.kept.append(held.body)
                    self.sqs.change_message_visibility(
                        QueueUrl=self.dlq_url,
                        ReceiptHandle=held.message["ReceiptHandle"],
                        VisibilityTimeout=KEPT_S,
                    )
                    continue
                if self._dlq_tries[held.body] > MAX_DLQ_TRIES:
                    raise AssertionError(f"dead letter never recorded: {held.body[:200]}")
                self._settle(self.dlq_url, [held], failed)
        return True

    # ------------------------------------------------------------ the scheduled sweep

    def sweep(self, now: datetime | None = None) -> None:
        """What the refresh function's schedule does, at a `now` past stuck_after_seconds."""
        settings = stores().settings
        now = now or datetime.now(UTC) + timedelta(seconds=settings.stuck_after_seconds + 1)
        assert self.injector is not None
        self.stats["sweeps"] += 1
        try:
            with self.injector.armed("sweep"):
                report = sweep_jobs(stores(), now=now)
            self.stats["redispatched"] += sum(report.redispatched.values())
        except WorkerCrash:
            self.stats["sweep_crashes"] += 1
        except Exception:
            self.stats["sweep_errors"] += 1

    def lapse_dead_claims(self) -> None:
        """Time passes beyond the announcement lease of a claim whose holder is gone.

        Nothing runs while the queues are drained, so a job that is terminal, unannounced and
        claimed has lost its announcer (the process died, or marking it announced failed, or
        giving the claim back after a failed send was throttled too). In
        production the next sweep after ANNOUNCE_LEASE_SECONDS takes the claim over; here the
        lease is moved into the past, which is what waiting for it would do.
        """
        assert self.injector is not None
        past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat(timespec="milliseconds")
        past = past.replace("+00:00", "Z")
        for job in self.jobs:
            stored = stores().jobs.get(job.tenant, job.job_id, consistent=True)
            if stored is None or stored.announced_at or not stored.announcing_until:
                continue
            if stored.announcing_until < past:
                continue  # already lapsed
            self.injector.observer.update_item(
                TableName=stores().settings.jobs_table,
                Key={"pk": {"S": job.pk}, "sk": {"S": "META"}},
                UpdateExpression="SET announcing_until = :past",
                ConditionExpression="announcing_until = :held",
                ExpressionAttributeValues={
                    ":past": {"S": past},
                    ":held": {"S": stored.announcing_until},
                },
            )
            self.stats["claims_lapsed"] += 1

    # ------------------------------------------------------------ actors

    def run_twin(self, pk_and_chunk: str) -> None:
        """A concurrent duplicate delivery of the chunk being written, run to completion now."""
        pk, chunk_id = pk_and_chunk.split("|", 1)
        assert self.injector is not None
        for body in self.injector.bodies:
            try:
                chunk = parse_chunk(body)
            except UnparseableChunkError:
                continue
            if chunk.chunk_id == chunk_id and job_pk(chunk.tenant, chunk.job_id) == pk:
                break
        else:
            return
        message = {
            "MessageId": f"twin-{self.stats['twins']}",
            "ReceiptHandle": "twin",
            "Body": body,
            "Attributes": {"ApproximateReceiveCount": "1"},
        }
        self.stats["twins"] += 1
        event = self.sqs_event([message], self._arn("worker"))
        twin_worker().lambda_handler(event, FaultContext(function_name="worker", clock=self.clock))

    def cancel(self, job: JobRun) -> None:
        job.cancel_sent = True
        response = self.api("POST", f"/v1/jobs/{job.job_id}/cancel", tenant=job.tenant)
        self.stats["cancels"] += 1
        if response.status == 202:
            if response.body["status"] not in ("CANCELLING", "CANCELLED"):
                self.violations.append(f"{job.job_id}: cancel accepted as {response.body}")
            job.cancel_accepted = True
        elif not (response.status == 409 and response.body["error"]["code"] == "job_finished"):
            self.violations.append(f"{job.job_id}: cancel answered {response}")

    def _cancel_by_pk(self, pk: str) -> None:
        for job in self.jobs:
            if job.pk == pk and not job.cancel_sent:
                self.stats["raced_cancels"] += 1
                self.cancel(job)

    # ------------------------------------------------------------ observation

    def status(self, job: JobRun) -> dict[str, Any]:
        response = self.api("GET", f"/v1/jobs/{job.job_id}", tenant=job.tenant)
        assert response.status == 200, response
        return dict(response.body)

    def observe(self, jobs: list[JobRun] | None = None) -> None:
        """GET jobs between deliveries: counters within the total, never going down.

        One job (seeded choice) after each invocation keeps the run fast; the injector also
        reads the counters right after every counter write (FaultInjector._check_counters).
        """
        if jobs is None:
            jobs = [self.rng.choice(self.jobs)] if self.jobs else []
        for job in jobs:
            view = self.status(job)
            counts = view["counts"]
            done = counts["succeeded"] + counts["failed"] + counts["cancelled"]
            where = f"{job.job_id} after invocation {self.invocations}"
            if done > job.total or counts["total"] != job.total:
                self.violations.append(f"{where}: counts {counts} exceed total {job.total}")
            if counts["pending"] != job.total - done or counts["cached"] > counts["succeeded"]:
                self.violations.append(f"{where}: inconsistent counts {counts}")
            if not 0.0 <= view["progress"] <= 1.0:
                self.violations.append(f"{where}: progress {view['progress']}")
            if view["status"] in TERMINAL_STATUSES and done != job.total:
                self.violations.append(f"{where}: {view['status']} with counts {counts}")
            for name, value in counts.items():
                if name != "pending" and value < job.last_counts.get(name, 0):
                    self.violations.append(f"{where}: {name} went down to {value}")
            job.last_counts = {k: v for k, v in counts.items() if k != "pending"}
            self.stats["observations"] += 1

    def all_terminal(self) -> bool:
        """Every job terminal and its end announced (a failed announcement waits for a sweep)."""
        for job in self.jobs:
            if self.status(job)["status"] not in TERMINAL_STATUSES:
                return False
            stored = stores().jobs.get(job.tenant, job.job_id, consistent=True)
            if stored is None or stored.announced_at is None:
                return False
        return True

    def drained(self) -> bool:
        """The work queue is empty; the DLQ holds only the dead letters it kept rejecting."""
        work = self._attributes(self.work_queue_url)
        dead = self._attributes(self.dlq_url)
        return (
            not self.pool
            and all(v == 0 for v in work.values())
            and dead["ApproximateNumberOfMessages"] == 0
            and dead["ApproximateNumberOfMessagesDelayed"] == 0
            and dead["ApproximateNumberOfMessagesNotVisible"] == len(self.kept)
        )

    def parking_lot(self) -> list[dict[str, Any]]:
        """Every message in the parking queue (left there: receive, then make visible again)."""
        if not self.parking_url:
            return []
        messages = self.receive_all(self.parking_url)
        for message in messages:
            self.sqs.change_message_visibility(
                QueueUrl=self.parking_url,
                ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=0,
            )
        return messages

    def _attributes(self, url: str) -> dict[str, int]:
        attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=QUEUE_ATTRIBUTES)
        return {k: int(v) for k, v in attrs["Attributes"].items()}

    @staticmethod
    def _arn(function: str) -> str:
        return f"arn:aws:sqs:us-east-1:123456789012:{function}"


def _chunk_id(body: str) -> str:
    try:
        return parse_chunk(body).chunk_id
    except UnparseableChunkError:
        return f"<unparseable {body[:20]!r}>"


def _parseable(body: str) -> bool:
    try:
        parse_chunk(body)
    except UnparseableChunkError:
        return False
    return True


def seeded_clock_factory(clock: VirtualClock, seed: int) -> Callable[..., Clock]:
    """Replaces `Clock` in the worker module: sleeps on the virtual clock, seeded jitter."""
    invocations = Counter[str]()

    def make(remaining_ms: Callable[[], int], **_: Any) -> Clock:
        invocations["n"] += 1
        return Clock(
            remaining_ms=remaining_ms,
            sleep=clock.sleep,
            rng=random.Random(f"jitter:{seed}:{invocations['n']}"),
        )

    return make


def patch_worker_clock(monkeypatch: Any, clock: VirtualClock, seed: int) -> None:
    factory = seeded_clock_factory(clock, seed)
    for module in (load("worker"), twin_worker()):
        monkeypatch.setattr(module, "Clock", factory)
