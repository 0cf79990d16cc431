"""Randomized fault mixes, and proof that the injector really injects.

`--fault-seeds N` (or FAULT_SEEDS=N) runs seeds 0..N-1 of the seeded mix; FAULT_SEED=n reruns
one. The hypothesis test draws mixes of its own (derandomized, so CI sees the same ones).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.faults.conftest import CI_SEEDS, fault_seed_count, hypothesis_settings
from tests.faults.env import fresh_aws
from tests.faults.plan import COUNT_FIELDS, RATE_FIELDS, FaultPlan
from tests.faults.scenario import FaultRun, run_plan

pytestmark = pytest.mark.xdist_group("faults")


def test_pipeline_random_fault_mix_keeps_invariants(
    aws_env: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    fault_seed: int,
    fault_tally: dict[str, Any],
    request: pytest.FixtureRequest,
) -> None:
    run = run_plan(aws_env, FaultPlan.random(fault_seed), monkeypatch)
    fired = {k: n for k, n in run.fired().items() if n}
    fault_tally["runs"] += 1
    fault_tally["fired"].update(fired.keys())
    # for the session's tally (tests/faults/conftest.py), also across xdist workers
    request.node.user_properties.append(("fault_fired", fired))


# ---------------------------------------------------------------- hypothesis


def rate(high: float) -> st.SearchStrategy[float]:
    return st.one_of(st.just(0.0), st.floats(0.01, high).map(lambda x: round(x, 3)))


RATE_CEILINGS = {
    "duplicate": 0.6,
    "lost": 0.2,
    "crash_before_write": 0.25,
    "crash_after_write": 0.3,
    "crash_any_call": 0.03,
    "lost_response": 0.25,
    "throttle": 0.08,
    "conflict": 0.25,
    "sqs_throttle": 0.3,
    "sqs_partial": 0.5,
    "events_throttle": 0.6,
    "submit_fail": 0.8,
    "transient": 0.5,
    "permanent": 0.2,
    "predictor_crash": 0.15,
    "time_squeeze": 0.4,
    "cancel": 1.0,
    "cancel_race": 0.15,
    "race": 0.4,
    "sweep_midrun": 0.15,
}
assert set(RATE_CEILINGS) == set(RATE_FIELDS)


@st.composite
def fault_plans(draw: st.DrawFn) -> FaultPlan:
    jobs = draw(st.integers(1, 3))
    return FaultPlan(
        seed=draw(st.integers(0, 2**31)),
        jobs=jobs,
        items=draw(st.integers(1, 20 if jobs < 3 else 10)),
        chunk_size=draw(st.integers(1, 6)),
        batch_size=draw(st.sampled_from([1, 2, 3, 5, 10])),
        overlap=draw(st.booleans()),
        use_cache=draw(st.booleans()),
        tolerated_failure_percent=draw(st.sampled_from([100.0, 50.0, 20.0, 0.0])),
        shuffle=draw(st.booleans()),
        hang=draw(st.sampled_from([0, 0, 0, 1])),
        poison_chunks=draw(st.integers(0, 2)),
        malformed=draw(st.integers(0, 2)),
        **{name: draw(rate(high)) for name, high in RATE_CEILINGS.items()},
    )


def test_pipeline_hypothesis_fault_mix_keeps_invariants(request: pytest.FixtureRequest) -> None:
    """Hypothesis explores the space of mixes; a failure prints the FaultPlan that broke."""

    @hypothesis_settings(request.config)
    @given(plan=fault_plans())
    def check(plan: FaultPlan) -> None:
        with fresh_aws() as (env, monkeypatch):
            run_plan(env, plan, monkeypatch)

    check()


# ---------------------------------------------------------------- the injector injects

PROOF = FaultPlan(
    seed=5,
    jobs=2,
    items=16,
    chunk_size=4,
    batch_size=3,
    duplicate=0.4,
    shuffle=True,
    crash_before_write=0.15,
    crash_after_write=0.2,
    throttle=0.05,
    conflict=0.15,
    transient=0.3,
)


def run_fresh(plan: FaultPlan) -> tuple[FaultRun, list[dict[str, Any]]]:
    """Run the plan in an account of its own; return the run and its jobs' final views."""
    with fresh_aws() as (env, monkeypatch):
        run = run_plan(env, plan, monkeypatch)
        return run, [run.pipeline.status(job) for job in run.jobs]


def test_injector_faulty_run_has_more_deliveries_duplicates_retries_than_quiet_run() -> None:
    (faulty, faulty_views), (quiet, quiet_views) = run_fresh(PROOF), run_fresh(PROOF.quiet())
    chunks = 2 * 4
    # without faults: each chunk delivered once, written once, nothing comes back
    assert quiet.pipeline.deliveries == chunks
    assert quiet.pipeline.stats["record_failures"] == 0
    assert quiet.injector.stats["duplicate_writes"] == 0
    assert quiet.injector.stats["retry_chunks_sent"] == 0
    assert sum(quiet.injector.injected.values()) == 0
    # the same seed and workload with faults
    assert faulty.pipeline.deliveries > quiet.pipeline.deliveries
    assert faulty.pipeline.stats["ghost_deliveries"] > 0
    assert faulty.pipeline.stats["record_failures"] > 0
    assert faulty.pipeline.stats["worker_crashes"] > 0
    assert faulty.injector.stats["duplicate_writes"] > 0
    assert faulty.injector.stats["retry_chunks_sent"] > 0
    assert faulty.behaviour.transient_errors > 0
    for kind in ("crash_before_write", "crash_after_write", "throttle", "conflict"):
        assert faulty.injector.injected[kind] > 0, kind
    # ... and still the same end: every item of both jobs has exactly one result
    assert [v["counts"]["pending"] for v in faulty_views + quiet_views] == [0, 0, 0, 0]
    assert [v["status"] for v in quiet_views] == ["COMPLETED", "COMPLETED"]


def test_injector_ci_seeds_fire_every_fault_kind(
    request: pytest.FixtureRequest, fault_tally: dict[str, Any]
) -> None:
    """Across the seeds run above (the CI share at least), every fault kind really happened."""
    seeds = fault_seed_count(request.config)
    if os.environ.get("FAULT_SEED") or fault_tally["runs"] < min(seeds, CI_SEEDS):
        pytest.skip(
            "needs the seeded mixes of this session to have run in this process "
            f"({fault_tally['runs']} of {min(seeds, CI_SEEDS)} here)"
        )
    kinds = {*RATE_FIELDS, *COUNT_FIELDS, "shuffle"}
    silent = sorted(k for k in kinds if not fault_tally["fired"][k])
    assert not silent, f"never fired in {fault_tally['runs']} seeds: {silent}"


def test_plan_same_seed_gives_same_plan_and_quiet_keeps_the_workload() -> None:
    plan = FaultPlan.random(11)
    assert plan == FaultPlan.random(11)
    assert plan != FaultPlan.random(12)
    assert plan.faults
    quiet = plan.quiet()
    assert quiet.faults == {}
    assert (quiet.seed, quiet.jobs, quiet.items, quiet.chunk_size) == (
        plan.seed, plan.jobs, plan.items, plan.chunk_size,
    )  # fmt: skip
