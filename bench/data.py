"""Synthetic entities for the benchmarks: deterministic, generated a page at a time.

Each entity has what every built-in predictor reads (`spin`, `field`, `threshold`, `adopted`,
weighted neighbours, a time series), so one set of entities serves ising, cascade and ews. An
entity's content depends only on its number and the seed, so a page of 1,000 can be made without
holding the other 99,000 in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

PAGE = 1000  # PUT /v1/entities takes at most 1,000
RING = 3  # neighbours on each side
SERIES_LENGTH = 64


def entity_id(number: int) -> str:
    return f"e-{number:06d}"


def entity_ids(n: int) -> list[str]:
    return [entity_id(i) for i in range(n)]


def _neighbours(i: int, n: int) -> list[int]:
    """A ring of 2*RING plus one deterministic long-range tie (symmetric on the ring)."""
    out = [(i + d) % n for d in range(-RING, RING + 1) if d and n > 1]
    far = (i * 7919 + n // 2) % n
    if n > 2 * RING + 1 and far != i and far not in out:
        out.append(far)
    return sorted(set(out))


def entity(i: int, n: int, seed: int = 7) -> dict[str, Any]:
    rng = np.random.default_rng([seed, i])
    spin = 1 if rng.random() < 0.8 else -1
    rho = 0.4 + 0.55 * rng.random()
    noise = rng.normal(0.0, 1.0, SERIES_LENGTH)
    series = np.empty(SERIES_LENGTH)
    series[0] = noise[0]
    for t in range(1, SERIES_LENGTH):
        series[t] = rho * series[t - 1] + noise[t]
    return {
        "entity_id": entity_id(i),
        "attributes": {
            "spin": spin,
            "field": round(float(rng.normal(0.0, 0.05)), 4),
            "threshold": round(float(rng.beta(3.0, 7.0)), 4),
            "adopted": bool(rng.random() < 0.02),
        },
        "neighbours": [
            {"entity_id": entity_id(j), "weight": round(0.5 + 0.5 * ((i + j) % 7) / 7, 4)}
            for j in _neighbours(i, n)
        ],
        "time_series": [round(float(x), 4) for x in series],
    }


def pages(n: int, seed: int = 7, size: int = PAGE) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, n, size):
        yield [entity(i, n, seed) for i in range(start, min(n, start + size))]


PARAMETERS: dict[str, dict[str, Any]] = {
    "ising": {"temperature": 1.5, "time_horizon": 1.0},
    "cascade": {"max_generations": 3},
    "ews": {},
}
