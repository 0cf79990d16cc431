"""One fault run: build the world for a plan, submit its jobs, drive them, return what happened.

`run_plan(env, plan, monkeypatch)` is the whole thing; the tests call it and then
`check_invariants` (tests/faults/invariants.py). A failure anywhere is re-raised with the plan's
description, so the report names the seed and the fault mix that broke.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from batchpredict import aws
from batchpredict.chunking import plan_chunks
from batchpredict.store import stores
from tests.faults import flaky
from tests.faults.driver import FaultPipeline, JobRun, patch_worker_clock
from tests.faults.injector import FaultInjector, VirtualClock
from tests.faults.plan import RATE_FIELDS, FaultPlan
from tests.support.data import ids, ring_entities
from tests.support.pipeline import TENANT_A

PARAMETERS = {"temperature": 2.0, "time_horizon": 1.0}
MALFORMED_BODIES = (
    "this is not json",
    '{"tenant": "t", "job_id": "j-1", "chunk_id"',
    "[1, 2, 3]",
    '{"tenant": "t", "job_id": "j-1", "chunk_id": "000000", "entity_ids": []}',
)


@dataclass
class FaultRun:
    plan: FaultPlan
    pipeline: FaultPipeline
    injector: FaultInjector
    behaviour: flaky.FlakyBehaviour
    malformed: list[str] = field(default_factory=list)
    poisoned: list[tuple[str, str]] = field(default_factory=list)  # (job id, chunk id)

    @property
    def jobs(self) -> list[JobRun]:
        return self.pipeline.jobs

    def fired(self) -> dict[str, int]:
        """How often each fault kind of the plans actually happened in this run."""
        p, i, b = self.pipeline, self.injector.injected, self.behaviour
        return {
            **{k: i[k] for k in RATE_FIELDS if k in i},
            "duplicate": p.stats["ghost_deliveries"],
            "shuffle": p.stats["reordered"],
            "lost": len(p.lost),
            "time_squeeze": p.stats["time_squeezed"],
            "cancel": p.stats["planned_cancels"],
            "cancel_race": p.stats["raced_cancels"],
            "sweep_midrun": p.stats["midrun_sweeps"],
            "transient": b.transient_errors,
            "permanent": b.permanent_errors,
            "predictor_crash": b.crashes,
            "hang": i["timeout_kill"],
            "poison_chunks": i["poison"],
            "malformed": len(p.parked) + len(p.kept),
        }

    def summary(self) -> dict[str, Any]:
        p = self.pipeline
        return {
            "invocations": p.invocations,
            "deliveries": p.deliveries,
            "dead_letters": len(p.dead_letters),
            "parked": len(p.parked),
            "kept_in_dlq": len(p.kept),
            "lost": len(p.lost),
            **{k: v for k, v in sorted(p.stats.items()) if k != "observations"},
            **{f"injected.{k}": v for k, v in sorted(self.injector.injected.items())},
            **dict(sorted(self.injector.stats.items())),
            "predictor.transient_errors": self.behaviour.transient_errors,
            "predictor.permanent_errors": self.behaviour.permanent_errors,
            "predictor.crashes": self.behaviour.crashes,
        }


def build(env: dict[str, Any], plan: FaultPlan, monkeypatch: pytest.MonkeyPatch) -> FaultRun:
    """Hook the injector into the product's clients and make the driver; submit nothing yet."""
    clock = VirtualClock()
    injector = FaultInjector(
        plan,
        clock,
        observer=boto3.client("dynamodb"),
        jobs_table=stores().settings.jobs_table,
        shards=stores().settings.counter_shards,
        totals={},
    )
    injector.install(aws.client("dynamodb"), aws.client("sqs"), aws.client("events"))
    flaky.register_flaky()
    behaviour = flaky.configure(
        seed=plan.seed,
        transient=plan.transient,
        permanent=plan.permanent,
        crash=plan.predictor_crash,
        clock=clock,
    )
    patch_worker_clock(monkeypatch, clock, plan.seed)
    pipeline = FaultPipeline(
        boto3.client("sqs"),  # the driver's own client: never faulted
        env["work_url"],
        env["dlq_url"],
        batch_size=plan.batch_size,
        plan=plan,
        injector=injector,
        clock=clock,
        parking_url=env.get("parking_url"),
    )
    return FaultRun(plan, pipeline, injector, behaviour)


def submit_jobs(run: FaultRun, *, tenant: str = TENANT_A, **overrides: Any) -> None:
    """Store the entities and submit the plan's jobs (deterministic ids via client tokens)."""
    plan, pipeline, injector = run.plan, run.pipeline, run.injector
    r = random.Random(f"workload:{plan.seed}")
    needed = plan.items if plan.overlap else plan.items * plan.jobs
    # no time series: ising does not read them, and moto is slow to move big items around
    entities = [
        {k: v for k, v in e.items() if k != "time_series"}
        for e in ring_entities(max(needed + plan.items // 2, 3))
    ]
    response = pipeline.api("PUT", "/v1/entities", body={"entities": entities}, tenant=tenant)
    assert response.status == 200, response
    all_ids = ids(entities)
    for n in range(plan.jobs):
        start = r.randint(0, plan.items // 2) if plan.overlap else n * plan.items
        entity_ids = all_ids[start : start + plan.items]
        body = {
            "prediction_type": flaky.FLAKY,
            "entity_ids": entity_ids,
            "parameters": PARAMETERS,
            "chunk_size": plan.chunk_size,
            "client_token": f"faults-{plan.seed}-{n}",
            "use_cache": plan.use_cache,
            "tolerated_failure_percent": plan.tolerated_failure_percent,
            **overrides,
        }
        attempts = 0
        while True:
            # A client retries a 5xx with the same client token: the same job comes back.
            attempts += 1
            with injector.armed("submit"):
                response = pipeline.api("POST", "/v1/jobs", body=body, tenant=tenant)
            if response.status == 202 or attempts >= 5:
                break
        assert response.status == 202, response
        job = JobRun(
            response.body["job_id"],
            tenant,
            entity_ids,
            body["chunk_size"],
            body["tolerated_failure_percent"],
            submit_attempts=attempts,
        )
        if r.random() < plan.cancel:
            chunks = -(-job.total // job.chunk_size)
            job.cancel_after = r.randint(0, max(1, chunks // max(1, plan.batch_size)) + 1)
        pipeline.jobs.append(job)
        injector.totals[job.pk] = job.total

    jobs = pipeline.jobs
    base_chunks = [(job, c) for job in jobs for c in plan_chunks(job.entity_ids, job.chunk_size)]
    for job, chunk in r.sample(base_chunks, min(plan.poison_chunks, len(base_chunks))):
        injector.poisoned.add((job.pk, chunk.chunk_id))
        run.poisoned.append((job.job_id, chunk.chunk_id))
    if plan.hang:
        run.behaviour.hang = frozenset(r.sample(jobs[0].entity_ids, plan.hang))
    for n in range(plan.malformed):
        garbage = MALFORMED_BODIES[(plan.seed + n) % len(MALFORMED_BODIES)] + " " * n
        pipeline.sqs.send_message(QueueUrl=pipeline.work_queue_url, MessageBody=garbage)
        run.malformed.append(garbage)


@contextmanager
def explained(run: FaultRun) -> Iterator[None]:
    """Any failure of the run is reported with its seed, its fault plan and what happened."""
    try:
        yield
    except (Exception, AssertionError) as error:
        raise AssertionError(
            f"fault run failed: {type(error).__name__}: {error}\n"
            f"{run.plan.describe()}\n  happened: {run.summary()}"
        ) from error


def run_plan(
    env: dict[str, Any],
    plan: FaultPlan,
    monkeypatch: pytest.MonkeyPatch,
    *,
    prepare: Callable[[FaultRun], object] | None = None,
    setup: Callable[[FaultRun], object] | None = None,
    check: bool = True,
    **submit: Any,
) -> FaultRun:
    """Build, submit, drive to the end and (by default) check every invariant.

    `prepare` runs before the jobs are submitted, `setup` after (both get the run).
    """
    from tests.faults.invariants import check_invariants

    run = build(env, plan, monkeypatch)
    with explained(run):
        if prepare is not None:
            prepare(run)
        submit_jobs(run, **submit)
        if setup is not None:
            setup(run)
        run.pipeline.run()
        if check:
            check_invariants(run)
    return run
