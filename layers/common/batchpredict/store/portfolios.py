"""Portfolios, in the jobs table: pk = TENANT#<tenant>, sk = PORTFOLIO#<id>.

A portfolio with a refresh interval sits in the sparse `sweep` index under DUE#n with its next
refresh time as the sort key, so the refresh Lambda finds due ones with a few Queries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from batchpredict.store import dynamo
from batchpredict.store.jobs import (
    SWEEP_INDEX,
    SWEEP_PARTITIONS,
    now_iso,
    sweep_partition,
    tenant_pk,
)


@dataclass(slots=True)
class Portfolio:
    tenant: str
    portfolio_id: str
    entity_ids: list[str]
    predictions: list[dict[str, Any]]  # [{"prediction_type": ..., "parameters": {...}}]
    name: str = ""
    refresh_interval_minutes: int | None = None
    next_refresh_at: str | None = None
    last_refresh_at: str | None = None
    last_job_ids: list[str] = field(default_factory=list)
    created_at: str = ""
    updated_at: str = ""

    @property
    def key(self) -> dict[str, str]:
        return {"pk": tenant_pk(self.tenant), "sk": f"PORTFOLIO#{self.portfolio_id}"}

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            **self.key,
            "tenant": self.tenant,
            "portfolio_id": self.portfolio_id,
            "name": self.name,
            "entity_ids": json.dumps(self.entity_ids),
            "predictions": json.dumps(self.predictions, sort_keys=True),
            "refresh_interval_minutes": self.refresh_interval_minutes,
            "next_refresh_at": self.next_refresh_at,
            "last_refresh_at": self.last_refresh_at,
            "last_job_ids": json.dumps(self.last_job_ids),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        if self.refresh_interval_minutes and self.next_refresh_at:
            item["sweep_pk"] = sweep_partition("DUE", item["pk"] + item["sk"])
            item["sweep_sk"] = self.next_refresh_at
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Portfolio:
        return cls(
            tenant=item["tenant"],
            portfolio_id=item["portfolio_id"],
            entity_ids=json.loads(item["entity_ids"]),
            predictions=json.loads(item["predictions"]),
            name=item.get("name", ""),
            refresh_interval_minutes=item.get("refresh_interval_minutes"),
            next_refresh_at=item.get("next_refresh_at"),
            last_refresh_at=item.get("last_refresh_at"),
            last_job_ids=json.loads(item.get("last_job_ids") or "[]"),
            created_at=item.get("created_at", ""),
            updated_at=item.get("updated_at", ""),
        )

    def summary(self) -> dict[str, Any]:
        return {
            "portfolio_id": self.portfolio_id,
            "name": self.name,
            "entity_count": len(self.entity_ids),
            "predictions": self.predictions,
            "refresh_interval_minutes": self.refresh_interval_minutes,
            "next_refresh_at": self.next_refresh_at,
            "last_refresh_at": self.last_refresh_at,
            "last_job_ids": self.last_job_ids,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


class PortfolioStore:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def put(self, portfolio: Portfolio) -> None:
        self.client.put_item(TableName=self.table, Item=dynamo.serialize(portfolio.to_item()))

    def get(self, tenant: str, portfolio_id: str) -> Portfolio | None:
        response = self.client.get_item(
            TableName=self.table,
            Key=dynamo.serialize({"pk": tenant_pk(tenant), "sk": f"PORTFOLIO#{portfolio_id}"}),
            ConsistentRead=True,
        )
        return (
            Portfolio.from_item(dynamo.deserialize(response["Item"]))
            if "Item" in response
            else None
        )

    def delete(self, tenant: str, portfolio_id: str) -> bool:
        try:
            self.client.delete_item(
                TableName=self.table,
                Key=dynamo.serialize({"pk": tenant_pk(tenant), "sk": f"PORTFOLIO#{portfolio_id}"}),
                ConditionExpression="attribute_exists(sk)",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def for_tenant(self, tenant: str) -> list[Portfolio]:
        items = dynamo.query_all(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
            ExpressionAttributeValues=dynamo.values({":pk": tenant_pk(tenant), ":p": "PORTFOLIO#"}),
        )
        return [Portfolio.from_item(i) for i in items]

    def due(self, now: datetime) -> list[Portfolio]:
        at = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        keys: list[dict[str, Any]] = []
        for partition in range(SWEEP_PARTITIONS):
            keys.extend(
                {"pk": i["pk"], "sk": i["sk"]}
                for i in dynamo.query_all(
                    self.client,
                    TableName=self.table,
                    IndexName=SWEEP_INDEX,
                    KeyConditionExpression="sweep_pk = :p AND sweep_sk <= :now",
                    ExpressionAttributeValues=dynamo.values({":p": f"DUE#{partition}", ":now": at}),
                )
            )
        items = dynamo.batch_get(self.client, self.table, keys, consistent=True)
        return [Portfolio.from_item(i) for i in items]

    def advance(self, portfolio: Portfolio, slot: str, next_at: str, job_ids: list[str]) -> bool:
        """Move the portfolio past `slot`, once: False if another refresh already did."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=dynamo.serialize(portfolio.key),
                UpdateExpression=(
                    "SET next_refresh_at = :next, sweep_sk = :next, last_refresh_at = :now, "
                    "last_job_ids = :jobs, updated_at = :now"
                ),
                ConditionExpression="next_refresh_at = :slot",
                ExpressionAttributeValues=dynamo.values(
                    {
                        ":next": next_at,
                        ":now": now_iso(),
                        ":jobs": json.dumps(job_ids),
                        ":slot": slot,
                    }
                ),
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        portfolio.next_refresh_at, portfolio.last_job_ids = next_at, job_ids
        return True
