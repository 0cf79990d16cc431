"""A job's report and the tenant's stats: what an operator asks after a run."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from batchpredict.service.jobs import load_job
from batchpredict.store import Stores
from batchpredict.store.jobs import tenant_pk
from batchpredict.views import job_view

QUALITY_BINS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    p50, p95, p99 = np.percentile(np.asarray(values), [50, 95, 99])
    return {
        "p50": round(float(p50), 3),
        "p95": round(float(p95), 3),
        "p99": round(float(p99), 3),
        "max": round(max(values), 3),
    }


def job_report(stores: Stores, tenant: str, job_id: str) -> dict[str, Any]:
    """Latency percentiles, error and quality distributions, and the job's timeline."""
    job = load_job(stores, tenant, job_id)
    durations: list[float] = []
    errors: Counter[str] = Counter()
    qualities: list[float] = []
    attempts: Counter[int] = Counter()
    for _, rows in stores.jobs.iter_results(job, from_sk=None):
        for row in rows:
            attempts[row.attempts] += 1
            if row.status == "succeeded" and not row.cached:
                durations.append(row.duration_ms)
            if row.error:
                errors[row.error["code"]] += 1
            if row.quality is not None:
                qualities.append(row.quality)
    histogram, _ = np.histogram(np.asarray(qualities), bins=QUALITY_BINS)
    return {
        "job": job_view(job, stores.jobs.counts(job)),
        "prediction_duration_ms": _percentiles(durations),
        "errors": dict(errors.most_common()),
        "quality": {
            "mean": round(float(np.mean(qualities)), 4) if qualities else None,
            "histogram": [
                {"from": lo, "to": hi, "count": int(n)}
                for lo, hi, n in zip(QUALITY_BINS, QUALITY_BINS[1:], histogram, strict=False)
            ],
        },
        "attempts": {str(k): v for k, v in sorted(attempts.items())},
        "timeline": stores.jobs.events(job),
    }


def tenant_stats(stores: Stores, tenant: str, days: int = 7) -> dict[str, Any]:
    """The tenant's jobs of the last `days` days, by status and prediction type."""
    since = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="milliseconds")
    by_status: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    items = 0
    for job in stores.jobs.created_since(tenant_pk(tenant), since.replace("+00:00", "Z")):
        by_status[str(job.status)] += 1
        by_type[job.prediction_type] += 1
        items += job.total_items
    return {
        "window_days": days,
        "jobs": sum(by_status.values()),
        "items": items,
        "jobs_by_status": dict(by_status),
        "jobs_by_prediction_type": dict(by_type),
    }
