"""The seed's design, as the throughput baseline: Celery + Redis, one task per item.

Entities live in Redis (one JSON string per entity, as the seed kept them); a task loads its
target and the neighbourhood the predictor reads (the same hops as the worker, one MGET per hop),
runs the same registry predictor on that one entity, stores the result and counts it. No result
backend: the producer watches the job's counter, as the seed's status endpoint did.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import redis
from celery import Celery

BROKER = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

app = Celery("bench", broker=BROKER)
app.conf.update(
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    worker_send_task_events=False,
)

_client: redis.Redis | None = None


def client() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(BROKER)
    return _client


def entity_key(tenant: str, entity_id: str) -> str:
    return f"entity:{tenant}:{entity_id}"


def done_key(job_id: str) -> str:
    return f"job:{job_id}:done"


def _entity(raw: bytes | str) -> Any:
    from batchpredict.entities import Entity, Neighbour

    body = json.loads(raw)
    return Entity.create(
        body["entity_id"],
        body.get("attributes"),
        [Neighbour(n["entity_id"], n.get("weight", 1.0)) for n in body.get("neighbours", [])],
        body.get("time_series", ()),
    )


@app.task(name="bench.predict_item")
def predict_item(
    job_id: str, tenant: str, entity_id: str, prediction_type: str, parameters: dict[str, Any]
) -> None:
    from batchpredict.predictors import get_predictor
    from batchpredict.predictors.base import EntityGraph

    predictor = get_predictor(prediction_type)
    params = predictor.parse_params(parameters)
    r = client()
    loaded: dict[str, Any] = {}
    frontier = [entity_id]
    for hop in range(predictor.neighbour_hops(params) + 1):
        wanted = [i for i in frontier if i not in loaded]
        if not wanted:
            break
        found = [_entity(raw) for raw in r.mget([entity_key(tenant, i) for i in wanted]) if raw]
        loaded.update((e.entity_id, e) for e in found)
        if hop == 0 and entity_id not in loaded:
            break
        frontier = [n.entity_id for e in found for n in e.neighbours]
    if entity_id in loaded:
        (outcome,) = predictor.predict_batch([loaded[entity_id]], params, EntityGraph(loaded))
        result = {"status": "ok", **dataclasses.asdict(outcome)}
    else:
        result = {"status": "failed", "code": "missing_entity"}
    with r.pipeline(transaction=False) as pipe:
        pipe.set(f"result:{job_id}:{entity_id}", json.dumps(result, default=str), ex=3600)
        pipe.incr(done_key(job_id))
        pipe.execute()
