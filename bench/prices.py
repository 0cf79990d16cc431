"""AWS list prices used by the benchmarks: the one place they live, each with its source.

us-east-1, on-demand, no free tier, no Savings Plans, checked 2026-11 against the pages below.
Only the first (highest-priced) volume tier is used. To re-price, edit the numbers here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    usd: float
    unit: str
    source: str


PRICES: dict[str, Price] = {
    "lambda_request": Price(
        0.20 / 1e6,
        "per invocation (request)",
        "https://aws.amazon.com/lambda/pricing/",
    ),
    "lambda_gb_second_arm64": Price(
        0.0000133334,
        "per GB-second, arm64, first 7.5 billion GB-s a month; duration rounded up to 1 ms",
        "https://aws.amazon.com/lambda/pricing/",
    ),
    "sqs_request": Price(
        0.40 / 1e6,
        "per standard-queue request; each started 64 KB of a request's payload is one request",
        "https://aws.amazon.com/sqs/pricing/",
    ),
    "dynamodb_wru": Price(
        0.625 / 1e6,
        "per on-demand write request unit (1 KB standard write; a transactional write is 2)",
        "https://aws.amazon.com/dynamodb/pricing/on-demand/ (price since the Nov 2024 cut)",
    ),
    "dynamodb_rru": Price(
        0.125 / 1e6,
        "per on-demand read request unit (4 KB strongly consistent read; eventual is 0.5)",
        "https://aws.amazon.com/dynamodb/pricing/on-demand/ (price since the Nov 2024 cut)",
    ),
    "eventbridge_event": Price(
        1.00 / 1e6,
        "per custom event put on a bus (each started 64 KB is one event)",
        "https://aws.amazon.com/eventbridge/pricing/",
    ),
    "apigateway_rest_request": Price(
        3.50 / 1e6,
        "per REST API request, first 333 million a month",
        "https://aws.amazon.com/api-gateway/pricing/",
    ),
}


# Lambda bills the time a function waits on AWS: a DynamoDB or SQS call from a Lambda in the same
# region takes a few milliseconds (DynamoDB's single-digit-millisecond latency; SQS ~10 ms).
# moto's own time is subtracted from the measured handler time and this is added per call.
AWS_CALL_SECONDS = 0.008


def usd(name: str, quantity: float) -> float:
    return PRICES[name].usd * quantity


def price_table_markdown() -> str:
    lines = ["| item | USD per million units | unit | source |", "|---|---:|---|---|"]
    for name, price in PRICES.items():
        lines.append(f"| {name} | {price.usd * 1e6:.4f} | {price.unit} | {price.source} |")
    return "\n".join(lines)
