"""Sending chunks to the work queue: SendMessageBatch, ten messages a request."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import ValidationError

from batchpredict.chunking import Chunk, chunks_per_manifest_page
from batchpredict.constants import SQS_BATCH_MAX, SQS_MAX_DELAY_SECONDS
from batchpredict.models import FanoutMessage
from batchpredict.observability import logger
from batchpredict.store import Stores
from batchpredict.store.dynamo import chunked
from batchpredict.store.jobs import Job

_MAX_ROUNDS = 5


def chunk_body(tenant: str, job_id: str, chunk: Chunk, *, redispatched: bool = False) -> str:
    body: dict[str, object] = {
        "tenant": tenant,
        "job_id": job_id,
        "chunk_id": chunk.chunk_id,
        "entity_ids": list(chunk.entity_ids),
        "attempt": chunk.attempt,
    }
    if redispatched:
        body["redispatched"] = True
    return json.dumps(body, separators=(",", ":"))


def send_chunks(
    sqs: Any,
    queue_url: str,
    tenant: str,
    job_id: str,
    chunks: Sequence[Chunk],
    *,
    delay_seconds: int = 0,
    parallel: int = 4,
    redispatched: bool = False,
) -> None:
    """Send every chunk; entries SQS reports as failed are retried, then it raises."""
    bodies = [chunk_body(tenant, job_id, c, redispatched=redispatched) for c in chunks]
    send_bodies(sqs, queue_url, bodies, delay_seconds=delay_seconds, parallel=parallel)


def send_bodies(
    sqs: Any,
    queue_url: str,
    bodies: Sequence[str],
    *,
    delay_seconds: int = 0,
    parallel: int = 4,
) -> None:
    """SendMessageBatch, ten at a time, `parallel` requests at once; failed entries retried."""
    delay = max(0, min(delay_seconds, SQS_MAX_DELAY_SECONDS))

    def send(group: Sequence[str]) -> None:
        entries = {
            str(i): {"Id": str(i), "MessageBody": body, "DelaySeconds": delay}
            for i, body in enumerate(group)
        }
        for _ in range(_MAX_ROUNDS):
            response = sqs.send_message_batch(QueueUrl=queue_url, Entries=list(entries.values()))
            failed = [f for f in response.get("Failed", []) if not f.get("SenderFault")]
            if any(f.get("SenderFault") for f in response.get("Failed", [])):
                raise RuntimeError(f"SQS rejected messages: {response['Failed']}")
            entries = {f["Id"]: entries[f["Id"]] for f in failed}
            if not entries:
                return
        raise RuntimeError(f"SQS kept failing {len(entries)} messages")

    groups = list(chunked(bodies, SQS_BATCH_MAX))
    if parallel > 1 and len(groups) > 1:
        with ThreadPoolExecutor(max_workers=min(parallel, len(groups))) as pool:
            list(pool.map(send, groups))
    else:
        for group in groups:
            send(group)


# ---------------------------------------------------------------- a job's first dispatch

# Manifest pages (up to 1,000 items each) whose chunks the submit request sends itself. A job
# with more pages (an input_uri of up to 1,000,000 lines) sends one fan-out message per further
# slice of pages instead: workers send those chunks in parallel, and the request stays short.
FANOUT_PAGES = 10


def fanout_body(tenant: str, job_id: str, first_page: int, pages: int) -> str:
    body = {
        "kind": "fanout",
        "tenant": tenant,
        "job_id": job_id,
        "first_page": first_page,
        "pages": pages,
    }
    return json.dumps(body, separators=(",", ":"))


def parse_fanout(body: str) -> FanoutMessage | None:
    """The fan-out message in `body`, or None if it is something else."""
    try:
        return FanoutMessage.model_validate_json(body)
    except ValidationError:
        return None


def dispatch_job(stores: Stores, job: Job, chunks: Sequence[Chunk]) -> None:
    """Send a new job's chunks: all of them, or the first pages and fan-out messages."""
    settings = stores.settings
    per_page = chunks_per_manifest_page(job.chunk_size)
    pages = math.ceil(len(chunks) / per_page)
    send_chunks(
        stores.sqs,
        settings.work_queue_url,
        job.tenant,
        job.job_id,
        chunks[: FANOUT_PAGES * per_page],
    )
    fanouts = [
        fanout_body(job.tenant, job.job_id, first, min(FANOUT_PAGES, pages - first))
        for first in range(FANOUT_PAGES, pages, FANOUT_PAGES)
    ]
    send_bodies(stores.sqs, settings.work_queue_url, fanouts)


def continue_fanout(
    stores: Stores, message: FanoutMessage, has_time: Callable[[], bool] = lambda: True
) -> None:
    """Send the chunks of the message's manifest pages (again, if it is a replay: harmless).

    Page by page, while `has_time()`: when the invocation's time runs low, the pages not yet
    sent go to one new fan-out message, so a worker batch holding several fan-outs never
    outlives its Lambda timeout (which would hide all of them for the visibility timeout).
    """
    job = stores.jobs.get(message.tenant, message.job_id, consistent=True)
    if job is None or job.status.is_terminal:
        return
    end = message.first_page + message.pages
    by_page = stores.jobs.manifest_pages(job, range(message.first_page, end))
    queue_url = stores.settings.work_queue_url
    for page in range(message.first_page, end):
        if page > message.first_page and not has_time():
            rest = fanout_body(job.tenant, job.job_id, page, end - page)
            send_bodies(stores.sqs, queue_url, [rest])
            logger.info("fan-out handed on", extra={"job_id": job.job_id, "next_page": page})
            return
        send_chunks(stores.sqs, queue_url, job.tenant, job.job_id, by_page.get(page, []))
