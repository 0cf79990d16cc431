"""The prediction cache: pk = TENANT#<tenant>#ENTITY#<id>, sk = <type>#<version>#<params>#<inputs>.

The sort key holds a fingerprint of exactly the inputs the predictor read (the versions of the
entity and of the neighbours it used), so a changed input misses by construction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from batchpredict.store import dynamo
from batchpredict.store.jobs import now_iso


def params_hash(params: Mapping[str, Any]) -> str:
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def inputs_fingerprint(versions: Iterable[tuple[str, str]]) -> str:
    """(entity id, version) pairs of every input, in any order."""
    canonical = ";".join(f"{i}={v}" for i, v in sorted(versions))
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class CacheKey:
    tenant: str
    entity_id: str
    prediction_type: str
    predictor_version: str
    params_hash: str
    fingerprint: str
    generation: int = 0  # bumped by DELETE /v1/cache for a whole type: older entries miss

    @property
    def pk(self) -> str:
        return f"TENANT#{self.tenant}#ENTITY#{self.entity_id}"

    @property
    def sk(self) -> str:
        return (
            f"{self.prediction_type}#{self.predictor_version}#g{self.generation}"
            f"#{self.params_hash}#{self.fingerprint}"
        )


@dataclass(frozen=True, slots=True)
class CachedPrediction:
    value: dict[str, Any]
    quality: float | None
    computed_at: str
    expires_at: int


class PredictionCache:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    @staticmethod
    def _fresh(item: Mapping[str, Any], now: int) -> bool:
        # DynamoDB's TTL deletes late (moto never): an entry past expires_at is never served.
        return int(item.get("expires_at", 0)) > now

    def get_many(self, keys: Sequence[CacheKey]) -> dict[CacheKey, CachedPrediction]:
        by_id = {(k.pk, k.sk): k for k in keys}
        items = dynamo.batch_get(
            self.client, self.table, [{"pk": pk, "sk": sk} for pk, sk in by_id], parallel=4
        )
        now = int(datetime.now(UTC).timestamp())
        return {
            by_id[(i["pk"], i["sk"])]: CachedPrediction(
                json.loads(i["value"]), i.get("quality"), i["computed_at"], int(i["expires_at"])
            )
            for i in items
            if self._fresh(i, now)
        }

    def put_many(
        self, entries: Sequence[tuple[CacheKey, Mapping[str, Any], float | None]], ttl_seconds: int
    ) -> None:
        at = now_iso()
        expires = int(datetime.now(UTC).timestamp()) + ttl_seconds
        dynamo.batch_write(
            self.client,
            self.table,
            (
                {
                    "pk": key.pk,
                    "sk": key.sk,
                    "prediction_type": key.prediction_type,
                    "value": json.dumps(value, separators=(",", ":")),
                    "quality": quality,
                    "computed_at": at,
                    "expires_at": expires,
                }
                for key, value, quality in entries
            ),
        )

    def _generation_key(self, tenant: str) -> dict[str, Any]:
        return dynamo.serialize({"pk": f"TENANT#{tenant}#GENERATIONS", "sk": "GENERATIONS"})

    def generations(self, tenant: str) -> dict[str, int]:
        """The tenant's cache generation per prediction type (0 if never invalidated)."""
        response = self.client.get_item(
            TableName=self.table, Key=self._generation_key(tenant), ConsistentRead=True
        )
        item = dynamo.deserialize(response.get("Item", {}))
        return {k.removeprefix("g_"): int(v) for k, v in item.items() if k.startswith("g_")}

    def invalidate_types(self, tenant: str, prediction_types: Sequence[str]) -> None:
        self.client.update_item(
            TableName=self.table,
            Key=self._generation_key(tenant),
            UpdateExpression="ADD "
            + ", ".join(f"#g{i} :one" for i in range(len(prediction_types))),
            ExpressionAttributeNames={f"#g{i}": f"g_{t}" for i, t in enumerate(prediction_types)},
            ExpressionAttributeValues=dynamo.values({":one": 1}),
        )

    def invalidate_entity(
        self, tenant: str, entity_id: str, prediction_type: str | None = None
    ) -> int:
        """Delete the entity's cached predictions (of one type, or all); returns how many."""
        condition = "pk = :pk"
        values: dict[str, str] = {":pk": f"TENANT#{tenant}#ENTITY#{entity_id}"}
        if prediction_type:
            condition += " AND begins_with(sk, :t)"
            values[":t"] = f"{prediction_type}#"
        items = list(
            dynamo.query_all(
                self.client,
                TableName=self.table,
                KeyConditionExpression=condition,
                ExpressionAttributeValues=dynamo.values(values),
                ProjectionExpression="pk, sk",
            )
        )
        dynamo.batch_write(self.client, self.table, deletes=items)
        return len(items)

    def latest(self, tenant: str, entity_id: str, prediction_type: str) -> dict[str, Any] | None:
        """The freshest unexpired, uninvalidated prediction of that type for the entity."""
        now = int(datetime.now(UTC).timestamp())
        generation = self.generations(tenant).get(prediction_type, 0)
        items = dynamo.query_all(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :t)",
            ExpressionAttributeValues=dynamo.values(
                {":pk": f"TENANT#{tenant}#ENTITY#{entity_id}", ":t": f"{prediction_type}#"}
            ),
        )
        fresh = [
            i for i in items if self._fresh(i, now) and i["sk"].split("#")[2] == f"g{generation}"
        ]
        if not fresh:
            return None
        best = max(fresh, key=lambda i: i["computed_at"])
        _, version, _, params, _ = best["sk"].split("#", 4)
        return {
            "entity_id": entity_id,
            "prediction_type": prediction_type,
            "predictor_version": version,
            "parameters_hash": params,
            "prediction": json.loads(best["value"]),
            "quality": best.get("quality"),
            "computed_at": best["computed_at"],
            "expires_at": datetime.fromtimestamp(int(best["expires_at"]), UTC).isoformat(),
        }
