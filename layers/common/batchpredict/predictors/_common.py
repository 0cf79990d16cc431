"""Helpers the built-in predictors share: reading attributes, JSON-safe numbers, graph balls."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from batchpredict.constants import ErrorCode
from batchpredict.entities import Entity
from batchpredict.predictors.base import EntityGraph, Outcome, PredictionError


class InvalidEntityError(ValueError):
    """One target's input is unusable; becomes that target's permanent PredictionError."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code

    def outcome(self) -> PredictionError:
        return PredictionError.permanent(self.code, str(self))


def as_number(value: Any) -> float | None:
    """A finite real number as float, else None. Booleans are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def number_attribute(
    entity: Entity,
    name: str,
    default: float | None = None,
    low: float = -math.inf,
    high: float = math.inf,
) -> float:
    """The attribute `name` as a finite number in [low, high]; raises InvalidEntityError."""
    attributes: Mapping[str, Any] = entity.attributes
    if name not in attributes or attributes[name] is None:
        if default is None:
            raise InvalidEntityError(
                ErrorCode.MISSING_ATTRIBUTE,
                f"entity {entity.entity_id!r} has no {name!r} attribute",
            )
        return default
    number = as_number(attributes[name])
    if number is None or not low <= number <= high:
        bounds = "" if math.isinf(low) and math.isinf(high) else f" in [{low:g}, {high:g}]"
        raise InvalidEntityError(
            ErrorCode.INVALID_INPUT,
            f"attribute {name!r} of entity {entity.entity_id!r} must be a finite number{bounds}, "
            f"got {attributes[name]!r}",
        )
    return number


def check_weights(entity: Entity, non_negative: bool = False) -> None:
    """Raise InvalidEntityError when a neighbour weight is not finite (or negative)."""
    for position, neighbour in enumerate(entity.neighbours):
        weight = neighbour.weight
        if not math.isfinite(weight) or (non_negative and weight < 0):
            kind = "a finite number >= 0" if non_negative else "a finite number"
            raise InvalidEntityError(
                ErrorCode.INVALID_INPUT,
                f"neighbours[{position}].weight ({neighbour.entity_id!r}) of entity "
                f"{entity.entity_id!r} must be {kind}, got {weight!r}",
            )


def json_float(value: Any, digits: int | None = None) -> float | None:
    """A plain float for JSON: numpy scalars unwrapped, NaN and infinities as None."""
    number = float(value)
    if not math.isfinite(number):
        return None
    return round(number, digits) if digits is not None else number


def unit_interval(value: Any) -> float:
    """A plain float clipped to [0, 1] (quality scores, probabilities); NaN counts as 0."""
    number = float(value)
    if math.isnan(number):
        return 0.0
    return min(1.0, max(0.0, number))


def ball(starts: Iterable[Entity], hops: int, graph: EntityGraph) -> set[str]:
    """The ids within `hops` out-edges of `starts`, loaded or not (loaded ones are expanded)."""
    frontier = list(starts)
    seen = {entity.entity_id for entity in frontier}
    for _ in range(hops):
        nxt = []
        for entity in frontier:
            for neighbour in entity.neighbours:
                if neighbour.entity_id not in seen:
                    seen.add(neighbour.entity_id)
                    loaded = graph.get(neighbour.entity_id)
                    if loaded is not None:
                        nxt.append(loaded)
        if not nxt:
            break
        frontier = nxt
    return seen


def filled(outcomes: Sequence[Outcome | None]) -> list[Outcome]:
    """The outcomes once every target has one (a gap is a bug, not a bad entity)."""
    missing = [position for position, outcome in enumerate(outcomes) if outcome is None]
    if missing:
        raise RuntimeError(f"no outcome for targets at positions {missing}")
    return [outcome for outcome in outcomes if outcome is not None]


def with_targets(graph: EntityGraph, targets: Sequence[Entity]) -> EntityGraph:
    """The graph with the targets in it (the worker loads them; a caller may not have)."""
    if all(graph.get(entity.entity_id) is entity for entity in targets):
        return graph
    return EntityGraph({**graph.entities, **{entity.entity_id: entity for entity in targets}})


def sum_by(index: NDArray[np.intp], weights: NDArray[np.float64], n: int) -> NDArray[np.float64]:
    """Weights summed per index into n float slots (bincount returns ints when it has none)."""
    return np.bincount(index, weights=weights, minlength=n).astype(np.float64, copy=False)
