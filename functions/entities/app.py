"""Entities Lambda: the tenant's entities, portfolios and cached predictions."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from batchpredict.api import make_resolver, tenant
from batchpredict.models import PutEntitiesRequest, PutPortfolioRequest
from batchpredict.observability import logger, metrics, tracer
from batchpredict.service import cache, entities, portfolios
from batchpredict.store import stores

app = make_resolver()
EntityId = Annotated[str, Path(min_length=1, max_length=128)]


@app.put("/v1/entities")
@tracer.capture_method
def put_entities(request: Annotated[PutEntitiesRequest, Body()]) -> dict[str, Any]:
    return entities.put_entities(stores(), tenant(app), request)


@app.get("/v1/entities/<entity_id>")
@tracer.capture_method
def get_entity(entity_id: EntityId) -> dict[str, Any]:
    return entities.get_entity(stores(), tenant(app), entity_id)


@app.delete("/v1/entities/<entity_id>")
@tracer.capture_method
def delete_entity(entity_id: EntityId) -> Response[str]:
    entities.delete_entity(stores(), tenant(app), entity_id)
    return Response(status_code=204, body="")


PortfolioId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")]


@app.get("/v1/portfolios")
@tracer.capture_method
def list_portfolios() -> dict[str, Any]:
    return portfolios.list_portfolios(stores(), tenant(app))


@app.put("/v1/portfolios/<portfolio_id>")
@tracer.capture_method
def put_portfolio(
    portfolio_id: PortfolioId, request: Annotated[PutPortfolioRequest, Body()]
) -> dict[str, Any]:
    return portfolios.put_portfolio(stores(), tenant(app), portfolio_id, request)


@app.get("/v1/portfolios/<portfolio_id>")
@tracer.capture_method
def get_portfolio(portfolio_id: PortfolioId) -> dict[str, Any]:
    found = portfolios.get_portfolio(stores(), tenant(app), portfolio_id)
    return found.summary() | {"entity_ids": found.entity_ids}


@app.delete("/v1/portfolios/<portfolio_id>")
@tracer.capture_method
def delete_portfolio(portfolio_id: PortfolioId) -> Response[str]:
    portfolios.delete_portfolio(stores(), tenant(app), portfolio_id)
    return Response(status_code=204, body="")


@app.get("/v1/predictions/<prediction_type>/<entity_id>")
@tracer.capture_method
def latest_prediction(
    prediction_type: Annotated[str, Path(max_length=64)], entity_id: EntityId
) -> dict[str, Any]:
    return cache.latest_prediction(stores(), tenant(app), prediction_type, entity_id)


@app.delete("/v1/cache")
@tracer.capture_method
def invalidate_cache(
    prediction_type: Annotated[str | None, Query(max_length=64)] = None,
    entity_id: Annotated[str | None, Query(max_length=128)] = None,
) -> dict[str, Any]:
    return cache.invalidate(stores(), tenant(app), prediction_type, entity_id)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
