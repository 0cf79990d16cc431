"""The pipeline in this process under moto's `mock_aws`, driven by tests/support/pipeline.py.

`tests/support/pipeline.Pipeline` invokes the API functions with API Gateway proxy events and
plays Lambda's SQS event source mapping for the worker (ReceiveMessage of up to BatchSize
messages, invoke, DeleteMessageBatch of the acknowledged ones). Here it gets its own SQS client,
so the event source mapping's requests are counted apart from the functions' requests, and
every handler invocation is timed, as is every predictor call inside it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3

from bench.awscount import AwsCounter

_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "BatchPredict",
    "POWERTOOLS_SERVICE_NAME": "batchpredict",
    "POWERTOOLS_LOG_LEVEL": "ERROR",
}
_UNSET = ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN")


@dataclass
class Invocation:
    function: str
    seconds: float
    predictor_seconds: float
    records: int


@dataclass
class Timings:
    """Handler invocations and predictor time, as the harness drove them."""

    invocations: list[Invocation] = field(default_factory=list)
    predictor_calls: int = 0
    predictor_items: int = 0
    _predictor_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> Timings:
        with self._lock:
            out = Timings(list(self.invocations), self.predictor_calls, self.predictor_items)
            out._predictor_seconds = self._predictor_seconds
            self.invocations.clear()
            self.predictor_calls = self.predictor_items = 0
            self._predictor_seconds = 0.0
        return out

    def of(self, function: str) -> list[Invocation]:
        return [i for i in self.invocations if i.function == function]


class InProcess:
    """The environment: counters on the functions' clients and on the event source mapping."""

    def __init__(
        self, pipeline: Any, functions: AwsCounter, esm: AwsCounter, tables: dict[str, str]
    ) -> None:
        self.pipeline = pipeline
        self.tables = tables  # logical id -> name
        self.cache_table = tables["CacheTable"]
        self.functions = functions
        self.esm = esm
        self.timings = Timings()

    def put_entities(self, entities: list[dict[str, Any]]) -> None:
        for start in range(0, len(entities), 1000):
            response = self.pipeline.api(
                "PUT", "/v1/entities", body={"entities": entities[start : start + 1000]}
            )
            if response.status != 200:
                raise RuntimeError(f"PUT /v1/entities: {response}")

    def invalidate_cache(self, prediction_type: str) -> None:
        response = self.pipeline.api(
            "DELETE", "/v1/cache", query={"prediction_type": prediction_type}
        )
        if response.status != 200:
            raise RuntimeError(f"DELETE /v1/cache: {response}")

    def reset_counts(self) -> None:
        self.functions.take()
        self.esm.take()
        self.timings.take()


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Sets `values` (and unsets what would send boto3 elsewhere); restores it all after."""
    saved = dict(os.environ)
    try:
        for key in _UNSET:
            os.environ.pop(key, None)
        os.environ.update(values)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def in_process(batch_size: int = 10, settings: dict[str, str] | None = None) -> Iterator[InProcess]:
    """A fresh moto account with the stack's tables and queues, and a counted harness."""
    from moto import mock_aws

    from batchpredict import aws, store
    from batchpredict.predictors import get_predictor, prediction_types
    from batchpredict_local import moto_speedups
    from tests.support import pipeline as harness
    from tests.support.stack import provision

    with _environment({**_ENV, **(settings or {})}), mock_aws(), moto_speedups.installed():
        store.reset()
        ddb = boto3.client("dynamodb")
        sqs = boto3.client("sqs")
        clients = {name: boto3.client(name) for name in ("dynamodb", "sqs", "sns", "s3", "events")}
        stack = provision(clients)  # template.yaml's tables, queues and function settings
        os.environ.update({**stack.environment, **_ENV, **(settings or {})})
        work_url = stack.queues["WorkQueue"]
        dlq_url = stack.queues["DeadLetterQueue"]
        jobs_table = stack.tables["JobsTable"]
        store.reset()

        def sizer(table: str, key: dict[str, Any]) -> dict[str, Any] | None:
            found: dict[str, Any] | None = ddb.get_item(
                TableName=table, Key=key, ConsistentRead=True
            ).get("Item")
            return found

        functions = AwsCounter(sizer=sizer, gsi_tables=[jobs_table])
        for service in ("dynamodb", "sqs", "events"):
            functions.watch(aws.client(service))
        esm_client = boto3.client("sqs")
        esm = AwsCounter(capacity=False)
        esm.watch(esm_client)

        class CountedPipeline(harness.Pipeline):
            def queue_empty(self, url: str) -> bool:
                # the harness's own drain check: not a request the event source mapping makes
                attrs = sqs.get_queue_attributes(
                    QueueUrl=url,
                    AttributeNames=[
                        "ApproximateNumberOfMessages",
                        "ApproximateNumberOfMessagesNotVisible",
                        "ApproximateNumberOfMessagesDelayed",
                    ],
                )["Attributes"]
                return all(int(v) == 0 for v in attrs.values())

        pipeline = CountedPipeline(esm_client, work_url, dlq_url, batch_size=batch_size)
        env = InProcess(pipeline, functions, esm, stack.tables)
        timings = env.timings
        local = threading.local()

        original_invoke = harness.invoke

        def timed_invoke(function: str, event: dict[str, Any], context: Any = None) -> Any:
            local.predict = 0.0
            started = time.perf_counter()
            try:
                return original_invoke(function, event, context)
            finally:
                elapsed = time.perf_counter() - started
                with timings._lock:
                    timings.invocations.append(
                        Invocation(
                            function,
                            elapsed,
                            getattr(local, "predict", 0.0),
                            len(event.get("Records", [])),
                        )
                    )

        patched = []
        for prediction_type in prediction_types():
            predictor = get_predictor(prediction_type)
            original = predictor.predict_batch

            def timed_predict(
                entities: Any, params: Any, graph: Any, _original: Any = original
            ) -> Any:
                started = time.perf_counter()
                try:
                    return _original(entities, params, graph)
                finally:
                    elapsed = time.perf_counter() - started
                    local.predict = getattr(local, "predict", 0.0) + elapsed
                    with timings._lock:
                        timings._predictor_seconds += elapsed
                        timings.predictor_calls += 1
                        timings.predictor_items += len(entities)

            predictor.predict_batch = timed_predict  # type: ignore[method-assign]
            patched.append(predictor)
        harness.invoke = timed_invoke
        try:
            yield env
        finally:
            harness.invoke = original_invoke
            for predictor in patched:
                del predictor.predict_batch  # the class's method again
            functions.unwatch_all()
            esm.unwatch_all()
            store.reset()


def predictor_seconds(timings: Timings) -> float:
    return timings._predictor_seconds
