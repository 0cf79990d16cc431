"""Pydantic models of the public API's bodies and queries, and of the work message."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    model_validator,
)

from batchpredict import constants as c
from batchpredict.constants import ItemStatus, JobStatus, Priority

ID_PATTERN = r"^[A-Za-z0-9._:\-]+$"
EntityId = Annotated[
    str, StringConstraints(min_length=1, max_length=c.MAX_ID_LENGTH, pattern=ID_PATTERN)
]
ClientToken = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")
]
Scalar = float | int | str | bool


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


FiniteFloat = Annotated[float, AfterValidator(_finite)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- entities


class NeighbourIn(StrictModel):
    entity_id: EntityId
    weight: FiniteFloat = 1.0


class EntityIn(StrictModel):
    entity_id: EntityId
    attributes: dict[Annotated[str, StringConstraints(min_length=1, max_length=64)], Scalar] = (
        Field(default_factory=dict, max_length=64)
    )
    neighbours: list[NeighbourIn] = Field(default_factory=list, max_length=1000)
    time_series: list[FiniteFloat] = Field(default_factory=list, max_length=10_000)


class PutEntitiesRequest(StrictModel):
    entities: list[EntityIn] = Field(min_length=1, max_length=c.MAX_ENTITIES_PER_PUT)


# ---------------------------------------------------------------- jobs


SOURCES = ("entity_ids", "portfolio_id", "input_uri")


class SubmitJobRequest(StrictModel):
    prediction_type: str | None = Field(default=None, min_length=1, max_length=64)
    entity_ids: list[EntityId] | None = Field(
        default=None, min_length=1, max_length=c.MAX_ENTITY_IDS_PER_JOB
    )
    portfolio_id: EntityId | None = None
    input_uri: str | None = Field(
        default=None, max_length=1100, pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+$"
    )
    parameters: dict[str, Any] = Field(default_factory=dict)
    priority: Priority = Priority.NORMAL
    client_token: ClientToken | None = None
    metadata: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=64)],
        Annotated[str, StringConstraints(max_length=256)],
    ] = Field(default_factory=dict, max_length=c.MAX_METADATA_PAIRS)
    tolerated_failure_percent: float = Field(default=100.0, ge=0, le=100)
    use_cache: bool = True
    callback_url: HttpUrl | None = None
    chunk_size: int | None = Field(default=None, ge=c.MIN_CHUNK_SIZE, le=c.MAX_CHUNK_SIZE)

    @model_validator(mode="after")
    def _one_source(self) -> SubmitJobRequest:
        given = [name for name in SOURCES if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("give exactly one of entity_ids, portfolio_id or input_uri")
        return self


class ResultsQuery(StrictModel):
    limit: int = Field(default=c.DEFAULT_RESULTS_PAGE, ge=1, le=c.MAX_RESULTS_PAGE)
    next_token: str | None = Field(default=None, max_length=2048)
    status: ItemStatus | None = None


class ListJobsQuery(StrictModel):
    limit: int = Field(default=50, ge=1, le=200)
    next_token: str | None = Field(default=None, max_length=2048)
    status: JobStatus | None = None
    prediction_type: str | None = Field(default=None, max_length=64)


# ---------------------------------------------------------------- work


class ChunkMessage(BaseModel):
    """The body of one SQS work message: one chunk of one job."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    tenant: str = Field(min_length=1)
    job_id: str = Field(min_length=1)
    chunk_id: str = Field(min_length=1)
    entity_ids: list[str] = Field(min_length=1, max_length=c.MAX_CHUNK_SIZE)
    attempt: int = Field(default=1, ge=1)
    # Sent again by the sweep: the worker checks for a result before predicting it again.
    redispatched: bool = False


class FanoutMessage(BaseModel):
    """A work message that sends a range of a big job's chunks, from its manifest pages."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["fanout"]
    tenant: str = Field(min_length=1)
    job_id: str = Field(min_length=1)
    first_page: int = Field(ge=0)
    pages: int = Field(ge=1)


# ---------------------------------------------------------------- portfolios


class PortfolioPrediction(StrictModel):
    prediction_type: str = Field(min_length=1, max_length=64)
    parameters: dict[str, Any] = Field(default_factory=dict)


class PutPortfolioRequest(StrictModel):
    name: str = Field(default="", max_length=256)
    entity_ids: list[EntityId] = Field(min_length=1, max_length=c.MAX_ENTITY_IDS_PER_JOB)
    predictions: list[PortfolioPrediction] = Field(min_length=1, max_length=8)
    # None: refreshed only on demand (POST /v1/jobs with portfolio_id).
    refresh_interval_minutes: int | None = Field(default=None, ge=1, le=7 * 24 * 60)
