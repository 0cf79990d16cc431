"""Part 4: 1k, 10k and 100k items through the local stack: time, requests, peak RSS.

Each size gets a fresh local stack (a fresh moto), its entities, and then its items as jobs of at
most 10,000 entity ids (the API's limit per `entity_ids` job), all submitted at once and timed
until the last is terminal. The functions' AWS requests are counted on their clients; the
pollers' (the event source mapping's) apart. Peak RSS is the summed resident memory of this
process (the HTTP front, the functions, the pollers) and moto's child process, sampled every
0.2 s, over the whole part.
"""

from __future__ import annotations

import time

from bench import data
from bench.awscount import AwsCounter
from bench.common import PartResult, TreeRss, fmt_int, log, ratio
from bench.localstack import Api, local_stack

PREDICTION_TYPE = "ising"
MAX_PER_JOB = 10_000
GIB = 1024**3


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
        jobs = [
            api.submit(ids[i : i + MAX_PER_JOB], PREDICTION_TYPE, use_cache=False).job_id
            for i in range(0, n, MAX_PER_JOB)
        ]
        bodies = api.wait(jobs, timeout=3600, poll=0.5)
        seconds = time.perf_counter() - started
        succeeded = sum(b["counts"]["succeeded"] for b in bodies)
        f, e = functions.take(), esm.take()
        functions.unwatch_all()
        esm.unwatch_all()
        api.close()
        rss.sample()
    if succeeded != n:
        raise RuntimeError(f"{n:,} items: only {succeeded:,} succeeded")
    return {
        "items": n,
        "jobs": len(jobs),
        "load_seconds": loaded,
        "seconds": seconds,
        "function_requests": f.total_calls,
        "esm_requests": e.total_calls,
        "peak_rss_mib": rss.peak_mib,
    }


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
    biggest = rows[-1]
    result.row(
        f"{fmt_int(biggest['items'])} items complete",
        f"yes, in {biggest['seconds']:.1f} s ({biggest['items'] / biggest['seconds']:,.0f} items/s, "
        f"{int(biggest['jobs'])} job(s))",
        "completes",
        True,
    )
    result.row(
        "peak RSS, process tree",
        f"{rss.peak_mib:,.0f} MiB (sum of per-process peaks {rss.peak_hwm_kb / 1024:,.0f} MiB)",
        "< 1 GiB",
        rss.peak_kb * 1024 < GIB,
    )
    for small, large in zip(rows, rows[1:], strict=False):
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
        "| poller requests | peak RSS so far MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {fmt_int(r['items'])} | {int(r['jobs'])} | {r['load_seconds']:.1f} "
            f"| {r['seconds']:.1f} | {r['items'] / r['seconds']:,.0f} "
            f"| {fmt_int(r['function_requests'])} | {r['function_requests'] / r['items']:.4f} "
            f"| {fmt_int(r['esm_requests'])} | {r['peak_rss_mib']:,.0f} |"
        )
    result.details = (
        "Linear means time and requests per item stay flat (a ratio near the size ratio); the "
        "pollers' requests include their idle polls, so they grow with time, not items.\n\n"
        + "\n".join(lines)
    )
    return result
