"""Portfolios: named entity sets with prediction types, refreshed on a schedule."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from batchpredict.constants import ErrorCode
from batchpredict.errors import BadRequestError, DomainError, FieldError, NotFoundError
from batchpredict.models import PutPortfolioRequest, SubmitJobRequest
from batchpredict.observability import logger
from batchpredict.predictors import UnknownPredictionTypeError, get_predictor
from batchpredict.service.submit import pydantic_fields, submit_job
from batchpredict.store import Stores
from batchpredict.store.jobs import now_iso
from batchpredict.store.portfolios import Portfolio

MAX_PORTFOLIO_ID_BYTES = 300_000  # the id list must fit one item with room to spare


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _validate_predictions(request: PutPortfolioRequest) -> list[dict[str, Any]]:
    out = []
    for index, spec in enumerate(request.predictions):
        where = f"predictions[{index}]"
        try:
            predictor = get_predictor(spec.prediction_type)
        except UnknownPredictionTypeError:
            raise BadRequestError(
                f"unknown prediction type {spec.prediction_type!r}",
                [FieldError(f"{where}.prediction_type", "unknown prediction type")],
                code=ErrorCode.UNKNOWN_PREDICTION_TYPE,
            ) from None
        try:
            params = predictor.parse_params(spec.parameters).model_dump(mode="json")
        except ValidationError as error:
            raise BadRequestError(
                f"invalid parameters in {where}",
                pydantic_fields(error, prefix=f"{where}.parameters"),
                code=ErrorCode.INVALID_PARAMETERS,
            ) from None
        out.append({"prediction_type": spec.prediction_type, "parameters": params})
    return out


def put_portfolio(
    stores: Stores, tenant: str, portfolio_id: str, request: PutPortfolioRequest
) -> dict[str, Any]:
    if len(set(request.entity_ids)) != len(request.entity_ids):
        raise BadRequestError(
            "each entity may appear once in a portfolio",
            [FieldError("entity_ids", "duplicate ids")],
            code=ErrorCode.DUPLICATE_ENTITY_IDS,
        )
    if sum(len(i) + 3 for i in request.entity_ids) > MAX_PORTFOLIO_ID_BYTES:
        raise BadRequestError(
            "the portfolio's entity ids are too long in total",
            [FieldError("entity_ids", f"over {MAX_PORTFOLIO_ID_BYTES} bytes")],
        )
    predictions = _validate_predictions(request)
    missing = stores.entities.missing(tenant, request.entity_ids)
    if missing:
        raise DomainError(
            f"{len(missing)} entity id(s) are not stored for this tenant",
            [
                FieldError(f"entity_ids[{request.entity_ids.index(m)}]", "unknown entity")
                for m in missing[:20]
            ],
            code=ErrorCode.UNKNOWN_ENTITIES,
        ).with_status(422)
    existing = stores.portfolios.get(tenant, portfolio_id)
    now = datetime.now(UTC)
    interval = request.refresh_interval_minutes
    portfolio = Portfolio(
        tenant=tenant,
        portfolio_id=portfolio_id,
        entity_ids=request.entity_ids,
        predictions=predictions,
        name=request.name,
        refresh_interval_minutes=interval,
        # A new or re-scheduled portfolio is due at once; an unchanged schedule keeps its slot.
        next_refresh_at=(
            existing.next_refresh_at
            if existing
            and existing.refresh_interval_minutes == interval
            and existing.next_refresh_at
            else (_iso(now) if interval else None)
        ),
        last_refresh_at=existing.last_refresh_at if existing else None,
        last_job_ids=existing.last_job_ids if existing else [],
        created_at=existing.created_at if existing else now_iso(),
        updated_at=now_iso(),
    )
    stores.portfolios.put(portfolio)
    return portfolio.summary() | {"entity_ids": portfolio.entity_ids}


def get_portfolio(stores: Stores, tenant: str, portfolio_id: str) -> Portfolio:
    portfolio = stores.portfolios.get(tenant, portfolio_id)
    if portfolio is None:
        raise NotFoundError(f"portfolio {portfolio_id} not found")
    return portfolio


def delete_portfolio(stores: Stores, tenant: str, portfolio_id: str) -> None:
    if not stores.portfolios.delete(tenant, portfolio_id):
        raise NotFoundError(f"portfolio {portfolio_id} not found")


def list_portfolios(stores: Stores, tenant: str) -> dict[str, Any]:
    return {"portfolios": [p.summary() for p in stores.portfolios.for_tenant(tenant)]}


def refresh_token(portfolio: Portfolio, slot: str, index: int) -> str:
    """Same portfolio, same due slot, same prediction: same job, however many refreshers run."""
    digest = hashlib.sha256(f"{portfolio.portfolio_id}\n{slot}".encode()).hexdigest()[:24]
    return f"refresh.{digest}.{index}"


def refresh_due(stores: Stores, now: datetime | None = None) -> list[str]:
    """Submit a job per prediction of every due portfolio; returns the job ids submitted."""
    now = now or datetime.now(UTC)
    submitted: list[str] = []
    for portfolio in stores.portfolios.due(now):
        slot = portfolio.next_refresh_at
        if not slot or not portfolio.refresh_interval_minutes:
            continue
        if _previous_refresh_running(stores, portfolio):
            logger.info(
                "portfolio refresh still running", extra={"portfolio_id": portfolio.portfolio_id}
            )
            continue
        job_ids = []
        try:
            for index, spec in enumerate(portfolio.predictions):
                request = SubmitJobRequest(
                    prediction_type=spec["prediction_type"],
                    portfolio_id=portfolio.portfolio_id,
                    parameters=spec["parameters"],
                    client_token=refresh_token(portfolio, slot, index),
                    metadata={"trigger": "schedule", "portfolio_id": portfolio.portfolio_id},
                )
                job_ids.append(submit_job(stores, portfolio.tenant, request)["job_id"])
        except DomainError as error:
            logger.warning(
                "portfolio refresh rejected",
                extra={"portfolio_id": portfolio.portfolio_id, "error": error.message},
            )
        next_at = _iso(now + timedelta(minutes=portfolio.refresh_interval_minutes))
        if stores.portfolios.advance(portfolio, slot, next_at, job_ids):
            submitted.extend(job_ids)
    return submitted


def _previous_refresh_running(stores: Stores, portfolio: Portfolio) -> bool:
    keys = [(portfolio.tenant, job_id) for job_id in portfolio.last_job_ids]
    jobs = stores.jobs.get_many(keys) if keys else {}
    return any(not job.status.is_terminal for job in jobs.values())
