"""Sending chunks to the work queue: SendMessageBatch, ten messages a request."""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from batchpredict.chunking import Chunk
from batchpredict.constants import SQS_BATCH_MAX, SQS_MAX_DELAY_SECONDS
from batchpredict.store.dynamo import chunked

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
    delay = max(0, min(delay_seconds, SQS_MAX_DELAY_SECONDS))

    def send(group: Sequence[Chunk]) -> None:
        entries = {
            str(i): {
                "Id": str(i),
                "MessageBody": chunk_body(tenant, job_id, chunk, redispatched=redispatched),
                "DelaySeconds": delay,
            }
            for i, chunk in enumerate(group)
        }
        for _ in range(_MAX_ROUNDS):
            response = sqs.send_message_batch(QueueUrl=queue_url, Entries=list(entries.values()))
            failed = [f for f in response.get("Failed", []) if not f.get("SenderFault")]
            if any(f.get("SenderFault") for f in response.get("Failed", [])):
                raise RuntimeError(f"SQS rejected chunk messages: {response['Failed']}")
            entries = {f["Id"]: entries[f["Id"]] for f in failed}
            if not entries:
                return
        raise RuntimeError(f"SQS kept failing {len(entries)} chunk messages")

    groups = list(chunked(chunks, SQS_BATCH_MAX))
    if parallel > 1 and len(groups) > 1:
        with ThreadPoolExecutor(max_workers=min(parallel, len(groups))) as pool:
            list(pool.map(send, groups))
    else:
        for group in groups:
            send(group)
