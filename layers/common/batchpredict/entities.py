"""The entity: what predictions are made for. Stored per tenant in the entities table."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Neighbour:
    entity_id: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Entity:
    """One entity as the predictors see it.

    `attributes` holds scalar attributes (for example `spin`, `threshold`, `adopted`, `field`);
    `neighbours` the weighted out-edges of the entity graph; `time_series` an ordered series of
    observations. `version` is a hash of all of it, so it changes exactly when the entity does.
    """

    entity_id: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    neighbours: tuple[Neighbour, ...] = ()
    time_series: tuple[float, ...] = ()
    version: str = ""

    @classmethod
    def create(
        cls,
        entity_id: str,
        attributes: Mapping[str, Any] | None = None,
        neighbours: tuple[Neighbour, ...] | list[Neighbour] = (),
        time_series: tuple[float, ...] | list[float] = (),
    ) -> Entity:
        attrs = dict(attributes or {})
        nbrs = tuple(neighbours)
        series = tuple(float(x) for x in time_series)
        return cls(entity_id, attrs, nbrs, series, content_version(attrs, nbrs, series))


def content_version(
    attributes: Mapping[str, Any], neighbours: tuple[Neighbour, ...], series: tuple[float, ...]
) -> str:
    canonical = json.dumps(
        [attributes, [[n.entity_id, n.weight] for n in neighbours], list(series)],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
