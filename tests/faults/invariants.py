"""The invariants every fault run must keep (DESIGN.md, "Exactly-once accounting").

All are checked through the public API (GET /v1/jobs/{id}, /results, /events) plus what the
injector and the driver saw on the way. Every breach is collected, then reported at once.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from batchpredict.constants import TERMINAL_STATUSES, ErrorCode
from batchpredict.store import stores
from tests.faults.driver import JobRun
from tests.faults.scenario import FaultRun

ANNOUNCED = {
    "COMPLETED": "JobCompleted",
    "COMPLETED_WITH_ERRORS": "JobCompleted",
    "FAILED": "JobFailed",
    "CANCELLED": "JobCancelled",
}
CANCEL_CODES = {str(ErrorCode.CANCELLED), str(ErrorCode.FAILURE_TOLERANCE_EXCEEDED)}


def all_results(run: FaultRun, job: JobRun, limit: int) -> list[dict[str, Any]]:
    """Every result row of the job, paging with next_token."""
    rows: list[dict[str, Any]] = []
    token = None
    for _ in range(10_000):
        response = run.pipeline.api(
            "GET",
            f"/v1/jobs/{job.job_id}/results",
            query={"limit": limit, "next_token": token},
            tenant=job.tenant,
        )
        assert response.status == 200, response
        rows.extend(response.body["items"])
        token = response.body["next_token"]
        if not token:
            return rows
    raise AssertionError("results never stopped paging")


def terminal_events(run: FaultRun, job: JobRun) -> list[str]:
    response = run.pipeline.api("GET", f"/v1/jobs/{job.job_id}/events", tenant=job.tenant)
    assert response.status == 200, response
    return [e["kind"] for e in response.body["events"] if e["kind"] in set(ANNOUNCED.values())]


def announcement_problems(run: FaultRun, job: JobRun, status: str) -> list[str]:
    p: list[str] = []
    events = terminal_events(run, job)
    if status in ANNOUNCED and events != [ANNOUNCED[status]]:
        p.append(f"history holds end events {events} for status {status}")
    history = run.injector.announcing.get(job.job_id, [])
    sends = [what for kind, what in history if kind == "sent"]
    windows = [what for kind, what in history if kind == "window"]
    marks = sum(1 for kind, _ in history if kind == "marked")
    detail_type = ANNOUNCED.get(status, "?")
    if not sends:
        p.append(f"end never sent to EventBridge (status {status})")
    if set(sends) - {f"{detail_type}|{job.job_id}:{detail_type}"}:
        p.append(f"EventBridge got {sends} for status {status}")
    if len(sends) - 1 > len(windows):
        p.append(f"end sent {len(sends)}x to EventBridge with {len(windows)} fault(s) between "
                 f"a send and the mark: {history}")  # fmt: skip
    if marks != 1 or history[-1:] != [("marked", "")]:
        p.append(f"job marked announced {marks}x, or not after its last send: {history}")
    stored = stores().jobs.get(job.tenant, job.job_id, consistent=True)
    if stored is None or not stored.announced_at:
        p.append("job not marked announced")
    return p


def job_problems(run: FaultRun, job: JobRun) -> list[str]:
    p: list[str] = []
    view = run.pipeline.status(job)
    status, counts = view["status"], view["counts"]
    done = counts["succeeded"] + counts["failed"] + counts["cancelled"]
    total = job.total

    # 1. every job reaches a terminal state once the queues drain (the driver ran the sweep)
    if status not in TERMINAL_STATUSES:
        p.append(f"status {status} is not terminal")
    # 2. succeeded + failed + cancelled == total
    if done != total or counts["pending"] != 0 or counts["total"] != total:
        p.append(f"counts {counts} do not add up to total {total}")

    # 3. each item has exactly one result row (paged with a random page size)
    limit = random.Random(f"page:{run.plan.seed}:{job.job_id}").choice((1, 3, 7, 25, 100))
    rows = all_results(run, job, limit)
    seen = Counter(r["entity_id"] for r in rows)
    expected = Counter(job.entity_ids)
    if seen != expected:
        extra = sorted((seen - expected).elements())[:10]
        missing = sorted((expected - seen).elements())[:10]
        p.append(f"result rows differ from items: extra/duplicate {extra}, missing {missing}")
    # ... and the rows tell the same story as the counters
    tally = Counter(r["status"] for r in rows)
    for name in ("succeeded", "failed", "cancelled"):
        if tally[name] != counts[name]:
            p.append(f"{tally[name]} {name} rows but counter says {counts[name]}")
    if sum(1 for r in rows if r["cached"]) != counts["cached"]:
        p.append(f"cached rows differ from counter {counts['cached']}")

    # 4. rows are well formed; failures carry a reason
    max_attempts = stores().settings.max_attempts
    for row in rows:
        error = row.get("error") or {}
        if row["status"] == "succeeded" and not row.get("prediction"):
            p.append(f"succeeded row without prediction: {row}")
        elif row["status"] == "failed" and not (error.get("code") and error.get("message")):
            p.append(f"failed row without a reason: {row}")
        elif row["status"] == "cancelled" and error.get("code") not in CANCEL_CODES:
            p.append(f"cancelled row with code {error.get('code')}")
        if not 1 <= row["attempts"] <= max_attempts:
            p.append(f"row with {row['attempts']} attempts (max {max_attempts}): {row}")
        if error.get("code") == ErrorCode.TRANSIENT_EXHAUSTED and row["attempts"] != max_attempts:
            p.append(f"transient failure given up before max_attempts: {row}")

    # 5. the status follows from the counts and from what the client asked
    if job.cancel_accepted and status != "CANCELLED":
        p.append(f"cancel was accepted but the job ended {status}")
    if status == "CANCELLED" and not job.cancel_accepted:
        p.append("CANCELLED without an accepted cancel")
    if not job.cancel_accepted and status in TERMINAL_STATUSES:
        over = counts["failed"] * 100.0 > job.tolerated_failure_percent * total
        if over != (status == "FAILED"):
            p.append(f"{status} with {counts['failed']} failed of {total} "
                     f"(tolerance {job.tolerated_failure_percent}%)")  # fmt: skip
        if status == "COMPLETED" and (counts["failed"] or counts["cancelled"]):
            p.append(f"COMPLETED with counts {counts}")
        if status == "COMPLETED_WITH_ERRORS" and not counts["failed"]:
            p.append(f"COMPLETED_WITH_ERRORS with counts {counts}")
        if counts["cancelled"] and status != "FAILED":
            p.append(f"{counts['cancelled']} cancelled items in a job never cancelled")

    # 6. dead-lettered chunks are accounted: failed with code dead_lettered, unless a worker
    # had recorded the chunk before its message was dead-lettered (then it counts as recorded)
    by_id = {r["entity_id"]: r for r in rows}
    dead_expected: set[str] = set()
    for letter in run.pipeline.dead_letters:
        if letter.job_id != job.job_id:
            continue
        writer = run.injector.writers.get((job.pk, letter.chunk_id))
        if writer is None:
            p.append(f"dead-lettered chunk {letter.chunk_id} was never recorded")
        elif writer == "dlq":
            dead_expected |= set(letter.entity_ids)
    dead_rows = {
        i for i, r in by_id.items() if (r.get("error") or {}).get("code") == ErrorCode.DEAD_LETTERED
    }
    if dead_rows != dead_expected:
        p.append(
            f"dead_lettered rows {sorted(dead_rows)[:10]} != items of chunks the DLQ "
            f"recorded {sorted(dead_expected)[:10]}"
        )

    # 7. the end is announced exactly once: one history event, one EventBridge event. The
    # one exception is documented (service/completion.py: _announce): an announcer that dies
    # or fails between PutEvents and marking the job announced leaves its claim to lapse, and
    # the next one sends the event again with the same detail.event_id (consumers drop it).
    # So: every send carries the job's one event_id, and each send after the first follows a
    # fault in that window; the job is marked announced exactly once, after the last send.
    p += announcement_problems(run, job, status)
    return [f"{job.job_id}: {problem}" for problem in p]


def check_invariants(run: FaultRun) -> None:
    problems = list(run.injector.violations) + list(run.pipeline.violations)
    for job in run.jobs:
        problems += job_problems(run, job)
    # a poison message is never silently dropped: an unparseable one ends in the parking queue
    # (with the reason) or, if parking kept failing, still in the DLQ
    parking = run.pipeline.parking_lot()
    # (at least once: a DLQ invocation that dies after parking parks the letter again)
    ended = {m["Body"] for m in parking} | set(run.pipeline.kept)
    if run.pipeline.parking_url is not None and ended != set(run.malformed):
        problems.append(
            f"malformed bodies {run.malformed} ended as parked "
            f"{[m['Body'] for m in parking]} + kept in the DLQ {run.pipeline.kept}"
        )
    for message in parking:
        if not message.get("MessageAttributes", {}).get("reason", {}).get("StringValue"):
            problems.append(f"parked without a reason: {message['Body']!r}")
    if problems:
        raise AssertionError("invariants broken:\n  " + "\n  ".join(problems))
