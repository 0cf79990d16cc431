"""The cache's API: the latest prediction per entity, and manual invalidation."""

from __future__ import annotations

from typing import Any

from batchpredict.constants import ErrorCode
from batchpredict.errors import BadRequestError, FieldError, NotFoundError
from batchpredict.predictors import UnknownPredictionTypeError, get_predictor, prediction_types
from batchpredict.store import Stores


def _known_type(prediction_type: str) -> str:
    try:
        return get_predictor(prediction_type).prediction_type
    except UnknownPredictionTypeError:
        raise BadRequestError(
            f"unknown prediction type {prediction_type!r}",
            [FieldError("prediction_type", "unknown prediction type")],
            code=ErrorCode.UNKNOWN_PREDICTION_TYPE,
        ) from None


def latest_prediction(
    stores: Stores, tenant: str, prediction_type: str, entity_id: str
) -> dict[str, Any]:
    found = stores.cache.latest(tenant, entity_id, _known_type(prediction_type))
    if found is None:
        raise NotFoundError(f"no fresh {prediction_type} prediction for entity {entity_id}")
    return found


def invalidate(
    stores: Stores, tenant: str, prediction_type: str | None, entity_id: str | None
) -> dict[str, Any]:
    """By entity: delete its entries. By type or for everything: bump the generation."""
    if prediction_type is not None:
        _known_type(prediction_type)
    if entity_id is not None:
        deleted = stores.cache.invalidate_entity(tenant, entity_id, prediction_type)
        return {"invalidated": "entity", "entity_id": entity_id, "entries_deleted": deleted}
    types = [prediction_type] if prediction_type else prediction_types()
    stores.cache.invalidate_types(tenant, types)
    return {"invalidated": "prediction_types", "prediction_types": types}
