"""The entities table: pk = TENANT#<tenant>, sk = entity id; the content is one JSON document.

One JSON string rather than nested DynamoDB types: a time series of hundreds of numbers parses
an order of magnitude faster with json than through the type deserializer.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Sequence
from typing import Any

from batchpredict.entities import Entity, Neighbour
from batchpredict.store import dynamo
from batchpredict.store.jobs import now_iso, tenant_pk

# The existence check's range read: its first page reads at most this many entities, and it
# goes on only while at least this share of the entities it reads were asked for.
_RANGE_PROBE = 100
_RANGE_DENSITY = 0.5


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
        """The ids among `entity_ids` that are not stored, in request order (keys read only).

        A job's ids are often a run of neighbouring keys (a whole network, a catalogue): then a
        keys-only Query over their key range answers up to 1 MB of entities a request, billed by
        the bytes read (1,000 entities of 1 KB: 3 requests and 125 RRU, against 10 BatchGetItem
        requests and 500 RRU). A Query also reads the stored entities that were not asked for,
        so the range is read only while at least half of what it holds was asked for; the ids
        it has not reached by then are looked up with BatchGetItem.
        """
        wanted = sorted(set(entity_ids))  # ids are ASCII: str order is DynamoDB's byte order
        if not wanted:
            return []
        found, decided = self._found_in_range(tenant, wanted)
        rest = [{"pk": tenant_pk(tenant), "sk": i} for i in wanted[decided:]]
        found.update(
            item["sk"]
            for item in dynamo.batch_get(self.client, self.table, rest, projection="sk", parallel=8)
        )
        return [i for i in entity_ids if i not in found]

    def _found_in_range(self, tenant: str, wanted: list[str]) -> tuple[set[str], int]:
        """Which of `wanted` (sorted) a Query of their key range found, and how many of them
        (from the first) it has answered for, present or not."""
        asked = set(wanted)
        found: set[str] = set()
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :first AND :last",
            "ExpressionAttributeValues": dynamo.serialize(
                {":pk": tenant_pk(tenant), ":first": wanted[0], ":last": wanted[-1]}
            ),
            "ProjectionExpression": "sk",
            "Limit": min(len(wanted), _RANGE_PROBE),  # a sparse range costs one small page
        }
        while True:
            page = self.client.query(**request)
            keys = [dynamo.deserialize(i)["sk"] for i in page.get("Items", [])]
            hits = asked.intersection(keys)
            found |= hits
            last = page.get("LastEvaluatedKey")
            if not last:
                return found, len(wanted)
            decided = bisect.bisect_right(wanted, dynamo.deserialize(last)["sk"])
            sparse = len(hits) < _RANGE_DENSITY * page.get("ScannedCount", len(keys))
            if sparse or decided == len(wanted):
                return found, decided
            request["ExclusiveStartKey"] = last
            # Pages grow fourfold (a thinning range wastes at most one page), up to what a dense
            # rest of the range holds, with slack.
            request["Limit"] = min(4 * request["Limit"], 2 * (len(wanted) - decided))

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
