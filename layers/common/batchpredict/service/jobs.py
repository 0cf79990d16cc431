"""Reading and cancelling jobs: status, results, the tenant's list, events."""

from __future__ import annotations

from typing import Any

from batchpredict.constants import ErrorCode, JobStatus
from batchpredict.errors import ConflictError, NotFoundError
from batchpredict.models import ListJobsQuery, ResultsQuery
from batchpredict.service import tokens
from batchpredict.service.completion import check_job_or_leave_it_to_the_sweep
from batchpredict.store import Stores
from batchpredict.store.jobs import Job
from batchpredict.views import job_summary, job_view


def load_job(stores: Stores, tenant: str, job_id: str, *, consistent: bool = False) -> Job:
    job = stores.jobs.get(tenant, job_id, consistent=consistent)
    if job is None:
        raise NotFoundError(f"job {job_id} not found")
    return job


def job_status(stores: Stores, tenant: str, job_id: str) -> dict[str, Any]:
    job = load_job(stores, tenant, job_id)
    return job_view(job, stores.jobs.counts(job))


def job_results(stores: Stores, tenant: str, job_id: str, query: ResultsQuery) -> dict[str, Any]:
    """One page of item results in chunk order; the token remembers chunk and offset."""
    job = load_job(stores, tenant, job_id)
    scope = f"results:{job_id}:{query.status or ''}"
    state = tokens.decode(query.next_token, scope=scope) or {}
    from_sk, skip = state.get("sk"), int(state.get("offset", 0))
    items: list[dict[str, Any]] = []
    next_token = None
    for sk, rows in stores.jobs.iter_results(job, from_sk=from_sk):
        wanted = [r for r in rows if query.status is None or r.status == query.status]
        start = skip if sk == from_sk else 0
        take = wanted[start : start + query.limit - len(items)]
        items.extend(r.to_json() for r in take)
        if len(items) >= query.limit:
            consumed = start + len(take)
            if consumed < len(wanted):
                next_token = tokens.encode({"scope": scope, "sk": sk, "offset": consumed})
            else:
                next_token = tokens.encode({"scope": scope, "sk": sk + "\x00", "offset": 0})
            break
    return {"job_id": job_id, "items": items, "next_token": next_token}


def list_jobs(stores: Stores, tenant: str, query: ListJobsQuery) -> dict[str, Any]:
    scope = f"jobs:{query.status or ''}:{query.prediction_type or ''}"
    state = tokens.decode(query.next_token, scope=scope)
    start_key = state.get("key") if state else None
    found: list[dict[str, Any]] = []
    while len(found) < query.limit:
        jobs, start_key = stores.jobs.list_for_tenant(
            tenant, limit=query.limit, start_key=start_key
        )
        found.extend(
            job_summary(j)
            for j in jobs
            if (query.status is None or j.status == query.status)
            and (query.prediction_type is None or j.prediction_type == query.prediction_type)
        )
        if not start_key:
            break
    # A filtered page may overshoot; cut it at the limit and resume after the last job shown.
    if len(found) > query.limit:
        found = found[: query.limit]
        last = found[-1]
        start_key = stores.jobs.list_key(tenant, last["created_at"], last["job_id"])
    next_token = tokens.encode({"scope": scope, "key": start_key}) if start_key else None
    return {"jobs": found, "next_token": next_token}


def job_events(stores: Stores, tenant: str, job_id: str) -> dict[str, Any]:
    job = load_job(stores, tenant, job_id)
    return {"job_id": job_id, "events": stores.jobs.events(job)}


def cancel_job(stores: Stores, tenant: str, job_id: str) -> dict[str, Any]:
    """QUEUED/PROCESSING -> CANCELLING; workers record the remaining chunks as cancelled."""
    job = load_job(stores, tenant, job_id, consistent=True)
    if job.status in (JobStatus.QUEUED, JobStatus.PROCESSING):
        stores.jobs.request_cancel(job)
        job = load_job(stores, tenant, job_id, consistent=True)
    if job.status.is_terminal and job.status is not JobStatus.CANCELLED:
        raise ConflictError(
            f"job {job_id} already finished with status {job.status}; nothing to cancel",
            code=ErrorCode.JOB_FINISHED,
        )
    # Every item may already be accounted for: then the job ends here, as CANCELLED. The
    # cancel is recorded either way; if finishing fails, the sweep finishes the job.
    counts = check_job_or_leave_it_to_the_sweep(stores, job) or stores.jobs.counts(job)
    return job_view(load_job(stores, tenant, job_id, consistent=True), counts)
