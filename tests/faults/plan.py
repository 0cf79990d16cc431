"""A fault plan: the workload and the mix of faults of one run, all derived from one seed.

A plan is plain data. `FaultPlan.random(seed)` draws a mix from the seed alone, so
`pytest tests/faults --fault-seeds N` runs seeds 0..N-1 and any one of them can be rerun with
`FAULT_SEED=<n>`. `plan.quiet()` keeps the seed and the workload and turns every fault off.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, fields
from typing import Any

# Rates are probabilities per decision point: per AWS call for the AWS faults, per delivered
# message for the delivery faults, per invocation for the time squeeze, per job for cancel.
RATE_FIELDS = (
    "duplicate",
    "lost",
    "crash_before_write",
    "crash_after_write",
    "lost_response",
    "crash_any_call",
    "throttle",
    "conflict",
    "sqs_throttle",
    "sqs_partial",
    "events_throttle",
    "submit_fail",
    "transient",
    "permanent",
    "predictor_crash",
    "time_squeeze",
    "cancel",
    "cancel_race",
    "race",
    "sweep_midrun",
)
COUNT_FIELDS = ("poison_chunks", "malformed", "hang")
# Seed n features FEATURED_PAIRS[n % 12]; each pair puts a kind with one that gives it work
# (a lost message makes the sweep send, a transient error makes the worker send).
FEATURED_PAIRS = (
    ("duplicate", "hang"),
    ("lost", "sqs_partial"),
    ("crash_before_write", "predictor_crash"),
    ("crash_after_write", "permanent"),
    ("lost_response", "time_squeeze"),
    ("crash_any_call", "cancel"),
    ("throttle", "cancel_race"),
    ("conflict", "race"),
    ("sqs_throttle", "transient"),
    ("events_throttle", "malformed"),
    ("submit_fail", "poison_chunks"),
    ("sweep_midrun", "transient"),
)
# The rate (or count) of a kind when a seed features it.
FEATURED: dict[str, float | int] = {
    "duplicate": 0.5,
    "lost": 0.2,
    "crash_before_write": 0.25,
    "crash_after_write": 0.3,
    "lost_response": 0.3,
    "crash_any_call": 0.04,
    "throttle": 0.08,
    "conflict": 0.25,
    "sqs_throttle": 0.4,
    "sqs_partial": 0.6,
    "events_throttle": 0.6,
    "submit_fail": 0.8,
    "transient": 0.5,
    "permanent": 0.25,
    "predictor_crash": 0.15,
    "time_squeeze": 0.4,
    "cancel": 1.0,
    "cancel_race": 0.3,
    "race": 0.4,
    "sweep_midrun": 0.2,
    "poison_chunks": 1,
    "malformed": 1,
    "hang": 1,
}


@dataclass(frozen=True)
class FaultPlan:
    seed: int = 0
    # ---- workload
    jobs: int = 1
    items: int = 20  # per job
    chunk_size: int = 5
    batch_size: int = 10  # records per worker invocation (the event source mapping's BatchSize)
    overlap: bool = False  # jobs share entities (so the cache sees repeats)
    use_cache: bool = False
    tolerated_failure_percent: float = 100.0
    # ---- delivery (the driver)
    duplicate: float = 0.0  # a received message is also delivered again (a ghost copy)
    shuffle: bool = False  # messages are delivered in a seeded random order
    lost: float = 0.0  # a received message is deleted without being processed
    # ---- the worker process dies (WorkerCrash): every record of the batch comes back
    crash_before_write: float = 0.0  # before the chunk's TransactWriteItems
    crash_after_write: float = 0.0  # after it landed
    crash_any_call: float = 0.0  # before or after any AWS call
    lost_response: float = 0.0  # the transaction landed, the caller saw an error
    # ---- AWS errors (after botocore's own retries gave up)
    throttle: float = 0.0  # DynamoDB: ProvisionedThroughputExceeded / Throttling / RequestLimit
    conflict: float = 0.0  # TransactionCanceledException [TransactionConflict]
    sqs_throttle: float = 0.0  # SendMessageBatch: RequestThrottled
    sqs_partial: float = 0.0  # SendMessageBatch: some entries Failed (SenderFault false)
    events_throttle: float = 0.0  # EventBridge PutEvents: ThrottlingException
    submit_fail: float = 0.0  # the submit function's SendMessageBatch fails (job made, unsent)
    # ---- predictor (the `flaky` type)
    transient: float = 0.0  # share of entities that fail transiently k times
    permanent: float = 0.0  # share of entities that always fail permanently
    predictor_crash: float = 0.0  # share of entities whose prediction raises
    hang: int = 0  # entities whose prediction outlasts the invocation (it is killed)
    # ---- poison
    poison_chunks: int = 0  # chunks whose result write fails on every worker delivery
    malformed: int = 0  # unparseable bodies sent to the work queue
    # ---- time
    time_squeeze: float = 0.0  # an invocation starts just above the safety margin
    # ---- control
    cancel: float = 0.0  # a job is cancelled (POST /cancel) after some deliveries
    cancel_race: float = 0.0  # a cancel lands between a chunk's prediction and its write
    race: float = 0.0  # a concurrent duplicate delivery of the chunk wins its write
    sweep_midrun: float = 0.0  # the scheduled sweep fires (far in the future) between batches

    @classmethod
    def random(cls, seed: int) -> FaultPlan:
        """A mix of faults drawn from the seed: each kind is on or off, at a random rate.

        Two kinds are "featured" per seed, round robin, at a rate that makes them fire: any
        12 consecutive seeds feature every kind at least once (the CI share is 12 seeds).
        """
        featured: dict[str, Any] = {
            k: FEATURED[k] for k in FEATURED_PAIRS[seed % len(FEATURED_PAIRS)]
        }
        return dataclasses.replace(cls._drawn(seed), **featured)

    @classmethod
    def _drawn(cls, seed: int) -> FaultPlan:
        r = random.Random(f"fault-plan:{seed}")

        def maybe(low: float, high: float, p_on: float = 0.5) -> float:
            return round(r.uniform(low, high), 3) if r.random() < p_on else 0.0

        jobs = r.choice((1, 1, 1, 2, 2, 3))
        return cls(
            seed=seed,
            jobs=jobs,
            items=r.randint(4, 24 if jobs < 3 else 12),
            chunk_size=r.randint(2, 6),
            batch_size=r.choice((1, 2, 3, 5, 10, 10)),
            overlap=r.random() < 0.3,
            use_cache=r.random() < 0.5,
            tolerated_failure_percent=100.0 if r.random() < 0.8 else float(r.randint(10, 60)),
            duplicate=maybe(0.1, 0.5),
            shuffle=r.random() < 0.6,
            lost=maybe(0.02, 0.15, 0.3),
            crash_before_write=maybe(0.05, 0.2, 0.35),
            crash_after_write=maybe(0.05, 0.25, 0.35),
            crash_any_call=maybe(0.005, 0.03, 0.25),
            lost_response=maybe(0.05, 0.2, 0.35),
            throttle=maybe(0.01, 0.06, 0.4),
            conflict=maybe(0.05, 0.2, 0.35),
            sqs_throttle=maybe(0.05, 0.25, 0.3),
            sqs_partial=maybe(0.1, 0.4, 0.3),
            events_throttle=maybe(0.1, 0.5, 0.25),
            submit_fail=maybe(0.2, 0.8, 0.15),
            transient=maybe(0.1, 0.4),
            permanent=maybe(0.02, 0.15, 0.4),
            predictor_crash=maybe(0.02, 0.1, 0.25),
            hang=1 if r.random() < 0.1 else 0,
            poison_chunks=r.choice((0, 0, 0, 1, 2)),
            malformed=r.choice((0, 0, 0, 1, 2)),
            time_squeeze=maybe(0.05, 0.3, 0.35),
            cancel=maybe(0.3, 1.0, 0.25),
            cancel_race=maybe(0.02, 0.1, 0.15),
            race=maybe(0.05, 0.3, 0.3),
            sweep_midrun=maybe(0.02, 0.1, 0.25),
        )

    def quiet(self) -> FaultPlan:
        """The same seed and workload with every fault off."""
        off: dict[str, Any] = dict.fromkeys(RATE_FIELDS, 0.0) | dict.fromkeys(COUNT_FIELDS, 0)
        return dataclasses.replace(self, shuffle=False, **off)

    def only(self, **faults: Any) -> FaultPlan:
        """The same seed and workload with exactly the given faults."""
        return dataclasses.replace(self.quiet(), **faults)

    @property
    def faults(self) -> dict[str, float | int | bool]:
        """The faults that are on."""
        on: dict[str, float | int | bool] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in RATE_FIELDS + COUNT_FIELDS + ("shuffle",) and value:
                on[f.name] = value
        return on

    def describe(self) -> str:
        workload = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in RATE_FIELDS + COUNT_FIELDS + ("shuffle", "seed")
        }
        return (
            f"seed={self.seed}\n  workload: {workload}\n  faults: {self.faults or 'none'}\n"
            f"  reproduce: FAULT_SEED={self.seed} pytest tests/faults -k random_fault_mix\n"
            f"  or replay exactly: run_plan(env, {self!r})"
        )
