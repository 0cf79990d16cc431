"""How jobs look in the API: one function per shape, used by every route that returns one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from batchpredict.store.jobs import Counts, Job, parse_iso

# Used only for a fresh job's first estimate, before it has a measured throughput.
ASSUMED_ITEMS_PER_SECOND = 500.0


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def links(job_id: str) -> dict[str, str]:
    base = f"/v1/jobs/{job_id}"
    return {"self": base, "results": f"{base}/results", "cancel": f"{base}/cancel"}


def job_view(job: Job, counts: Counts, *, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    started = parse_iso(job.started_at)
    finished = parse_iso(job.finished_at)
    elapsed = ((finished or now) - started).total_seconds() if started else 0.0
    throughput = counts.done / elapsed if elapsed > 0 and counts.done else None
    if job.status.is_terminal:
        eta = finished
    elif throughput:
        eta = now + timedelta(seconds=counts.pending / throughput)
    else:
        eta = now + timedelta(seconds=counts.pending / ASSUMED_ITEMS_PER_SECOND)
    succeeded = counts.succeeded
    return {
        "job_id": job.job_id,
        "status": str(job.status),
        "prediction_type": job.prediction_type,
        "predictor_version": job.predictor_version,
        "parameters": job.parameters,
        "priority": str(job.priority),
        "metadata": job.metadata,
        "portfolio_id": job.portfolio_id,
        "input_uri": job.input_uri,
        "use_cache": job.use_cache,
        "tolerated_failure_percent": job.tolerated_failure_percent,
        "total_items": counts.total,
        "chunk_count": job.chunk_count,
        "progress": round(counts.done / counts.total, 6) if counts.total else 1.0,
        "counts": {
            "total": counts.total,
            "succeeded": succeeded,
            "failed": counts.failed,
            "cancelled": counts.cancelled,
            "cached": counts.cached,
            "pending": counts.pending,
        },
        "cache_hit_rate": round(counts.cached / succeeded, 6) if succeeded else 0.0,
        "retried_items": counts.retried,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "updated_at": job.updated_at or job.created_at,
        "throughput_items_per_second": round(throughput, 3) if throughput else None,
        "estimated_completion": _iso(eta) if eta else None,
        "links": links(job.job_id),
    }


def job_summary(job: Job) -> dict[str, Any]:
    """The list view: no counters (those take a Query per job)."""
    return {
        "job_id": job.job_id,
        "status": str(job.status),
        "prediction_type": job.prediction_type,
        "total_items": job.total_items,
        "priority": str(job.priority),
        "metadata": job.metadata,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        "links": links(job.job_id),
    }
