"""One fault kind at a time, each with an outcome checked by hand.

The workload is one job of 20 entities (e00000..e00019) in 4 chunks of 5 (000000..000003),
predicted by `flaky` (ising with seeded failures), unless a test says otherwise. Every run also
passes the full invariant check (tests/faults/invariants.py).
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from batchpredict.constants import ErrorCode
from batchpredict.service.sweep import sweep_jobs
from batchpredict.store import stores
from tests.faults.driver import FaultPipeline, JobRun
from tests.faults.injector import THROTTLE_CODES
from tests.faults.invariants import all_results, check_invariants, terminal_events
from tests.faults.plan import FaultPlan
from tests.faults.scenario import FaultRun, run_plan
from tests.support.handlers import FakeContext

pytestmark = pytest.mark.xdist_group("faults")

BASE = FaultPlan(seed=1, jobs=1, items=20, chunk_size=5, batch_size=10)
ONE_BY_ONE = dataclasses.replace(BASE, batch_size=1)
CHUNKS = {
    "000000": [f"e{i:05d}" for i in range(0, 5)],
    "000001": [f"e{i:05d}" for i in range(5, 10)],
    "000002": [f"e{i:05d}" for i in range(10, 15)],
    "000003": [f"e{i:05d}" for i in range(15, 20)],
}
Env = dict[str, Any]


def the_job(run: FaultRun) -> tuple[JobRun, dict[str, Any], dict[str, dict[str, Any]]]:
    """The run's only job: its record, its status view, its result rows by entity id."""
    (job,) = run.jobs
    rows = {r["entity_id"]: r for r in all_results(run, job, limit=7)}
    return job, run.pipeline.status(job), rows


def counts(view: dict[str, Any]) -> tuple[int, int, int]:
    c = view["counts"]
    return c["succeeded"], c["failed"], c["cancelled"]


def worker_calls(run: FaultRun) -> list[Any]:
    return [i for i in run.pipeline.log if i.function == "worker"]


def deliveries_of(run: FaultRun, chunk_id: str) -> int:
    return sum(i.chunk_ids().count(chunk_id) for i in worker_calls(run))


# ---------------------------------------------------------------- delivery


def test_worker_every_message_delivered_twice_counts_each_chunk_once(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_plan(aws_env, BASE.only(duplicate=1.0), monkeypatch)
    _, view, rows = the_job(run)
    assert view["status"] == "COMPLETED"
    assert counts(view) == (20, 0, 0)
    assert run.pipeline.stats["ghost_deliveries"] == 4  # each chunk a second time
    assert run.injector.stats["duplicate_writes"] == 4  # ... refused by its condition
    assert sorted(rows) == [f"e{i:05d}" for i in range(20)]


def test_worker_shuffled_delivery_keeps_results_in_chunk_order(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_plan(aws_env, ONE_BY_ONE.only(shuffle=True), monkeypatch)
    (job,) = run.jobs
    delivered = [c for i in worker_calls(run) for c in i.chunk_ids()]
    assert sorted(delivered) == sorted(CHUNKS)
    assert delivered != sorted(delivered)  # the seed really reorders
    assert run.pipeline.status(job)["status"] == "COMPLETED"
    assert [r["entity_id"] for r in all_results(run, job, limit=3)] == job.entity_ids


def test_worker_duplicate_in_one_batch_makes_no_transaction_aws_would_refuse(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_plan(aws_env, BASE.only(duplicate=1.0), monkeypatch)
    (batch,) = worker_calls(run)
    assert sorted(batch.chunk_ids()) == sorted([*CHUNKS, *CHUNKS])  # both copies in one batch
    # DynamoDB refuses a transaction that touches one item twice (ValidationException)
    assert run.injector.stats["transactions_touching_one_item_twice"] == 0


# ---------------------------------------------------------------- the worker process dies


def test_worker_crash_before_write_redelivers_and_counts_once(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_plan(
        aws_env, BASE, monkeypatch, prepare=lambda r: r.injector.force("crash_before_write")
    )
    _, view, _ = the_job(run)
    first, second = worker_calls(run)
    assert first.outcome == "crashed"
    assert first.failed == {h.id for h in first.records}  # the whole batch comes back
    assert sorted(second.chunk_ids()) == sorted(CHUNKS)
    assert second.failed == set()
    assert run.injector.stats["duplicate_writes"] == 0  # nothing had been written
    assert {c for (_, c), who in run.injector.writers.items() if who == "worker"} == set(CHUNKS)
    assert view["status"] == "COMPLETED"
    assert counts(view) == (20, 0, 0)


def test_worker_crash_after_write_replay_is_acknowledged_as_duplicate(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_plan(
        aws_env, BASE, monkeypatch, prepare=lambda r: r.injector.force("crash_after_write")
    )
    job, view, _ = the_job(run)
    first, second = worker_calls(run)
    assert first.outcome == "crashed"
    assert second.failed == set()  # every replay acknowledged ...
    assert run.injector.stats["duplicate_writes"] >= 4  # ... as a duplicate of its write
    assert view["status"] == "COMPLETED"
    assert counts(view) == (20, 0, 0)  # not 40
    assert terminal_events(run, job) == ["JobCompleted"]


@pytest.mark.parametrize("variant", ["timeout", "retried"])
@pytest.mark.parametrize("plan", [BASE, ONE_BY_ONE], ids=["batch10", "batch1"])
def test_accounting_lost_write_response_counts_chunk_once(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch, variant: str, plan: FaultPlan
) -> None:
    """The write landed but its caller saw an error: a read timeout, or the ConditionalCheck
    failure of botocore's own retry of the request (the item was written by the first try)."""

    def prepare(run: FaultRun) -> None:
        run.injector.lost_response_variant = variant
        run.injector.force("lost_response", scope="worker")

    run = run_plan(aws_env, plan, monkeypatch, prepare=prepare)
    _, view, _ = the_job(run)
    assert run.injector.injected[f"lost_response.{variant}"] == 1
    first = worker_calls(run)[0]
    if variant == "timeout" and plan.batch_size == 1:
        # an error: the chunk comes back, and finds its result written (here: job finished)
        assert first.failed_chunk_ids() == ["000000"]
        assert deliveries_of(run, "000000") == 2
    else:
        # a ConditionalCheckFailed, or (batch) a retry chunk by chunk that meets one: each
        # chunk of the batch is acknowledged at once as a duplicate of its own write
        assert first.failed == set()
        assert run.injector.stats["duplicate_writes"] >= len(first.records)
    assert view["status"] == "COMPLETED"
    assert counts(view) == (20, 0, 0)


def test_worker_concurrent_duplicate_wins_write_and_chunk_counts_once(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_plan(aws_env, ONE_BY_ONE, monkeypatch, prepare=lambda r: r.injector.force("race"))
    job, view, _ = the_job(run)
    assert run.pipeline.stats["twins"] == 1
    assert run.injector.writers[(job.pk, "000000")] == "test"  # the twin wrote chunk 0 ...
    assert run.injector.stats["duplicate_writes"] == 1  # ... and the first delivery lost
    assert all(i.failed == set() for i in worker_calls(run))  # and was acknowledged
    assert view["status"] == "COMPLETED"
    assert counts(view) == (20, 0, 0)


def test_worker_hanging_prediction_kills_invocations_until_dead_lettered(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_plan(
        aws_env,
        ONE_BY_ONE,
        monkeypatch,
        setup=lambda r: setattr(r.behaviour, "hang", frozenset({"e00007"})),
    )
    _, view, rows = the_job(run)
    assert deliveries_of(run, "000001") == 5  # maxReceiveCount, then moto's redrive
    assert [i.outcome for i in worker_calls(run) if "000001" in i.chunk_ids()] == ["crashed"] * 5
    assert run.injector.injected["timeout_kill"] == 5
    assert {i for i, r in rows.items() if r["status"] == "failed"} == set(CHUNKS["000001"])
    assert {rows[i]["error"]["code"] for i in CHUNKS["000001"]} == {ErrorCode.DEAD_LETTERED}
    assert view["status"] == "COMPLETED_WITH_ERRORS"
    assert counts(view) == (15, 5, 0)


# ---------------------------------------------------------------- AWS errors


def test_accounting_transaction_conflict_retries_chunk_and_counts_once(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_plan(aws_env, ONE_BY_ONE, monkeypatch, prepare=lambda r: r.injector.force("conflict"))
    _, view, _ = the_job(run)
    calls = worker_calls(run)
    assert calls[0].failed_chunk_ids() == ["000000"]  # cancelled by the conflict: comes back
    assert [c for i in calls for c in i.chunk_ids()].count("000000") == 2
    assert len(calls) == 5
    assert view["status"] == "COMPLETED"
    assert counts(view) == (20, 0, 0)


@pytest.mark.parametrize(
    ("op", "code"),
    [
        ("BatchGetItem", "ProvisionedThroughputExceededException"),
        ("UpdateItem", "RequestLimitExceeded"),
        ("TransactWriteItems", "ProvisionedThroughputExceededException"),
        ("GetItem", "ThrottlingException"),
    ],
)
def test_worker_throttled_dynamodb_call_recovers_with_exact_counts(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch, op: str, code: str
) -> None:
    assert code in THROTTLE_CODES

    def prepare(run: FaultRun) -> None:
        run.injector.throttle_code = code
        run.injector.force("throttle", op=op, scope="worker")

    run = run_plan(aws_env, ONE_BY_ONE, monkeypatch, prepare=prepare)
    _, view, _ = the_job(run)
    assert run.injector.injected["throttle"] == 1
    affected = [i for i in worker_calls(run) if i.failed]
    assert len(affected) == 1  # exactly one invocation saw the error ...
    assert len(worker_calls(run)) == 5  # ... and its chunk came back once
    assert view["status"] == "COMPLETED"
    assert counts(view) == (20, 0, 0)


def test_worker_throttled_counter_read_after_recording_sends_nothing_back(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker's first Query reads the counters after the chunk is recorded: the chunk is
    # done, so its message is acknowledged; a later check (next chunk, or the sweep) finishes.
    def prepare(run: FaultRun) -> None:
        run.injector.throttle_code = "ThrottlingException"
        run.injector.force("throttle", op="Query", scope="worker")

    run = run_plan(aws_env, ONE_BY_ONE, monkeypatch, prepare=prepare)
    _, view, _ = the_job(run)
    assert run.injector.injected["throttle"] == 1
    assert [i for i in worker_calls(run) if i.failed] == []
    assert len(worker_calls(run)) == 4
    assert view["status"] == "COMPLETED"
    assert counts(view) == (20, 0, 0)


def test_worker_throttled_retry_chunk_send_is_resent_on_replay(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    def prepare(run: FaultRun) -> None:
        run.injector.force("sqs_throttle", op="SendMessageBatch", scope="worker")

    run = run_plan(
        aws_env,
        ONE_BY_ONE,
        monkeypatch,
        prepare=prepare,
        setup=lambda r: r.behaviour.fail_times.update({"e00002": 4}),
    )
    _, view, rows = the_job(run)
    calls = worker_calls(run)
    # chunk 0 was written with its retry chunk, whose send failed: the message came back,
    # the replay was a duplicate and sent the recorded retry chunk
    assert calls[0].failed_chunk_ids() == ["000000"]
    assert [c for i in calls for c in i.chunk_ids()].count("000000.r2") == 1
    assert rows["e00002"]["status"] == "succeeded"
    assert rows["e00002"]["attempts"] == 2
    assert view["status"] == "COMPLETED"
    assert counts(view) == (20, 0, 0)


@pytest.mark.parametrize(
    ("kind", "op", "variant"),
    [
        ("events_throttle", "PutEvents", "error"),
        ("events_throttle", "PutEvents", "entry_failed"),  # HTTP 200, FailedEntryCount 1
        ("throttle", "PutItem", None),  # the history event's write
    ],
)
def test_completion_announcement_failing_once_is_still_announced_once(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch, kind: str, op: str, variant: str | None
) -> None:
    def prepare(run: FaultRun) -> None:
        run.injector.events_variant = variant
        # the PutItem of the terminal event: skip JobStarted, which comes first
        run.injector.force(kind, op=op, scope="worker", skip=1 if op == "PutItem" else 0)

    run = run_plan(aws_env, BASE, monkeypatch, prepare=prepare)
    job, view, _ = the_job(run)
    assert view["status"] == "COMPLETED"
    assert run.injector.injected[kind] == 1
    # the failed announcer gave its claim back: the sweep announced without waiting it out
    assert run.pipeline.stats["claims_lapsed"] == 0
    assert sent(run, job) == [f"JobCompleted|{job.job_id}:JobCompleted"]
    assert terminal_events(run, job) == ["JobCompleted"]


def sent(run: FaultRun, job: JobRun) -> list[str]:
    """What EventBridge accepted for the job: "<DetailType>|<detail.event_id>" per event."""
    return [what for kind, what in run.injector.announcing[job.job_id] if kind == "sent"]


@pytest.mark.parametrize(
    "fault",
    [
        # the process dies right after PutEvents returned
        {"kind": "crash_any_call", "op": "PutEvents", "skip": 1},  # skip: the "before" point
        # marking the job announced is throttled: PutEvents went out, the mark did not land
        {"kind": "throttle", "op": "UpdateItem", "call": "SET announced_at"},
    ],
    ids=["died-after-put-events", "mark-throttled"],
)
def test_completion_announcer_lost_after_put_events_resends_same_event_id(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch, fault: dict[str, Any]
) -> None:
    """The documented window: the event goes out again, with the same detail.event_id."""

    def prepare(run: FaultRun) -> None:
        run.injector.force(scope="worker", **fault)

    run = run_plan(aws_env, BASE, monkeypatch, prepare=prepare)
    job, view, _ = the_job(run)
    assert view["status"] == "COMPLETED"
    assert run.pipeline.stats["claims_lapsed"] == 1  # the sweep took over after the lease
    assert sent(run, job) == [f"JobCompleted|{job.job_id}:JobCompleted"] * 2
    assert terminal_events(run, job) == ["JobCompleted"]  # the history holds it once
    assert counts(view) == (20, 0, 0)


def test_completion_announced_exactly_once_without_faults(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_plan(aws_env, BASE.only(duplicate=1.0), monkeypatch)
    job, _, _ = the_job(run)
    assert sent(run, job) == [f"JobCompleted|{job.job_id}:JobCompleted"]
    assert run.pipeline.stats["sweeps"] == 0  # the worker announced it; no sweep was needed


# ---------------------------------------------------------------- predictor failures


def test_predictor_transient_errors_retry_then_exhaust_with_reason(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_times = {"e00001": 2, "e00002": 4, "e00003": 10**9}
    run = run_plan(
        aws_env, BASE, monkeypatch, setup=lambda r: r.behaviour.fail_times.update(fail_times)
    )
    _, view, rows = the_job(run)
    max_attempts = stores().settings.max_attempts
    assert stores().settings.inline_retries == 2
    # e00001: calls 1-2 fail, the 2nd inline retry succeeds within the first attempt
    assert (rows["e00001"]["status"], rows["e00001"]["attempts"]) == ("succeeded", 1)
    # e00002: 3 calls fail in attempt 1; its retry chunk (attempt 2) fails once, then succeeds
    assert (rows["e00002"]["status"], rows["e00002"]["attempts"]) == ("succeeded", 2)
    # e00003 never recovers: one retry chunk per attempt up to max_attempts, then failed
    assert rows["e00003"]["status"] == "failed"
    assert rows["e00003"]["attempts"] == max_attempts
    assert rows["e00003"]["error"]["code"] == ErrorCode.TRANSIENT_EXHAUSTED
    assert f"after {max_attempts} attempt(s)" in rows["e00003"]["error"]["message"]
    retry_chunks = [c for i in worker_calls(run) for c in i.chunk_ids() if ".r" in c]
    assert retry_chunks == [f"000000.r{n}" for n in range(2, max_attempts + 1)]
    assert run.behaviour.calls["e00003"] == 3 * max_attempts  # 1 + 2 inline per attempt
    assert view["retried_items"] == 2 + (max_attempts - 2)  # r2 carried 2, later ones 1
    assert view["status"] == "COMPLETED_WITH_ERRORS"
    assert counts(view) == (19, 1, 0)


def test_predictor_permanent_errors_fail_items_at_once_with_category(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    def setup(run: FaultRun) -> None:
        run.behaviour.permanent_ids = frozenset({"e00004", "e00010"})
        run.behaviour.crash_ids = frozenset({"e00015"})

    run = run_plan(aws_env, BASE, monkeypatch, setup=setup)
    _, view, rows = the_job(run)
    failed = {i: r["error"]["code"] for i, r in rows.items() if r["status"] == "failed"}
    assert failed == {
        "e00004": ErrorCode.INVALID_INPUT,
        "e00010": ErrorCode.INVALID_INPUT,
        "e00015": ErrorCode.PREDICTOR_ERROR,
    }
    assert all(rows[i]["attempts"] == 1 for i in failed)
    assert run.behaviour.calls["e00004"] == 1  # never retried
    assert run.injector.stats["retry_chunks_sent"] == 0
    assert view["status"] == "COMPLETED_WITH_ERRORS"
    assert counts(view) == (17, 3, 0)


# ---------------------------------------------------------------- poison messages


def test_worker_poison_chunk_ends_as_dead_lettered_failed_items(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    def setup(run: FaultRun) -> None:
        (job,) = run.jobs
        run.injector.poisoned.add((job.pk, "000001"))

    run = run_plan(aws_env, ONE_BY_ONE, monkeypatch, setup=setup)
    _, view, rows = the_job(run)
    assert deliveries_of(run, "000001") == 5  # the queue's maxReceiveCount
    assert [(d.chunk_id, d.entity_ids) for d in run.pipeline.dead_letters] == [
        ("000001", tuple(CHUNKS["000001"]))
    ]
    for entity_id in CHUNKS["000001"]:
        assert rows[entity_id]["status"] == "failed"
        assert rows[entity_id]["error"]["code"] == ErrorCode.DEAD_LETTERED
        assert "000001" in rows[entity_id]["error"]["message"]
    assert view["status"] == "COMPLETED_WITH_ERRORS"
    assert counts(view) == (15, 5, 0)


def test_dlq_throttled_dead_letter_comes_back_and_is_recorded_once(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    def setup(run: FaultRun) -> None:
        (job,) = run.jobs
        run.injector.poisoned.add((job.pk, "000002"))
        run.injector.force("throttle", op="TransactWriteItems", scope="dlq")

    run = run_plan(aws_env, ONE_BY_ONE, monkeypatch, setup=setup)
    _, view, rows = the_job(run)
    dlq = [i for i in run.pipeline.log if i.function == "dlq"]
    assert [i.failed_chunk_ids() for i in dlq] == [["000002"], []]
    assert {rows[i]["error"]["code"] for i in CHUNKS["000002"]} == {ErrorCode.DEAD_LETTERED}
    assert counts(view) == (15, 5, 0)


def test_dlq_malformed_work_message_is_parked_with_reason_never_dropped(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    def prepare(run: FaultRun) -> None:
        # parking fails once: the letter must be reported as a batch item failure, not dropped
        run.injector.force("sqs_throttle", op="SendMessage", scope="dlq")

    run = run_plan(aws_env, BASE.only(malformed=1), monkeypatch, prepare=prepare)
    (body,) = run.malformed
    with_garbage = [i for i in worker_calls(run) if any(h.body == body for h in i.records)]
    assert len(with_garbage) == 5  # failed on every delivery, then dead-lettered
    assert all(
        i.failed == {h.id for h in i.records if h.body == body} for i in with_garbage
    )  # it alone failed each time
    dlq = [i for i in run.pipeline.log if i.function == "dlq"]
    assert [len(i.failed) for i in dlq] == [1, 0]  # reported once, then parked
    parked = run.pipeline.parking_lot()
    assert [m["Body"] for m in parked] == [body]
    assert "not a chunk" in parked[0]["MessageAttributes"]["reason"]["StringValue"]
    _, view, _ = the_job(run)
    assert view["status"] == "COMPLETED"


# ---------------------------------------------------------------- cancellation


def test_job_cancel_mid_run_ends_cancelled_with_exact_counts(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    def setup(run: FaultRun) -> None:
        run.jobs[0].cancel_after = 2  # after two one-chunk invocations

    run = run_plan(aws_env, ONE_BY_ONE, monkeypatch, setup=setup)
    job, view, rows = the_job(run)
    assert job.cancel_accepted
    assert view["status"] == "CANCELLED"
    assert counts(view) == (10, 0, 10)
    cancelled = {i for i, r in rows.items() if r["status"] == "cancelled"}
    assert cancelled == set(CHUNKS["000002"] + CHUNKS["000003"])
    assert {rows[i]["error"]["code"] for i in cancelled} == {ErrorCode.CANCELLED}
    assert terminal_events(run, job) == ["JobCancelled"]


def test_job_cancel_between_prediction_and_write_keeps_that_chunks_predictions(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    def prepare(run: FaultRun) -> None:
        run.injector.force("cancel_race", skip=1)  # during chunk 000001's write

    run = run_plan(aws_env, ONE_BY_ONE, monkeypatch, prepare=prepare)
    job, view, rows = the_job(run)
    assert job.cancel_accepted
    assert view["status"] == "CANCELLED"
    assert counts(view) == (10, 0, 10)
    assert all(rows[i]["status"] == "succeeded" for i in CHUNKS["000001"])


# ---------------------------------------------------------------- time


class RunsOutOfTime(FakeContext):
    """Plenty of time for the first record, then less than the safety margin."""

    def __init__(self) -> None:
        super().__init__(function_name="worker")
        self.asked = 0

    def get_remaining_time_in_millis(self) -> int:
        self.asked += 1
        margin = stores().settings.time_safety_margin_ms
        return 60_000 if self.asked == 1 else margin - 1


def test_worker_time_running_out_fails_remaining_records_which_come_back(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    contexts = iter([RunsOutOfTime()])

    def setup(run: FaultRun) -> None:
        pipeline: FaultPipeline = run.pipeline
        default = pipeline.default_context
        pipeline.context_factory = lambda: next(contexts, None) or default()  # type: ignore[assignment]

    run = run_plan(aws_env, BASE, monkeypatch, setup=setup)
    first, second = worker_calls(run)
    assert first.chunk_ids() == ["000000", "000001", "000002", "000003"]
    assert first.failed_chunk_ids() == ["000001", "000002", "000003"]  # exactly the rest
    assert first.outcome == "ok"  # a partial batch response, not a crash
    assert second.chunk_ids() == ["000001", "000002", "000003"]
    assert second.failed == set()
    _, view, _ = the_job(run)
    assert view["status"] == "COMPLETED"
    assert counts(view) == (20, 0, 0)


# ---------------------------------------------------------------- lost messages and the sweep


def lose(run: FaultRun, chunk_ids: set[str]) -> None:
    """Take the work messages of `chunk_ids` off the queue unprocessed; put the rest back."""
    pipeline = run.pipeline
    pipeline.intake()
    for held in pipeline.pool:
        if json.loads(held.body)["chunk_id"] in chunk_ids:
            pipeline.sqs.delete_message(
                QueueUrl=pipeline.work_queue_url, ReceiptHandle=held.message["ReceiptHandle"]
            )
            pipeline.lost.append(held.body)
    pipeline.pool = [h for h in pipeline.pool if h.body not in pipeline.lost]


def test_sweep_lost_messages_redispatched_after_stuck_time_and_job_finishes(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_plan(
        aws_env, BASE, monkeypatch, setup=lambda r: lose(r, {"000001", "000003"}), check=False
    )
    # run_plan drove it to the end, sweeping as the schedule would: check how it got there
    _job, view, _ = the_job(run)
    assert run.pipeline.stats["redispatched"] == 2
    assert run.pipeline.stats["sweeps"] == 2  # the 1st saw progress, the 2nd found it stuck
    redispatched = [c for i in worker_calls(run)[1:] for c in i.chunk_ids()]
    assert sorted(redispatched) == ["000001", "000003"]
    assert view["status"] == "COMPLETED"
    assert counts(view) == (20, 0, 0)
    check_invariants(run)


def test_sweep_before_stuck_time_redispatches_nothing(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.faults.scenario import build, submit_jobs

    run = build(aws_env, BASE, monkeypatch)
    submit_jobs(run)
    lose(run, {"000002"})
    run.pipeline.run(sweep=False)
    (job,) = run.jobs
    view = run.pipeline.status(job)
    assert (view["status"], view["counts"]["pending"]) == ("PROCESSING", 5)  # stuck
    stuck_after = timedelta(seconds=stores().settings.stuck_after_seconds + 1)
    # the first look sees progress since the job was created, and only notes it
    assert sweep_jobs(stores(), now=datetime.now(UTC) + stuck_after).redispatched == {}
    # no progress since, but not for stuck_after_seconds yet
    assert sweep_jobs(stores(), now=datetime.now(UTC)).redispatched == {}
    # stuck_after_seconds later: exactly the lost chunk is sent again
    report = sweep_jobs(stores(), now=datetime.now(UTC) + stuck_after)
    assert report.redispatched == {job.job_id: 1}
    run.pipeline.run()
    assert counts(run.pipeline.status(job)) == (20, 0, 0)
    check_invariants(run)


def test_sweep_partial_send_failure_is_resent(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    def setup(run: FaultRun) -> None:
        lose(run, {"000000", "000002"})
        run.injector.force("sqs_partial", scope="sweep")

    run = run_plan(aws_env, BASE, monkeypatch, setup=setup)
    assert run.injector.injected["sqs_partial"] == 1
    assert run.injector.stats["sent.sweep"] == 2  # one entry refused, sent again alone
    _, view, _ = the_job(run)
    assert counts(view) == (20, 0, 0)


def test_submit_fanout_failure_leaves_job_to_the_sweep_which_finishes_it(
    aws_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_plan(aws_env, BASE, monkeypatch, prepare=lambda r: r.injector.force("submit_fail"))
    job, view, _ = the_job(run)
    assert job.submit_attempts == 2  # a 500, then the same client token: the same job
    assert run.injector.stats["sent.submit"] == 0  # the retry did not dispatch it ...
    assert run.pipeline.stats["redispatched"] == 4  # ... the sweep did
    assert view["status"] == "COMPLETED"
    assert counts(view) == (20, 0, 0)
