"""Part 1: `POST /v1/jobs` with 1,000 entity ids: latency over HTTP, and the AWS requests it makes.

Two shapes of job, alternating, on one tenant holding 10,000 entities: "dense" asks for 1,000
neighbouring ids (e-000000..e-000999: what the submission's existence check reads as one key
range), "sparse" for every tenth id of the 10,000 (the check falls back to BatchGetItem). The
targets are judged on the dense job; the sparse one shows what the fallback costs.

Latency: the local stack (HTTP front, submit function, moto in its child process), a keep-alive
client on 127.0.0.1, warm environments; each submission waits for the previous job to finish and
the stack to be idle, so it is the submission alone that is timed. p50/p99 are nearest-rank.

Requests: one submission counted exactly under moto in this process (bench/moto_env.py), by
operation, against the O(chunks / 10) target. Its calls are recorded and then replayed one by
one against the local stack's moto, with the same tenant, tables and keys (writes to a scratch
queue; a replayed conditional write fails as it would): that sum is moto's own share of a
submission, which no change to the product can remove.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import uuid
from typing import Any

from botocore import xform_name
from botocore.exceptions import ClientError

from bench import data
from bench.common import PartResult, fmt_ms, log, median, percentile, quiet_stdout
from bench.common import template_settings as settings_of
from bench.localstack import Api, local_stack

N_ENTITIES = 1000
N_STORED = 10_000
PREDICTION_TYPE = "ising"
SHAPES = {
    "dense": data.entity_ids(N_ENTITIES),
    "sparse": data.entity_ids(N_STORED)[:: N_STORED // N_ENTITIES],
}
LOCAL_TENANT = "arn:aws:iam::000000000000:user/demo"  # the local stack's "demo" key


Captured = tuple[Any, list[tuple[str, str, dict[str, Any]]], dict[str, str]]


def capture_submissions() -> dict[str, Captured]:
    """One warm submission of each shape under in-process moto: its tally, its recorded calls,
    and the tables they name."""
    from batchpredict import aws
    from bench.awscount import AwsCounter
    from bench.moto_env import in_process

    captured: dict[str, Captured] = {}
    with in_process() as env, quiet_stdout():
        for page in data.pages(N_STORED):
            env.pipeline.api("PUT", "/v1/entities", body={"entities": page}, tenant=LOCAL_TENANT)
        for shape, ids in SHAPES.items():
            body = {
                "prediction_type": PREDICTION_TYPE,
                "entity_ids": ids,
                "parameters": data.PARAMETERS[PREDICTION_TYPE],
            }
            env.pipeline.api("POST", "/v1/jobs", body=body, tenant=LOCAL_TENANT)  # warm
            recorder = AwsCounter(capacity=False, record=True)
            for service in ("dynamodb", "sqs", "events"):
                recorder.watch(aws.client(service))
            env.reset_counts()
            response = env.pipeline.api("POST", "/v1/jobs", body=body, tenant=LOCAL_TENANT)
            if response.status != 202:
                raise RuntimeError(f"POST /v1/jobs: {response}")
            tally = env.functions.take()
            recorder.unwatch_all()
            assert recorder.recorded is not None
            captured[shape] = (tally, list(recorder.recorded), dict(env.tables))
    return captured


def replay_seconds(
    stack: Any, calls: list[tuple[str, str, dict[str, Any]]], tables: dict[str, str]
) -> dict[str, float]:
    """The recorded calls, one after the other, against the stack's moto: seconds by operation."""
    rename = {name: stack.tables[lid] for lid, name in tables.items() if lid in stack.tables}
    clients = {s: stack.client(s) for s in {c[0] for c in calls}}
    scratch = clients["sqs"].create_queue(QueueName=f"bench-scratch-{uuid.uuid4().hex[:8]}")[
        "QueueUrl"
    ]
    spent: dict[str, float] = {}
    for service, operation, params in calls:
        params = copy.deepcopy(params)
        for key in ("TableName",):
            if key in params:
                params[key] = rename.get(params[key], params[key])
        for key in ("RequestItems",):
            if key in params:
                params[key] = {rename.get(t, t): v for t, v in params[key].items()}
        if "QueueUrl" in params:
            params["QueueUrl"] = scratch
        if "EventBusName" in str(params):
            continue  # EventBridge is not on a submission's path
        method = getattr(clients[service], xform_name(operation))
        started = time.perf_counter()
        # the job already exists: a conditional write that fails costs moto the same
        with contextlib.suppress(ClientError):
            method(**params)
        spent[operation] = spent.get(operation, 0.0) + time.perf_counter() - started
    clients["sqs"].delete_queue(QueueUrl=scratch)
    return spent


def run(quick: bool) -> PartResult:
    samples_wanted = 8 if quick else 20
    result = PartResult("submission", f"Submission: POST /v1/jobs with {N_ENTITIES:,} entities")
    chunk_size = settings_of().chunk_size
    chunks = math.ceil(N_ENTITIES / chunk_size)

    log("submission: one submission of each shape counted under in-process moto")
    captured = capture_submissions()

    latencies: dict[str, list[float]] = {shape: [] for shape in SHAPES}
    replays: list[dict[str, float]] = []
    with local_stack() as stack:
        api = Api(stack)
        log(f"submission: {N_STORED:,} entities into the local stack")
        api.put_entities(N_STORED)
        for i in range(3 + samples_wanted):
            for shape, ids in SHAPES.items():  # alternating
                submitted = api.submit(ids, PREDICTION_TYPE)
                if i >= 3:  # the first three of each warm the environments up
                    latencies[shape].append(submitted.seconds)
                api.wait([submitted.job_id], timeout=300, poll=0.1)
                stack.wait_idle(60)
        log("submission: replaying one dense submission's AWS calls against moto alone")
        _, calls, tables = captured["dense"]
        for _ in range(5 if quick else 15):
            replays.append(replay_seconds(stack, calls, tables))
            stack.wait_idle(60)
        api.close()

    dense = latencies["dense"]
    p50, p99 = percentile(dense, 50), percentile(dense, 99)
    moto = median([sum(r.values()) for r in replays])
    moto_ops = {op: median([r.get(op, 0.0) for r in replays]) for op in replays[0]}
    result.row("p50 latency", fmt_ms(p50))
    result.row("p99 latency", fmt_ms(p99), "< 100 ms (seed: < 200 ms)", p99 < 0.100)
    bound = 2 * math.ceil(chunks / 10) + 4
    requests = {shape: tally.total_calls for shape, (tally, _, _) in captured.items()}
    result.row(
        "AWS requests per submission",
        f"{requests['dense']} for {chunks} chunks ({requests['dense'] / (chunks / 10):.1f} x "
        "chunks/10)",
        "O(chunks / 10)",
        requests["dense"] <= bound,
    )
    result.row("moto's own time for those requests (sequential, median)", fmt_ms(moto))
    sparse = latencies["sparse"]
    result.row(
        "sparse ids (1 in 10 of the tenant's): p50 / p99, AWS requests",
        f"{fmt_ms(percentile(sparse, 50))} / {fmt_ms(percentile(sparse, 99))}, "
        f"{requests['sparse']}",
    )

    def spread(values: list[float]) -> str:
        return (
            f"min {fmt_ms(min(values))}, p50 {fmt_ms(percentile(values, 50))}, p90 "
            f"{fmt_ms(percentile(values, 90))}, p99 {fmt_ms(percentile(values, 99))}, max "
            f"{fmt_ms(max(values))}"
        )

    def by_operation(shape: str) -> str:
        tally = captured[shape][0]
        return ", ".join(f"{o} {n}" for s, o, n in tally.by_operation())

    result.details = (
        f"{len(dense)} submissions of each shape, alternating, after 3 warm-up ones; "
        f"{N_ENTITIES:,} ids ({chunks} chunks of {chunk_size}) each, from a tenant holding "
        f"{N_STORED:,} entities.\n\n"
        f"- dense (e-000000..e-000999): {spread(dense)}; AWS requests: {by_operation('dense')} "
        f"(total {requests['dense']}).\n"
        f"- sparse (every tenth id): {spread(sparse)}; AWS requests: {by_operation('sparse')} "
        f"(total {requests['sparse']}).\n\n"
        f"chunks/10 = {chunks / 10:g}; the target's bound taken here: at most 2 x ceil(chunks/10) "
        f"+ 4 = {bound}. The existence check reads the dense ids as one key range (Query pages "
        "of 100, 400, then the rest); for the sparse ids its first 100-item page finds too few "
        "of them, and it asks for the rest 100 keys at a time (BatchGetItem, 8 at once).\n\n"
        f"The dense submission's {len(calls)} calls replayed one at a time against the local "
        f"stack's moto: median {fmt_ms(moto)} (by operation: "
        f"{', '.join(f'{op} {fmt_ms(t)}' for op, t in moto_ops.items())}), i.e. "
        f"{moto / p50:.0%} of the p50 is moto serving requests that the submit function makes "
        "(the Query pages follow one another; the local moto serves DynamoDB one request at a "
        "time)."
    )
    return result
