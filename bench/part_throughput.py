"""Part 3: items per second, the local stack against Celery + Redis, side by side, alternating.

Local stack: template.yaml's wiring (batch size, batching window, MaximumConcurrency pollers,
reserved concurrency), one `POST /v1/jobs` of N entity ids with `use_cache: false` (so every
repeat computes), timed from the request until `GET /v1/jobs/{id}` says it is terminal.

Celery: Debian's redis-server (started here, stopped after) as broker and entity store, a worker
with the prefork pool at Celery's default concurrency (the number of cores), one task per item
running the same registry predictor on the same entities; timed from the first task sent until
the job's counter reaches N.

They take turns (stack, Celery, stack, Celery, ...), so slow drifts of the machine hit both;
the local stack is started anew for each turn and stopped before Celery's (its idle pollers
would otherwise take CPU from Celery); Celery's idle workers block on Redis and take none. The
figure is the median of the repeats and the ratio of the medians.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench import data
from bench.common import REPO, PartResult, log, median, ratio, stop_process_group, template_settings
from bench.localstack import Api, local_stack
from bench.redis_server import RedisServer

PREDICTION_TYPE = "ising"
TENANT = "bench"


@contextmanager
def celery_workers(redis_url: str, concurrency: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "BENCH_REDIS_URL": redis_url,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.celery_app",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own group: stopped as a whole, never by the terminal
    )
    try:
        yield process
    finally:
        stop_process_group(process)


class CeleryRunner:
    def __init__(self, redis_url: str, n_items: int) -> None:
        os.environ["BENCH_REDIS_URL"] = redis_url
        import redis

        from bench import celery_app

        celery_app.app.conf.broker_url = redis_url
        celery_app._client = None
        self.app = celery_app
        self.redis = redis.Redis.from_url(redis_url)
        self.ids = data.entity_ids(n_items)

    def load_entities(self, n: int) -> None:
        with self.redis.pipeline(transaction=False) as pipe:
            for page in data.pages(n):
                for entity in page:
                    import json

                    pipe.set(self.app.entity_key(TENANT, entity["entity_id"]), json.dumps(entity))
                pipe.execute()

    def job(self, ids: list[str], timeout: float) -> float:
        """Seconds from the first task sent to the last one counted."""
        job_id = uuid.uuid4().hex
        task = self.app.predict_item
        params = data.PARAMETERS[PREDICTION_TYPE]
        started = time.perf_counter()
        with self.app.app.producer_or_acquire() as producer:
            for entity_id in ids:
                task.apply_async(
                    (job_id, TENANT, entity_id, PREDICTION_TYPE, params), producer=producer
                )
        key = self.app.done_key(job_id)
        deadline = time.monotonic() + timeout
        while int(self.redis.get(key) or 0) < len(ids):
            if time.monotonic() > deadline:
                raise TimeoutError(f"celery: {self.redis.get(key)!r} of {len(ids)} in {timeout}s")
            time.sleep(0.02)
        return time.perf_counter() - started


def stack_job(api: Api, ids: list[str], timeout: float) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    submitted = api.submit(ids, PREDICTION_TYPE, use_cache=False)
    (body,) = api.wait([submitted.job_id], timeout, poll=0.1)
    return time.perf_counter() - started, body


def run(quick: bool) -> PartResult:
    n_items = 2000 if quick else 10_000
    repeats = 1 if quick else 3
    settings = template_settings()
    concurrency = os.cpu_count() or 1
    result = PartResult(
        "throughput", f"Throughput, {n_items:,} items: local stack vs Celery + Redis"
    )
    ids = data.entity_ids(n_items)
    stack_times: list[float] = []
    celery_times: list[float] = []
    with RedisServer() as redis_server, celery_workers(redis_server.url, concurrency):
        celery = CeleryRunner(redis_server.url, n_items)
        log(f"throughput: {n_items:,} entities into Redis")
        celery.load_entities(n_items)
        log("throughput: Celery warm-up")
        celery.job(ids[: 20 * concurrency], timeout=120)
        for repeat in range(repeats):
            # The idle local stack polls moto several times a second: it runs alone, on a fresh
            # stack each turn (entities loaded before the clock starts), and Celery runs alone.
            with local_stack() as stack:
                api = Api(stack)
                log(f"throughput: {n_items:,} entities into the local stack")
                api.put_entities(n_items)
                stack_job(api, ids[:500], timeout=300)  # warm-up: imports, environments
                seconds, body = stack_job(api, ids, timeout=1800)
                api.close()
            if body["counts"]["succeeded"] != n_items:
                raise RuntimeError(f"local stack job ended {body['status']}: {body['counts']}")
            stack_times.append(seconds)
            log(f"throughput: local stack #{repeat + 1}: {n_items / seconds:,.0f} items/s")
            seconds = celery.job(ids, timeout=1800)
            celery_times.append(seconds)
            log(f"throughput: celery #{repeat + 1}: {n_items / seconds:,.0f} items/s")
    stack_rate = n_items / median(stack_times)
    celery_rate = n_items / median(celery_times)
    factor = ratio(stack_rate, celery_rate)
    result.row("local stack, items/s (median)", f"{stack_rate:,.0f}")
    result.row("Celery + Redis, items/s (median)", f"{celery_rate:,.0f}")
    result.row("local stack / Celery", f"{factor:.2f}x", ">= 2x (seed: >= 1x)", factor >= 2)
    result.details = (
        f"{PREDICTION_TYPE}, {n_items:,} items, {repeats} alternating repeat(s). Local stack: "
        f"chunk size {settings.chunk_size}, batch size {settings.batch_size}, "
        f"{settings.concurrency} concurrent worker invocations (template.yaml). Celery: prefork "
        f"pool, concurrency {concurrency}, one task per item.\n\n"
        "| run | local stack s | items/s | Celery s | items/s |\n|---|---:|---:|---:|---:|\n"
        + "\n".join(
            f"| {i + 1} | {s:.2f} | {n_items / s:,.0f} | {c:.2f} | {n_items / c:,.0f} |"
            for i, (s, c) in enumerate(zip(stack_times, celery_times, strict=True))
        )
    )
    return result
