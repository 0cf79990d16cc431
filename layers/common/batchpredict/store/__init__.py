"""Data access: one small store per table, built once per process from the settings."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from batchpredict import aws
from batchpredict.settings import Settings, get_settings
from batchpredict.store.cache import PredictionCache
from batchpredict.store.entities import EntityStore
from batchpredict.store.jobs import ChunkAccounting, JobStore
from batchpredict.store.portfolios import PortfolioStore


@dataclass(frozen=True)
class Stores:
    jobs: JobStore
    accounting: ChunkAccounting
    entities: EntityStore
    cache: PredictionCache
    portfolios: PortfolioStore
    sqs: Any
    events: Any
    settings: Settings


def build_stores(settings: Settings, dynamodb: Any, sqs: Any, events: Any) -> Stores:
    jobs = JobStore(dynamodb, settings.jobs_table, settings.job_retention_days)
    return Stores(
        jobs=jobs,
        accounting=ChunkAccounting(jobs),
        entities=EntityStore(dynamodb, settings.entities_table),
        cache=PredictionCache(dynamodb, settings.cache_table),
        portfolios=PortfolioStore(dynamodb, settings.jobs_table),
        sqs=sqs,
        events=events,
        settings=settings,
    )


@functools.cache  # not `cache`: that name is the store.cache submodule here
def stores() -> Stores:
    return build_stores(
        get_settings(), aws.client("dynamodb"), aws.client("sqs"), aws.client("events")
    )


def reset() -> None:
    """Forget the cached settings, clients and stores (tests)."""
    stores.cache_clear()
    get_settings.cache_clear()
    aws.reset()
