"""The stuck-job sweep: every job reaches a terminal state with no human action.

A crash between creating a job and sending its chunks, or a lost message, leaves chunks that
nothing will ever process. The sweep finds jobs whose progress has stopped for
`stuck_after_seconds` and re-sends exactly the chunks that have no result. Chunk ids are
deterministic and results are written once, so a re-sent chunk that was only slow is harmless.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aws_lambda_powertools.metrics import MetricUnit

from batchpredict.chunking import Chunk
from batchpredict.constants import Metric
from batchpredict.observability import logger, metrics
from batchpredict.service.completion import check_job
from batchpredict.service.dispatch import send_chunks
from batchpredict.store import Stores
from batchpredict.store.jobs import Job, parse_iso


@dataclass
class SweepReport:
    jobs_checked: int = 0
    jobs_finished: int = 0
    redispatched: dict[str, int] = field(default_factory=dict)


def missing_chunks(stores: Stores, job: Job) -> list[Chunk]:
    """Chunks the job expects (its manifest, plus recorded retry chunks) that have no result."""
    recorded = stores.jobs.result_chunk_ids(job)
    expected = {c.chunk_id: c for c in stores.jobs.manifest_chunks(job)}
    for item in recorded.values():
        if item.get("retry_chunk_id"):
            expected[item["retry_chunk_id"]] = Chunk(
                item["retry_chunk_id"],
                tuple(json.loads(item["retry_ids"])),
                attempt=int(item["retry_attempt"]),
            )
    return [chunk for chunk_id, chunk in sorted(expected.items()) if chunk_id not in recorded]


def sweep_jobs(stores: Stores, now: datetime | None = None) -> SweepReport:
    now = now or datetime.now(UTC)
    stuck_after = stores.settings.stuck_after_seconds
    report = SweepReport()
    for job in stores.jobs.active_jobs():
        report.jobs_checked += 1
        try:
            counts = check_job(stores, job)
        except Exception:  # one job's trouble must not stop the sweep of the others
            logger.exception("sweep: checking a job failed", extra={"job_id": job.job_id})
            continue
        if counts.done >= counts.total:
            report.jobs_finished += 1
            continue
        baseline = parse_iso(job.swept_at) or parse_iso(job.created_at) or now
        if counts.done > job.swept_done:
            stores.jobs.note_sweep(job, counts.done)  # moving: look again later
            continue
        if (now - baseline).total_seconds() < stuck_after:
            continue
        chunks = missing_chunks(stores, job)
        if chunks:
            send_chunks(stores.sqs, stores.settings.work_queue_url, job.tenant, job.job_id, chunks)
            stores.jobs.put_event(job, "ChunksRedispatched", {"chunks": len(chunks)})
            metrics.add_metric(
                name=Metric.STUCK_CHUNKS_REDISPATCHED, unit=MetricUnit.Count, value=len(chunks)
            )
            logger.warning(
                "stuck job: chunks re-sent",
                extra={"job_id": job.job_id, "chunks": len(chunks), "done": counts.done},
            )
            report.redispatched[job.job_id] = len(chunks)
        stores.jobs.note_sweep(job, counts.done)
    return report
