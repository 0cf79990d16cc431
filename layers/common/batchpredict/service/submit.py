"""Creating a job: validate, write the job, fan its chunks out to the work queue."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError

from batchpredict.chunking import plan_chunks
from batchpredict.constants import ErrorCode, Metric
from batchpredict.errors import (
    BadRequestError,
    ConflictError,
    FieldError,
    NotFoundError,
    UnprocessableError,
)
from batchpredict.models import SubmitJobRequest
from batchpredict.observability import logger, metrics
from batchpredict.predictors import UnknownPredictionTypeError, get_predictor, prediction_types
from batchpredict.service.dispatch import dispatch_job
from batchpredict.service.inputs import read_input_ids
from batchpredict.store import Stores
from batchpredict.store.jobs import Counts, Job, now_iso
from batchpredict.store.portfolios import Portfolio
from batchpredict.views import job_view

MAX_LISTED_FIELDS = 20


def new_job_id(tenant: str, client_token: str | None) -> str:
    """Time-ordered and random; or, with a client token, derived from it (same token, same job)."""
    if client_token:
        digest = hashlib.sha256(f"{tenant}\n{client_token}".encode()).hexdigest()
        return f"j-{digest[:24]}"
    return f"j-{int(time.time() * 1000):011x}{secrets.token_hex(7)}"


def pydantic_fields(error: ValidationError, prefix: str = "") -> list[FieldError]:
    out = []
    for detail in error.errors():
        path = prefix
        for part in detail["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        out.append(FieldError(path or "body", detail["msg"]))
    return out


def _duplicates(ids: list[str]) -> list[FieldError]:
    counts = Counter(ids)
    seen: set[str] = set()
    fields = []
    for index, entity_id in enumerate(ids):
        if counts[entity_id] > 1 and entity_id in seen:
            fields.append(FieldError(f"entity_ids[{index}]", f"duplicate of {entity_id!r}"))
        seen.add(entity_id)
    return fields


def _request_hash(prediction_type: str, request: SubmitJobRequest, params: dict[str, Any]) -> str:
    body = request.model_dump(mode="json", exclude={"client_token"})
    body.update(prediction_type=prediction_type, parameters=params)
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def submit_job(
    stores: Stores, tenant: str, request: SubmitJobRequest, path_type: str | None = None
) -> dict[str, Any]:
    """Create the job (or return the one its client token already made) and dispatch it."""
    started = time.perf_counter()
    prediction_type = path_type or request.prediction_type
    if not prediction_type:
        raise BadRequestError(
            "prediction_type is required",
            [FieldError("prediction_type", "Field required")],
        )
    try:
        predictor = get_predictor(prediction_type)
    except UnknownPredictionTypeError:
        raise BadRequestError(
            f"unknown prediction type {prediction_type!r}; known: {', '.join(prediction_types())}",
            [FieldError("prediction_type", "unknown prediction type")],
            code=ErrorCode.UNKNOWN_PREDICTION_TYPE,
        ) from None
    portfolio = _portfolio(stores, tenant, request.portfolio_id) if request.portfolio_id else None
    requested = request.parameters
    if portfolio is not None and not requested:
        # A portfolio job without parameters runs with the portfolio's own for this type.
        requested = next(
            (
                p["parameters"]
                for p in portfolio.predictions
                if p["prediction_type"] == prediction_type
            ),
            {},
        )
    try:
        params = predictor.parse_params(requested).model_dump(mode="json")
    except ValidationError as error:
        fields = pydantic_fields(error, prefix="parameters")
        raise BadRequestError(
            f"invalid parameters for {prediction_type}: {fields[0].path}: {fields[0].message}",
            fields,
            code=ErrorCode.INVALID_PARAMETERS,
        ) from None

    entity_ids = portfolio.entity_ids if portfolio else _entity_ids(stores, request)
    request_hash = _request_hash(prediction_type, request, params)
    job_id = new_job_id(tenant, request.client_token)
    if request.client_token:
        existing = stores.jobs.get(tenant, job_id, consistent=True)
        if existing is not None:
            return _replay(stores, existing, request_hash)

    # An input_uri job may hold 1,000,000 ids: checking each here would cost 10,000 reads, so
    # its unknown entities fail one by one (entity_not_found) in the worker instead.
    missing = [] if request.input_uri else stores.entities.missing(tenant, entity_ids)
    if missing:
        index = {entity_id: i for i, entity_id in enumerate(entity_ids)}
        raise UnprocessableError(
            f"{len(missing)} entity id(s) are not stored for this tenant: "
            + ", ".join(missing[:5])
            + (" ..." if len(missing) > 5 else ""),
            [FieldError(f"entity_ids[{index[m]}]", "unknown entity") for m in missing][
                :MAX_LISTED_FIELDS
            ],
            code=ErrorCode.UNKNOWN_ENTITIES,
        )

    settings = stores.settings
    chunk_size = request.chunk_size or settings.chunk_size
    chunks = plan_chunks(entity_ids, chunk_size)
    created = datetime.now(UTC)
    job = Job(
        tenant=tenant,
        job_id=job_id,
        prediction_type=prediction_type,
        predictor_version=predictor.version,
        parameters=params,
        total_items=len(entity_ids),
        chunk_size=chunk_size,
        chunk_count=len(chunks),
        counter_shards=min(settings.counter_shards, len(chunks)),
        created_at=now_iso(),
        expires_at=stores.jobs.expires_at(created),
        priority=request.priority,
        metadata=request.metadata,
        client_token=request.client_token,
        request_hash=request_hash,
        tolerated_failure_percent=request.tolerated_failure_percent,
        use_cache=request.use_cache,
        callback_url=str(request.callback_url) if request.callback_url else None,
        portfolio_id=request.portfolio_id,
        input_uri=request.input_uri,
    )
    if not stores.jobs.create(job, entity_ids):
        # Lost a race with the same client token: the winner's job is the answer.
        winner = stores.jobs.get(tenant, job_id, consistent=True)
        if winner is None:
            raise ConflictError("the job could not be created; retry the request")
        return _replay(stores, winner, request_hash)
    dispatch_job(stores, job, chunks)

    metrics.add_metric(name=Metric.JOBS_CREATED, unit=MetricUnit.Count, value=1)
    metrics.add_metric(
        name=Metric.SUBMIT_LATENCY,
        unit=MetricUnit.Milliseconds,
        value=(time.perf_counter() - started) * 1000,
    )
    logger.info(
        "job created",
        extra={"job_id": job_id, "items": job.total_items, "chunks": job.chunk_count},
    )
    return job_view(job, Counts(total=job.total_items))


def _entity_ids(stores: Stores, request: SubmitJobRequest) -> list[str]:
    if request.entity_ids is not None:
        duplicates = _duplicates(request.entity_ids)
        if duplicates:
            raise BadRequestError(
                f"{len(duplicates)} duplicated entity id(s); each entity may appear once",
                duplicates[:MAX_LISTED_FIELDS],
                code=ErrorCode.DUPLICATE_ENTITY_IDS,
            )
        return request.entity_ids
    assert request.input_uri is not None
    return read_input_ids(request.input_uri, stores.settings.input_bucket)


def _portfolio(stores: Stores, tenant: str, portfolio_id: str) -> Portfolio:
    portfolio = stores.portfolios.get(tenant, portfolio_id)
    if portfolio is None:
        raise NotFoundError(
            f"portfolio {portfolio_id} not found",
            [FieldError("portfolio_id", "unknown portfolio")],
        )
    return portfolio


def _replay(stores: Stores, job: Job, request_hash: str) -> dict[str, Any]:
    if job.request_hash != request_hash:
        raise ConflictError(
            "client_token was already used for a different request",
            [FieldError("client_token", "reused with a different request")],
            code=ErrorCode.IDEMPOTENCY_CONFLICT,
        )
    return job_view(job, stores.jobs.counts(job))
