"""Detecting that a job is finished, exactly once, and announcing it."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime

from aws_lambda_powertools.metrics import MetricUnit

from batchpredict import constants as c
from batchpredict.constants import JobStatus, Metric
from batchpredict.observability import logger, metrics
from batchpredict.store import Stores
from batchpredict.store.jobs import Counts, Job, parse_iso
from batchpredict.views import job_view

_EVENT_TYPES = {
    JobStatus.COMPLETED: (c.EVENT_JOB_COMPLETED, Metric.JOBS_COMPLETED),
    JobStatus.COMPLETED_WITH_ERRORS: (c.EVENT_JOB_COMPLETED, Metric.JOBS_COMPLETED),
    JobStatus.FAILED: (c.EVENT_JOB_FAILED, Metric.JOBS_FAILED),
    JobStatus.CANCELLED: (c.EVENT_JOB_CANCELLED, Metric.JOBS_CANCELLED),
}


def over_tolerance(job: Job, counts: Counts) -> bool:
    return counts.failed * 100.0 > job.tolerated_failure_percent * counts.total


def final_status(job: Job, counts: Counts) -> JobStatus:
    if job.status is JobStatus.CANCELLING or job.cancel_requested_at:
        return JobStatus.CANCELLED
    if job.failure_tolerance_exceeded or over_tolerance(job, counts):
        return JobStatus.FAILED
    return JobStatus.COMPLETED_WITH_ERRORS if counts.failed else JobStatus.COMPLETED


def check_job(stores: Stores, job: Job) -> Counts:
    """Sum the job's counters; stop predicting past its failure tolerance; finish it when done.

    Safe to call any number of times from any number of places: only one call finalizes, and
    the end is announced once. If announcing fails, this raises; the job stays unannounced on
    the sweep index, and the next call (a redelivered chunk, the sweep) announces it.
    """
    counts = stores.jobs.counts(job)
    if counts.done < counts.total:
        if over_tolerance(job, counts) and not job.failure_tolerance_exceeded:
            stores.jobs.mark_failure_tolerance_exceeded(job)
            stores.jobs.put_event(job, "FailureToleranceExceeded", {"failed": counts.failed})
        return counts
    fresh = stores.jobs.get(job.tenant, job.job_id, consistent=True)
    if fresh is None or fresh.announced_at:
        return counts
    lease = c.ANNOUNCE_LEASE_SECONDS
    if fresh.status.is_terminal:
        claimed = stores.jobs.claim_announcement(fresh, lease_seconds=lease)
    else:
        claimed = stores.jobs.finalize(fresh, final_status(fresh, counts), lease_seconds=lease)
    if claimed:
        _announce(stores, fresh, counts)
    return counts


def check_job_or_leave_it_to_the_sweep(stores: Stores, job: Job) -> Counts | None:
    """check_job after recording chunks, where a failure must not send the chunks back.

    The chunks are recorded; what failed is reading the counters or finishing or announcing
    the job. The job is still on the sweep index, and the scheduled sweep checks it again.
    Failing the messages instead would make a long EventBridge outage spin them into the DLQ.
    """
    try:
        return check_job(stores, job)
    except Exception:
        logger.exception("checking the job failed; the sweep will finish it")
        return None


class AnnouncementFailed(RuntimeError):
    """EventBridge refused the job's end event; the claim is released for a retry."""


def _announce(stores: Stores, job: Job, counts: Counts) -> None:
    """History event and EventBridge event, then the job is marked announced.

    The history event has a fixed sort key (the finish time), so a retry rewrites it. The
    EventBridge event goes out once unless this process dies between PutEvents and the mark;
    then the lease lapses and it goes out again with the same `detail.event_id` for consumers
    to drop.
    """
    detail_type, metric = _EVENT_TYPES[job.status]
    view = job_view(job, counts)
    try:
        stores.jobs.put_event(
            job,
            detail_type,
            {"status": job.status, "counts": view["counts"]},
            at=job.finished_at,
        )
        detail = {"event_id": f"{job.job_id}:{detail_type}", "tenant": job.tenant, **view}
        response = stores.events.put_events(
            Entries=[
                {
                    "Source": c.EVENT_SOURCE,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail, default=str),
                    "EventBusName": stores.settings.event_bus_name,
                }
            ]
        )
        if response.get("FailedEntryCount"):
            raise AnnouncementFailed(f"EventBridge refused the event: {response['Entries']}")
    except Exception:
        stores.jobs.release_announcement(job)
        raise
    stores.jobs.mark_announced(job)
    metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
    created = parse_iso(job.created_at) or datetime.now(UTC)
    duration = (datetime.now(UTC) - created).total_seconds()
    metrics.add_metric(name=Metric.JOB_DURATION, unit=MetricUnit.Seconds, value=duration)
    logger.info("job finished", extra={"job_id": job.job_id, "status": job.status})
    if job.callback_url:
        _post_callback(job.callback_url, view)


def _post_callback(url: str, body: dict[str, object]) -> None:
    """Best effort: the EventBridge event is the reliable signal; a callback may be missed."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body, default=str).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5):
            pass
    except OSError as error:
        logger.warning("callback failed", extra={"url": url, "error": str(error)})
