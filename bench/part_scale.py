"""Part 4: 1k, 10k and 100k items through the local stack: time, requests, peak RSS.

Each size gets a fresh local stack (a fresh moto), its entities, and then one job of all its
items, timed from the request until it is terminal: `entity_ids` up to 10,000 (the API's limit),
beyond that `input_uri` (a JSONL object put in the stack's input bucket before the clock starts). The functions' AWS requests are counted on their clients; the
pollers' (the event source mapping's) apart. Peak RSS is the summed resident memory of this
process (the HTTP front, the functions, the pollers) and moto's child process, sampled every
0.2 s, over the whole part.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from typing import Any

from bench import data
from bench.awscount import AwsCounter
from bench.common import PartResult, TreeRss, fmt_int, log, median, ratio
from bench.localstack import TERMINAL, Api, local_stack

PREDICTION_TYPE = "ising"
MAX_PER_JOB = 10_000
GIB = 1024**3


def transaction_probe(stack: object, repeats: int = 3) -> tuple[float, int]:
    """moto's own cost of one 20-item TransactWriteItems on the jobs table as it now is.

    Unpatched, moto backs up the whole table once per item of a transaction (a deep copy), so
    this grew with the table; the local stack's moto_speedups back up the named items only, and
    this shows it stays flat. Returns (median seconds, table items).
    """
    client = stack.client("dynamodb")  # type: ignore[attr-defined]
    table = stack.tables["JobsTable"]  # type: ignore[attr-defined]
    samples = []
    for _ in range(repeats):
        probe = uuid.uuid4().hex
        items = [
            {
                "Put": {
                    "TableName": table,
                    "Item": {"pk": {"S": f"BENCH#{probe}"}, "sk": {"S": str(i)}},
                }
            }
            for i in range(20)
        ]
        started = time.perf_counter()
        client.transact_write_items(TransactItems=items)
        samples.append(time.perf_counter() - started)
    count = client.scan(TableName=table, Select="COUNT")["Count"]
    return median(samples), int(count)


# The 100,000-item run is stopped, and reported as not completed, past either bound.
MAX_WAIT_SECONDS = 900
MAX_TREE_BYTES = 4 * GIB


def one_size(n: int, rss: TreeRss) -> dict[str, float]:
    from batchpredict import aws

    with local_stack() as stack:
        api = Api(stack)
        started = time.perf_counter()
        api.put_entities(n)
        loaded = time.perf_counter() - started
        functions = AwsCounter(capacity=False)
        for service in ("dynamodb", "sqs", "events"):
            functions.watch(aws.client(service))
        esm = AwsCounter(capacity=False)
        esm.watch(stack._sqs)  # the pollers' client: the event source mapping's requests
        ids = data.entity_ids(n)
        started = time.perf_counter()
        if n > MAX_PER_JOB:  # one job all the same: the ids from a JSONL object in S3
            bucket = stack.environment["INPUT_BUCKET"]
            body = "\n".join(json.dumps(i) for i in ids).encode()
            stack.client("s3").put_object(Bucket=bucket, Key=f"bench/{n}.jsonl", Body=body)
            uri = f"s3://{bucket}/bench/{n}.jsonl"
            jobs = [api.submit([], PREDICTION_TYPE, use_cache=False, input_uri=uri).job_id]
        else:
            jobs = [api.submit(ids, PREDICTION_TYPE, use_cache=False).job_id]
        bodies, complete = _wait_bounded(api, jobs, rss)
        seconds = time.perf_counter() - started
        succeeded = sum(b["counts"]["succeeded"] for b in bodies)
        f, e = functions.take(), esm.take()
        functions.unwatch_all()
        esm.unwatch_all()
        probe_seconds, table_items = transaction_probe(stack) if complete else (0.0, 0)
        api.close()
        rss.sample()
    if complete and succeeded != n:
        raise RuntimeError(f"{n:,} items: only {succeeded:,} succeeded")
    return {
        "complete": float(complete),
        "done": float(sum(b["counts"]["total"] - b["counts"]["pending"] for b in bodies)),
        "items": n,
        "jobs": len(jobs),
        "load_seconds": loaded,
        "seconds": seconds,
        "function_requests": f.total_calls,
        "esm_requests": e.total_calls,
        "peak_rss_mib": rss.peak_mib,
        "probe_seconds": probe_seconds,
        "table_items": table_items,
    }


def _wait_bounded(api: Api, jobs: list[str], rss: TreeRss) -> tuple[list[dict[str, Any]], bool]:
    """The jobs' bodies once terminal, or where they stand when time or memory runs out."""
    deadline = time.monotonic() + MAX_WAIT_SECONDS
    while True:
        bodies = [api.job(j) for j in jobs]
        if all(b["status"] in TERMINAL for b in bodies):
            return bodies, True
        rss.sample()
        if time.monotonic() > deadline or rss.peak_kb * 1024 > MAX_TREE_BYTES:
            log(f"scale: giving up at {rss.peak_mib:,.0f} MiB after {MAX_WAIT_SECONDS} s at most")
            return bodies, False
        time.sleep(0.5)


def run(quick: bool) -> PartResult:
    sizes = [500, 2000] if quick else [1000, 10_000, 100_000]
    result = PartResult("scale", "Scale on the local stack: " + " / ".join(f"{n:,}" for n in sizes))
    rows = []
    with TreeRss() as rss:
        for n in sizes:
            log(f"scale: {n:,} items")
            rows.append(one_size(n, rss))
            r = rows[-1]
            log(f"scale: {n:,} items in {r['seconds']:.1f}s, peak RSS {r['peak_rss_mib']:,.0f} MiB")
            if not r["complete"]:
                break
    for r in rows:
        result.row(
            f"{fmt_int(r['items'])} items complete",
            f"yes, in {r['seconds']:.1f} s ({r['items'] / r['seconds']:,.0f} items/s, "
            f"{int(r['jobs'])} job(s))"
            if r["complete"]
            else f"no: {fmt_int(r['done'])} items done when stopped after {r['seconds']:.0f} s, "
            f"process tree at {r['peak_rss_mib']:,.0f} MiB",
            "completes",
            bool(r["complete"]),
        )
    rows = [r for r in rows if r["complete"]]
    result.row(
        "peak RSS, process tree",
        f"{rss.peak_mib:,.0f} MiB (sum of per-process peaks {rss.peak_hwm_kb / 1024:,.0f} MiB)",
        "< 1 GiB",
        rss.peak_kb * 1024 < GIB,
    )
    for small, large in itertools.pairwise(rows):
        scale = large["items"] / small["items"]
        t = ratio(large["seconds"], small["seconds"])
        q = ratio(large["function_requests"], small["function_requests"])
        result.row(
            f"growth {fmt_int(small['items'])} -> {fmt_int(large['items'])} (x{scale:g})",
            f"time x{t:.1f}, requests x{q:.1f}",
            f"~x{scale:g} (linear)",
            q <= scale * 1.25 and t <= scale * 1.5,
        )
    lines = [
        "| items | jobs | load entities s | run s | items/s | function requests | per item "
        "| poller requests | peak RSS so far MiB | jobs table items | moto: one 20-item "
        "TransactWriteItems |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {fmt_int(r['items'])} | {int(r['jobs'])} | {r['load_seconds']:.1f} "
            f"| {r['seconds']:.1f} | {r['items'] / r['seconds']:,.0f} "
            f"| {fmt_int(r['function_requests'])} | {r['function_requests'] / r['items']:.4f} "
            f"| {fmt_int(r['esm_requests'])} | {r['peak_rss_mib']:,.0f} "
            f"| {fmt_int(r['table_items'])} | {r['probe_seconds'] * 1000:,.1f} ms |"
        )
    result.details = (
        "Linear means time and requests per item stay flat (a ratio near the size ratio); the "
        "pollers' requests include their idle polls, so they grow with time, not items. The last "
        "column is moto's own cost, measured apart: one 20-item TransactWriteItems (the worker's "
        "batch write is of that shape) on the jobs table once the size's jobs are done; "
        "unpatched, moto deep-copies the table per item of a transaction and this grew with the "
        "table (batchpredict_local/moto_speedups.py).\n\n" + "\n".join(lines)
    )
    return result
