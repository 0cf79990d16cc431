"""Small, hand-checkable entity sets for the tests."""

from __future__ import annotations

import math
from typing import Any


def ring_entities(n: int, prefix: str = "e") -> list[dict[str, Any]]:
    """n entities on a ring: alternating spins, each adopting below its threshold, AR(1)-ish series."""
    out = []
    for i in range(n):
        series = [math.sin(i + t / 3.0) + 0.1 * ((i * 31 + t * 17) % 7) for t in range(40)]
        out.append(
            {
                "entity_id": f"{prefix}{i:05d}",
                "attributes": {
                    "spin": 1 if i % 2 else -1,
                    "threshold": 0.4,
                    "adopted": i % 10 == 0,
                },
                "neighbours": [
                    {"entity_id": f"{prefix}{(i - 1) % n:05d}", "weight": 1.0},
                    {"entity_id": f"{prefix}{(i + 1) % n:05d}", "weight": 0.5},
                ],
                "time_series": series,
            }
        )
    return out


def ids(entities: list[dict[str, Any]]) -> list[str]:
    return [e["entity_id"] for e in entities]
