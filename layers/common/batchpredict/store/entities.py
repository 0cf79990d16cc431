"""The entities table: pk = TENANT#<tenant>, sk = entity id; the content is one JSON document.

One JSON string rather than nested DynamoDB types: a time series of hundreds of numbers parses
an order of magnitude faster with json than through the type deserializer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from batchpredict.entities import Entity, Neighbour
from batchpredict.store import dynamo
from batchpredict.store.jobs import now_iso, tenant_pk


def _to_item(tenant: str, entity: Entity, updated_at: str) -> dict[str, Any]:
    doc = {
        "attributes": dict(entity.attributes),
        "neighbours": [[n.entity_id, n.weight] for n in entity.neighbours],
        "time_series": list(entity.time_series),
    }
    return {
        "pk": tenant_pk(tenant),
        "sk": entity.entity_id,
        "version": entity.version,
        "updated_at": updated_at,
        "doc": json.dumps(doc, separators=(",", ":")),
    }


def _from_item(item: dict[str, Any]) -> Entity:
    doc = json.loads(item["doc"])
    return Entity(
        entity_id=item["sk"],
        attributes=doc.get("attributes", {}),
        neighbours=tuple(Neighbour(i, float(w)) for i, w in doc.get("neighbours", [])),
        time_series=tuple(doc.get("time_series", [])),
        version=item["version"],
    )


class EntityStore:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def put_many(self, tenant: str, entities: Sequence[Entity]) -> None:
        at = now_iso()
        dynamo.batch_write(self.client, self.table, (_to_item(tenant, e, at) for e in entities))

    def get(self, tenant: str, entity_id: str) -> tuple[Entity, str] | None:
        response = self.client.get_item(
            TableName=self.table, Key=dynamo.serialize({"pk": tenant_pk(tenant), "sk": entity_id})
        )
        if "Item" not in response:
            return None
        item = dynamo.deserialize(response["Item"])
        return _from_item(item), item["updated_at"]

    def get_many(self, tenant: str, entity_ids: Iterable[str]) -> dict[str, Entity]:
        keys = [{"pk": tenant_pk(tenant), "sk": i} for i in entity_ids]
        items = dynamo.batch_get(self.client, self.table, keys, parallel=4)
        return {item["sk"]: _from_item(item) for item in items}

    def missing(self, tenant: str, entity_ids: Sequence[str]) -> list[str]:
        """The ids among `entity_ids` that are not stored, in request order (keys read only)."""
        keys = [{"pk": tenant_pk(tenant), "sk": i} for i in entity_ids]
        found = {
            item["sk"]
            for item in dynamo.batch_get(self.client, self.table, keys, projection="sk", parallel=8)
        }
        return [i for i in entity_ids if i not in found]

    def delete(self, tenant: str, entity_id: str) -> bool:
        try:
            self.client.delete_item(
                TableName=self.table,
                Key=dynamo.serialize({"pk": tenant_pk(tenant), "sk": entity_id}),
                ConditionExpression="attribute_exists(sk)",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True
