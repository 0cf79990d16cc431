"""Part 5: per-item cost of each built-in predictor at chunk sizes 1, 25 and 100.

No AWS: the registry's predictors run on entities made in memory, each chunk with the graph the
worker would load for it (its targets and `neighbour_hops` hops around them), so what is timed is
`predict_batch` alone: the model compute the chunking amortises (or not).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from bench import data
from bench.common import PartResult, log, median

CHUNK_SIZES = (1, 25, 100)


def entities(n: int) -> dict[str, Any]:
    from batchpredict.entities import Entity, Neighbour

    out = {}
    for page in data.pages(n):
        for raw in page:
            out[raw["entity_id"]] = Entity.create(
                raw["entity_id"],
                raw["attributes"],
                [Neighbour(x["entity_id"], x["weight"]) for x in raw["neighbours"]],
                raw["time_series"],
            )
    return out


def graph_for(targets: Sequence[Any], hops: int, everything: dict[str, Any]) -> Any:
    """What the worker's _load_graphs loads: the targets, then `hops` rings of neighbours."""
    from batchpredict.predictors.base import EntityGraph

    loaded = {t.entity_id: t for t in targets}
    frontier = list(targets)
    for _ in range(hops):
        nxt = []
        for entity in frontier:
            for n in entity.neighbours:
                if n.entity_id not in loaded and n.entity_id in everything:
                    loaded[n.entity_id] = everything[n.entity_id]
                    nxt.append(everything[n.entity_id])
        frontier = nxt
    return EntityGraph(loaded)


def per_item_seconds(
    prediction_type: str, chunk_size: int, everything: dict[str, Any], items: int, repeats: int
) -> float:
    """Median over repeats of (time of predict_batch over `items` targets) / items."""
    from batchpredict.predictors import get_predictor

    predictor = get_predictor(prediction_type)
    params = predictor.parse_params(data.PARAMETERS[prediction_type])
    hops = predictor.neighbour_hops(params)
    targets = list(everything.values())[:items]
    chunks = [targets[i : i + chunk_size] for i in range(0, len(targets), chunk_size)]
    graphs = [graph_for(chunk, hops, everything) for chunk in chunks]  # loading is not timed
    predictor.predict_batch(chunks[0], params, graphs[0])  # warm-up
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for chunk, graph in zip(chunks, graphs, strict=True):
            outcomes = predictor.predict_batch(chunk, params, graph)
            assert len(outcomes) == len(chunk)
        samples.append((time.perf_counter() - started) / len(targets))
    return median(samples)


def run(quick: bool) -> PartResult:
    from batchpredict.predictors import prediction_types

    items = 200 if quick else 1000
    repeats = 3 if quick else 5
    result = PartResult("predictors", "Predictor cost per item by chunk size (model compute only)")
    everything = entities(max(items, 2000))
    lines = [
        "| predictor | " + " | ".join(f"chunk {c}: µs/item" for c in CHUNK_SIZES) + " | 1 -> 100 |",
        "|---|" + "---:|" * (len(CHUNK_SIZES) + 1),
    ]
    for prediction_type in prediction_types():
        log(f"predictors: {prediction_type}")
        costs = {
            c: per_item_seconds(prediction_type, c, everything, items, repeats) for c in CHUNK_SIZES
        }
        speedup = costs[1] / costs[100] if costs[100] else float("inf")
        result.row(
            f"{prediction_type}: µs per item at chunk 1 / 25 / 100",
            " / ".join(f"{costs[c] * 1e6:,.0f}" for c in CHUNK_SIZES) + f" ({speedup:.1f}x)",
            "larger chunks cheaper per item",
            costs[100] < costs[1],
        )
        lines.append(
            f"| {prediction_type} | "
            + " | ".join(f"{costs[c] * 1e6:,.1f}" for c in CHUNK_SIZES)
            + f" | {speedup:.1f}x |"
        )
    result.details = (
        f"{items:,} targets per measurement, median of {repeats} passes; parameters "
        f"{data.PARAMETERS}.\n\n" + "\n".join(lines)
    )
    return result
