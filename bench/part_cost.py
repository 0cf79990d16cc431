"""Part 2: AWS requests, capacity units and dollars per million predictions, chunked vs per item.

Everything runs in this process under moto's `mock_aws` (tests/support/pipeline.py plays API
Gateway and Lambda's SQS event source mapping), so the counts are exact: every call the
functions make and every call the event source mapping makes, by operation, with the DynamoDB
capacity units they consume (bench/awscount.py) and the SQS 64 KB billing chunks. moto runs with
the local stack's speedups (batchpredict_local/moto_speedups.py), which answer as moto does.
Request counts repeat from run to run; capacity units move by about 1%: which chunks share a
worker batch decides how many neighbours are read once, and result items hold timings.

Runs, in one moto account with the same 10,000 entities:
1. chunked (the template's chunk size), uncached: the first job, which also writes the cache;
2. its identical resubmission: must be 100% cache hits and call no predictor;
3. per item (chunk size 1, the naive design as a setting of the same code), uncached after the
   cache is invalidated: one message, one result write and one counter update per item, on the
   same 10,000 items.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench import data
from bench.awscount import Tally
from bench.common import (
    PartResult,
    fmt_int,
    fmt_usd,
    log,
    quiet_stdout,
    ratio,
    template_settings,
)
from bench.prices import AWS_CALL_SECONDS, usd

PREDICTION_TYPE = "ising"


@dataclass
class Run:
    label: str
    items: int
    functions: Tally
    esm: Tally
    invocations: dict[str, int]
    handler_seconds: float
    predictor_seconds: float
    predictor_calls: int
    counts: dict[str, Any]
    seconds: float
    memory_mb: int
    cache_table: str
    entities_table: str

    # ---------------------------------------------------------------- counts

    @property
    def requests(self) -> int:
        return self.functions.total_calls + self.esm.total_calls

    @property
    def lambda_requests(self) -> int:
        return sum(self.invocations.values())

    def gb_seconds(self) -> float:
        """Orchestration compute: handler time less model compute and less moto's own time,
        plus a real AWS round trip per call (prices.AWS_CALL_SECONDS), at the worker's memory."""
        own = self.handler_seconds - self.predictor_seconds - self.functions.seconds
        waiting = self.functions.total_calls * AWS_CALL_SECONDS
        return (max(0.0, own) + waiting) * self.memory_mb / 1024

    def cache_wru(self) -> float:
        return float(self.functions.wru.get(self.cache_table, 0))

    # ---------------------------------------------------------------- dollars

    def dollars(self, *, cache_writes: bool = True) -> dict[str, float]:
        wru = self.functions.total_wru - (0.0 if cache_writes else self.cache_wru())
        return {
            "lambda requests": usd("lambda_request", self.lambda_requests),
            "lambda GB-s": usd("lambda_gb_second_arm64", self.gb_seconds()),
            "sqs": usd("sqs_request", self.functions.billed_of("sqs") + self.esm.billed_of("sqs")),
            "dynamodb writes": usd("dynamodb_wru", wru),
            "dynamodb reads": usd("dynamodb_rru", self.functions.total_rru),
            "eventbridge": usd("eventbridge_event", self.functions.billed_of("events")),
            "api gateway": usd("apigateway_rest_request", self.invocations.get("submit", 0)),
        }

    def per_million(self, *, cache_writes: bool = True) -> float:
        return sum(self.dollars(cache_writes=cache_writes).values()) / self.items * 1e6

    def input_reads_per_million(self) -> float:
        """The entities table's reads: the model's input (targets and neighbourhoods) and the
        submission's existence check."""
        return (
            usd("dynamodb_rru", self.functions.rru.get(self.entities_table, 0.0)) / self.items * 1e6
        )


def _one_job(env: Any, label: str, ids: list[str], **body: Any) -> Run:
    from bench.moto_env import predictor_seconds

    env.reset_counts()
    started = time.perf_counter()
    with quiet_stdout():
        response = env.pipeline.submit(
            prediction_type=PREDICTION_TYPE,
            entity_ids=ids,
            parameters=data.PARAMETERS[PREDICTION_TYPE],
            **body,
        )
        if response.status != 202:
            raise RuntimeError(f"{label}: POST /v1/jobs answered {response}")
        job_id = response.body["job_id"]
        env.pipeline.drain()
        status = env.pipeline.api("GET", f"/v1/jobs/{job_id}")
    seconds = time.perf_counter() - started
    functions, esm, timings = env.functions.take(), env.esm.take(), env.timings.take()
    invocations: dict[str, int] = {}
    for invocation in timings.invocations:
        invocations[invocation.function] = invocations.get(invocation.function, 0) + 1
    # the status read above is the benchmark's, not the job's
    invocations["status"] = invocations.get("status", 1) - 1
    handler = sum(i.seconds for i in timings.invocations if i.function != "status")
    return Run(
        label=label,
        items=len(ids),
        functions=functions,
        esm=esm,
        invocations={k: v for k, v in invocations.items() if v},
        handler_seconds=handler,
        predictor_seconds=predictor_seconds(timings),
        predictor_calls=timings.predictor_calls,
        counts=status.body["counts"] | {"status": status.body["status"]},
        seconds=seconds,
        memory_mb=template_settings().memory_mb,
        cache_table=env.cache_table,
        entities_table=env.tables["EntitiesTable"],
    )


def measure(n_items: int) -> list[Run]:
    from bench.moto_env import in_process

    settings = template_settings()
    ids = data.entity_ids(n_items)
    with in_process(batch_size=settings.batch_size) as env:
        log(f"cost: {n_items:,} entities into moto (in-process)")
        with quiet_stdout():
            for page in data.pages(n_items):
                env.put_entities(page)
        runs = []
        log(f"cost: chunked job (chunk size {settings.chunk_size}), uncached")
        runs.append(_one_job(env, "chunked, uncached", ids))
        log("cost: its identical resubmission (cached)")
        runs.append(_one_job(env, "chunked, resubmitted", ids))
        with quiet_stdout():
            env.invalidate_cache(PREDICTION_TYPE)
        log(f"cost: per-item job (chunk size 1), uncached, {n_items:,} items")
        runs.append(_one_job(env, "per item, uncached", ids, chunk_size=1))
    return runs


def run(quick: bool) -> PartResult:
    n_items = 1000 if quick else 10_000
    result = PartResult(
        "cost", f"AWS requests and cost per million predictions ({n_items:,} items)"
    )
    runs = measure(n_items)
    chunked, cached, naive = runs

    per_item = chunked.requests / chunked.items
    result.row(
        "AWS requests per item, uncached job",
        f"{per_item:.4f} ({fmt_int(chunked.requests)} for {fmt_int(chunked.items)})",
        "<= 0.1",
        per_item <= 0.1,
    )
    result.row(
        "AWS requests per item, cached resubmission",
        f"{cached.requests / cached.items:.4f}",
        "<= 0.1",
        cached.requests / cached.items <= 0.1,
    )
    without = chunked.per_million(cache_writes=False)
    with_writes = chunked.per_million(cache_writes=True)
    result.row("$ per million, uncached, without cache writes", fmt_usd(without), "<= $0.30",
               without <= 0.30)  # fmt: skip
    result.row("$ per million, uncached, with cache writes", fmt_usd(with_writes), "<= $1.00",
               with_writes <= 1.00)  # fmt: skip
    result.row("$ per million, cached resubmission", fmt_usd(cached.per_million()))
    inputs = chunked.input_reads_per_million()
    result.row(
        "$ per million, uncached, without cache writes and without reading entities",
        f"{fmt_usd(without - inputs)} (entity reads {fmt_usd(inputs)})",
    )
    naive_cost = naive.per_million(cache_writes=False)
    factor = ratio(naive_cost, without)
    result.row(
        "per-item design / chunked, $ per million (no cache writes)",
        f"{factor:.1f}x ({fmt_usd(naive_cost)} vs {fmt_usd(without)})",
        ">= 10x",
        factor >= 10,
    )
    naive_orchestration = naive_cost - naive.input_reads_per_million()
    result.row(
        "per-item design / chunked, $ per million, both without reading entities",
        f"{ratio(naive_orchestration, without - inputs):.1f}x "
        f"({fmt_usd(naive_orchestration)} vs {fmt_usd(without - inputs)})",
    )
    result.row(
        "per-item design / chunked, AWS requests per item",
        f"{ratio(naive.requests / naive.items, chunked.requests / chunked.items):.1f}x "
        f"({naive.requests / naive.items:.3f} vs {chunked.requests / chunked.items:.3f})",
    )
    hits = cached.counts.get("cached", 0) / cached.items
    result.row(
        "resubmission: cache hits, predictor calls",
        f"{hits:.0%}, {cached.predictor_calls}",
        "100%, 0",
        hits == 1.0 and cached.predictor_calls == 0,
    )
    result.details = _details(runs)
    return result


def _details(runs: list[Run]) -> str:
    lines = [
        "| run | items | AWS requests | per item | WRU | RRU | SQS billed | Lambda invocations "
        "| GB-s (orchestration) | $/million | $/million without cache writes | status |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r.label} | {fmt_int(r.items)} | {fmt_int(r.requests)} "
            f"| {r.requests / r.items:.4f} | {fmt_int(r.functions.total_wru)} "
            f"| {r.functions.total_rru:,.1f} "
            f"| {fmt_int(r.functions.billed_of('sqs') + r.esm.billed_of('sqs'))} "
            f"| {r.lambda_requests} | {r.gb_seconds():.2f} | {fmt_usd(r.per_million())} "
            f"| {fmt_usd(r.per_million(cache_writes=False))} | {r.counts.get('status')} "
            f"(cached {r.counts.get('cached')}) |"
        )
    lines += ["", "Requests by operation (functions + event source mapping):", ""]
    header = "| service | operation | " + " | ".join(r.label for r in runs) + " |"
    lines += [header, "|---|---|" + "---:|" * len(runs)]
    keys = sorted({k for r in runs for k in (*r.functions.calls, *r.esm.calls)})
    for service, operation in keys:
        cells = []
        for r in runs:
            f = r.functions.calls.get((service, operation), 0)
            e = r.esm.calls.get((service, operation), 0)
            cells.append(f"{f + e}" + (f" ({e} ESM)" if e else ""))
        lines.append(f"| {service} | {operation} | " + " | ".join(cells) + " |")
    lines += ["", "Dollars per million predictions, by line item:", ""]
    lines += ["| run | " + " | ".join(runs[0].dollars()) + " |", "|---|" + "---:|" * 7]
    for r in runs:
        cells = [fmt_usd(v / r.items * 1e6) for v in r.dollars().values()]
        lines.append(f"| {r.label} | " + " | ".join(cells) + " |")
    lines += ["", "Write units by table:", ""]
    for r in runs:
        by_table = ", ".join(f"{t}: {fmt_int(u)}" for t, u in sorted(r.functions.wru.items()))
        lines.append(f"- {r.label}: {by_table}")
    lines += ["", "Read units by table (and index):", ""]
    for r in runs:
        by_table = ", ".join(f"{t}: {u:,.1f}" for t, u in sorted(r.functions.rru.items()))
        lines.append(f"- {r.label}: {by_table}")
    return "\n".join(lines)
