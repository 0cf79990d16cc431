"""Storing and reading the tenant's entities."""

from __future__ import annotations

from typing import Any

from batchpredict.constants import ErrorCode
from batchpredict.entities import Entity, Neighbour
from batchpredict.errors import BadRequestError, FieldError, NotFoundError
from batchpredict.models import PutEntitiesRequest
from batchpredict.store import Stores


def put_entities(stores: Stores, tenant: str, request: PutEntitiesRequest) -> dict[str, Any]:
    seen: dict[str, int] = {}
    duplicates = []
    for index, entity in enumerate(request.entities):
        if entity.entity_id in seen:
            duplicates.append(FieldError(f"entities[{index}].entity_id", "duplicate entity_id"))
        seen[entity.entity_id] = index
    if duplicates:
        raise BadRequestError(
            "each entity may appear once per request", duplicates, code=ErrorCode.VALIDATION_ERROR
        )
    entities = [
        Entity.create(
            e.entity_id,
            e.attributes,
            [Neighbour(n.entity_id, n.weight) for n in e.neighbours],
            e.time_series,
        )
        for e in request.entities
    ]
    stores.entities.put_many(tenant, entities)
    return {
        "upserted": len(entities),
        "entities": [{"entity_id": e.entity_id, "version": e.version} for e in entities],
    }


def entity_view(entity: Entity, updated_at: str) -> dict[str, Any]:
    return {
        "entity_id": entity.entity_id,
        "attributes": dict(entity.attributes),
        "neighbours": [{"entity_id": n.entity_id, "weight": n.weight} for n in entity.neighbours],
        "time_series": list(entity.time_series),
        "version": entity.version,
        "updated_at": updated_at,
    }


def get_entity(stores: Stores, tenant: str, entity_id: str) -> dict[str, Any]:
    found = stores.entities.get(tenant, entity_id)
    if found is None:
        raise NotFoundError(f"entity {entity_id} not found")
    return entity_view(*found)


def delete_entity(stores: Stores, tenant: str, entity_id: str) -> None:
    if not stores.entities.delete(tenant, entity_id):
        raise NotFoundError(f"entity {entity_id} not found")
