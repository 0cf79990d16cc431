"""The local stack for the benchmarks, and an HTTP client for it (the public API, over TCP)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests

from bench import data
from bench.common import TEMPLATE, quiet_stdout

TERMINAL = {"COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELLED"}
# Quiet functions: logging every chunk would be a benchmark of the logger.
QUIET = {"POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"}


@contextlib.contextmanager
def local_stack(overrides: dict[str, str] | None = None) -> Iterator[Any]:
    """The stack on template.yaml (schedules off); stopped on any exit, Ctrl-C included."""
    from batchpredict import store
    from batchpredict_local import LocalStack

    logging.getLogger("batchpredict_local").setLevel(logging.WARNING)
    stack = LocalStack(TEMPLATE, schedules=False, overrides={**QUIET, **(overrides or {})})
    with quiet_stdout(), stack:
        store.reset()  # settings and clients cached before the stack set the environment
        try:
            yield stack
        finally:
            store.reset()


@dataclass
class Submitted:
    status: int
    body: Any
    seconds: float

    @property
    def job_id(self) -> str:
        return str(self.body["job_id"])


class Api:
    """`POST /v1/jobs`, `PUT /v1/entities`, `GET /v1/jobs/{id}` over HTTP, keep-alive."""

    def __init__(self, stack: Any, tenant: str = "demo") -> None:
        self.base = stack.url
        self.session = requests.Session()
        self.session.headers["x-api-key"] = stack.api_key(tenant)

    def close(self) -> None:
        self.session.close()

    def put_entities(self, n: int, seed: int = 7) -> None:
        for page in data.pages(n, seed):
            response = self.session.put(
                f"{self.base}/v1/entities", json={"entities": page}, timeout=120
            )
            if response.status_code != 200:
                raise RuntimeError(f"PUT /v1/entities: {response.status_code} {response.text}")

    def submit(
        self,
        ids: list[str],
        prediction_type: str,
        *,
        chunk_size: int | None = None,
        use_cache: bool = True,
        input_uri: str | None = None,
    ) -> Submitted:
        """A job of `ids` (or, with `input_uri`, of the ids in that S3 JSONL object)."""
        body: dict[str, Any] = {
            "prediction_type": prediction_type,
            **({"input_uri": input_uri} if input_uri else {"entity_ids": ids}),
            "parameters": data.PARAMETERS[prediction_type],
            "use_cache": use_cache,
        }
        if chunk_size is not None:
            body["chunk_size"] = chunk_size
        started = time.perf_counter()
        response = self.session.post(f"{self.base}/v1/jobs", json=body, timeout=120)
        seconds = time.perf_counter() - started
        if response.status_code != 202:
            raise RuntimeError(f"POST /v1/jobs: {response.status_code} {response.text[:500]}")
        return Submitted(response.status_code, response.json(), seconds)

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.session.get(f"{self.base}/v1/jobs/{job_id}", timeout=60)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def wait(self, job_ids: list[str], timeout: float, poll: float = 0.25) -> list[dict[str, Any]]:
        """Polls until every job is terminal; their final bodies."""
        deadline = time.monotonic() + timeout
        done: dict[str, dict[str, Any]] = {}
        while len(done) < len(job_ids):
            for job_id in job_ids:
                if job_id not in done:
                    body = self.job(job_id)
                    if body["status"] in TERMINAL:
                        done[job_id] = body
            if len(done) == len(job_ids):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(job_ids) - len(done)} job(s) not done in {timeout:.0f}s")
            time.sleep(poll)
        return [done[j] for j in job_ids]
