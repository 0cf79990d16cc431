"""A synthetic actor network for the demo and the tests, deterministic by seed.

Actors live in communities of 20-60 (a small-world ring inside each, some rewired and some
extra ties), with a few long-range ties between communities and a few well-connected
"influencers". Every tie is symmetric: if a lists b, b lists a with the same weight.

What each predictor reads (docs/PREDICTORS.md):
- ising: `spin` (-1/1, mostly aligned within a community), `field` (small), the couplings
  (the neighbour weights: mostly positive, about 3% negative "antagonistic" ties);
- cascade: `threshold` (Beta(3, 7), mean 0.3), `adopted` (about 1% seeds, clustered in a few
  "early adopter" communities so cascades can start);
- ews: `time_series` of 120 points: AR(1) noise with rho 0.3-0.6 for most actors; for about
  10% (`near_transition` true) rho rises towards 0.98 and the noise grows, the signature of
  critical slowing down before a transition.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

import numpy as np

SERIES_LENGTH = 120
NEAR_TRANSITION_SHARE = 0.10
SEED_SHARE = 0.01
NEGATIVE_TIE_SHARE = 0.03
INFLUENCER_SHARE = 0.01
COMMUNITY_MIN, COMMUNITY_MAX = 20, 60
RING_NEIGHBOURS = 6  # each actor's nearest ring neighbours in its community (3 per side)
REWIRE_PROBABILITY = 0.1
EXTRA_TIES_PER_ACTOR = 0.5  # random extra ties inside the community, per actor
LONG_RANGE_TIES_PER_ACTOR = 0.04
STABLE_RHO = (0.3, 0.6)
CRITICAL_RHO_END = 0.98


def actor_id(number: int) -> str:
    return f"actor-{number:05d}"


def generate_network(n_entities: int = 3000, seed: int = 42) -> list[dict[str, Any]]:
    """The network as API entity dicts (docs/API.md), in id order. Same seed, same network."""
    if n_entities < 1:
        raise ValueError("n_entities must be at least 1")
    rng = np.random.default_rng(seed)
    n = n_entities
    communities = _community_sizes(n, rng)
    community_of = np.repeat(np.arange(len(communities)), communities)
    starts = np.concatenate(([0], np.cumsum(communities)[:-1]))

    edges = _edges(n, communities, starts, rng)
    weights = _weights(edges, community_of, rng)

    # spins: each community leans one way, with its own strength
    lean = rng.choice([-1, 1], size=len(communities))
    alignment = rng.uniform(0.7, 0.95, size=len(communities))
    aligned = rng.random(n) < alignment[community_of]
    spin = np.where(aligned, lean[community_of], -lean[community_of])
    field = 0.05 * lean[community_of] + rng.normal(0.0, 0.05, n)
    threshold = rng.beta(3.0, 7.0, n)
    adopted = _seeds(n, communities, starts, rng)

    near = np.zeros(n, dtype=bool)
    near[rng.choice(n, size=round(NEAR_TRANSITION_SHARE * n), replace=False)] = True
    series = _series(near, rng)

    neighbours: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    for (a, b), w in zip(edges, weights, strict=True):
        weight = round(float(w), 4)
        neighbours[a].append({"entity_id": actor_id(b + 1), "weight": weight})
        neighbours[b].append({"entity_id": actor_id(a + 1), "weight": weight})

    entities: list[dict[str, Any]] = []
    for i in range(n):
        entities.append(
            {
                "entity_id": actor_id(i + 1),
                "attributes": {
                    "spin": int(spin[i]),
                    "threshold": round(float(threshold[i]), 4),
                    "adopted": bool(adopted[i]),
                    "field": round(float(field[i]), 4),
                    "community": f"community-{int(community_of[i]) + 1:03d}",
                    "near_transition": bool(near[i]),
                },
                "neighbours": sorted(neighbours[i], key=itemgetter("entity_id")),
                "time_series": [round(float(x), 4) for x in series[i]],
            }
        )
    return entities


def _community_sizes(n: int, rng: np.random.Generator) -> list[int]:
    """Sizes in [20, 60] that add up to n (one community when n is smaller)."""
    sizes: list[int] = []
    remaining = n
    while remaining > 0:
        if remaining <= COMMUNITY_MAX:
            size = remaining
        else:
            size = int(rng.integers(COMMUNITY_MIN, COMMUNITY_MAX + 1))
            if remaining - size < COMMUNITY_MIN:
                size = remaining - COMMUNITY_MIN
        sizes.append(size)
        remaining -= size
    return sizes


def _edges(
    n: int, sizes: list[int], starts: np.ndarray, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """Undirected ties (a < b), in a deterministic order."""
    edges: set[tuple[int, int]] = set()

    def add(a: int, b: int) -> bool:
        if a == b:
            return False
        edge = (a, b) if a < b else (b, a)
        if edge in edges:
            return False
        edges.add(edge)
        return True

    for size, start in zip(sizes, starts, strict=True):
        start = int(start)
        half = min(RING_NEIGHBOURS, size - 1) // 2
        for u in range(size):
            for d in range(1, half + 1):
                v = (u + d) % size
                if rng.random() < REWIRE_PROBABILITY:
                    v = int(rng.integers(size))  # a small-world shortcut inside the community
                add(start + u, start + v)
        for _ in range(int(rng.poisson(EXTRA_TIES_PER_ACTOR * size))):
            a, b = rng.integers(size, size=2)
            add(start + int(a), start + int(b))

    if len(sizes) > 1:
        # a ring of communities keeps the network connected; a few random long-range ties
        for c, (size, start) in enumerate(zip(sizes, starts, strict=True)):
            nxt = (c + 1) % len(sizes)
            add(
                int(start) + int(rng.integers(size)),
                int(starts[nxt]) + int(rng.integers(sizes[nxt])),
            )
        for _ in range(int(rng.poisson(LONG_RANGE_TIES_PER_ACTOR * n))):
            a, b = rng.integers(n, size=2)
            add(int(a), int(b))

    community_of = np.repeat(np.arange(len(sizes)), sizes)
    influencers = rng.choice(n, size=round(INFLUENCER_SHARE * n), replace=False)
    for hub in influencers:
        hub = int(hub)
        own = int(community_of[hub])
        for _ in range(int(rng.poisson(15))):
            if rng.random() < 0.7:
                other = int(starts[own]) + int(rng.integers(sizes[own]))
            else:
                other = int(rng.integers(n))
            add(hub, other)
    return sorted(edges)


def _weights(
    edges: list[tuple[int, int]], community_of: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Coupling per tie: strong and positive inside communities, weaker across, a few negative."""
    m = len(edges)
    if m == 0:
        return np.zeros(0)
    pairs = np.asarray(edges, dtype=np.intp)
    inside = community_of[pairs[:, 0]] == community_of[pairs[:, 1]]
    strength = np.where(inside, 0.2 + rng.gamma(2.0, 0.25, m), 0.05 + rng.gamma(2.0, 0.12, m))
    negative = rng.random(m) < NEGATIVE_TIE_SHARE
    return np.where(negative, -0.5 * strength, strength)


def _seeds(n: int, sizes: list[int], starts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """About 1% adopters, in a few early-adopter communities (so that cascades can start)."""
    count = max(1, round(SEED_SHARE * n))
    chosen = rng.choice(len(sizes), size=min(len(sizes), max(1, n // 750)), replace=False)
    pool = np.concatenate([np.arange(sizes[c]) + int(starts[c]) for c in chosen])
    adopted = np.zeros(n, dtype=bool)
    adopted[rng.choice(pool, size=min(count, pool.size), replace=False)] = True
    return adopted


def _series(near: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """AR(1) series; near-transition ones with rho rising to 0.98 and growing noise."""
    n, t = near.size, SERIES_LENGTH
    progress = np.linspace(0.0, 1.0, t)
    rho = np.empty((n, t))
    rho[~near] = rng.uniform(*STABLE_RHO, size=(int((~near).sum()), 1))
    start = rng.uniform(0.35, 0.55, size=(int(near.sum()), 1))
    rho[near] = start + (CRITICAL_RHO_END - start) * progress
    sigma = rng.uniform(0.5, 1.5, size=(n, 1)) * np.where(near[:, None], 1.0 + progress, 1.0)
    level = rng.normal(0.0, 2.0, size=n)
    noise = rng.normal(0.0, 1.0, size=(n, t)) * sigma
    x = np.empty((n, t))
    x[:, 0] = noise[:, 0] / np.sqrt(1.0 - rho[:, 0] ** 2)  # start in the stationary state
    for k in range(1, t):
        x[:, k] = rho[:, k] * x[:, k - 1] + noise[:, k]
    return x + level[:, None]


def write_jsonl(entities: Iterable[dict[str, Any]], target: str | Path | IO[str]) -> int:
    """Writes one entity per line; returns the count."""
    if isinstance(target, str | Path):
        with open(target, "w", encoding="utf-8") as handle:
            return write_jsonl(entities, handle)
    count = 0
    for entity in entities:
        target.write(json.dumps(entity, separators=(",", ":")) + "\n")
        count += 1
    return count
