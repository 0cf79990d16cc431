"""boto3 clients, created once per process with timeouts and retries fit for Lambda."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=3,
    read_timeout=10,
    max_pool_connections=32,
)


@cache
def client(service: str) -> Any:
    """A shared client; AWS_ENDPOINT_URL (the local stack, tests) is honoured by boto3 itself."""
    return boto3.client(service, config=_CONFIG)  # type: ignore[call-overload]


def reset() -> None:
    """Forget cached clients (tests start a fresh moto backend per test)."""
    client.cache_clear()
