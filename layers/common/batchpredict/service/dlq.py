"""Dead-lettered chunks: their items become failed results, so the job still ends."""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from batchpredict.constants import ErrorCode, ItemStatus, Metric
from batchpredict.observability import logger, metrics
from batchpredict.service.completion import check_job_or_leave_it_to_the_sweep
from batchpredict.service.dispatch import parse_fanout
from batchpredict.service.worker import parse_chunk
from batchpredict.store import Stores
from batchpredict.store.jobs import ChunkResult, ResultRow


def record_dead_letter(stores: Stores, body: str, receive_count: int) -> None:
    """Fail the chunk's items with a reason through the exactly-once write.

    An unparseable body raises: the DLQ's own redrive then parks it (never dropped).
    """
    if fanout := parse_fanout(body):
        # Its chunks are in the job's manifest: the sweep sends those that never ran.
        logger.warning(
            "dead-lettered fan-out message; the sweep will send its chunks",
            extra={"job_id": fanout.job_id, "body": body},
        )
        metrics.add_metric(name=Metric.DEAD_LETTERED_CHUNKS, unit=MetricUnit.Count, value=1)
        return
    message = parse_chunk(body)
    job = stores.jobs.get(message.tenant, message.job_id, consistent=True)
    if job is None:
        logger.warning("dead letter for an unknown job", extra={"job_id": message.job_id})
        return
    error = {
        "code": str(ErrorCode.DEAD_LETTERED),
        "message": (
            f"chunk {message.chunk_id} failed on every one of its deliveries and was "
            "dead-lettered (for example a poison input or repeated timeouts)"
        ),
    }
    rows = tuple(
        ResultRow(i, ItemStatus.FAILED, error=error, attempts=message.attempt)
        for i in message.entity_ids
    )
    if stores.accounting.record(job, ChunkResult(message.chunk_id, rows)):
        metrics.add_metric(name=Metric.DEAD_LETTERED_CHUNKS, unit=MetricUnit.Count, value=1)
        metrics.add_metric(name=Metric.ITEMS_FAILED, unit=MetricUnit.Count, value=len(rows))
        logger.warning(
            "dead-lettered chunk recorded as failed",
            extra={"job_id": job.job_id, "chunk_id": message.chunk_id, "items": len(rows)},
        )
    check_job_or_leave_it_to_the_sweep(stores, job)


def park_dead_letter(stores: Stores, body: str, message_id: str, reason: str) -> None:
    """Move a dead letter that is not a chunk to the parking queue, with why and whence."""
    stores.sqs.send_message(
        QueueUrl=stores.settings.parking_queue_url,
        MessageBody=body,
        MessageAttributes={
            "reason": {"DataType": "String", "StringValue": reason[:1024]},
            "dead_letter_message_id": {"DataType": "String", "StringValue": message_id},
        },
    )
