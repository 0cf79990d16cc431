"""`cascade`: Granovetter's threshold model, run generation by generation from seed entities.

Generation 0: the seeds (entities whose `adopted` attribute is true, plus the parameter's
`seed_entity_ids`) have adopted. Generation g: every entity that has not adopted adopts when the
weight of its neighbours that had adopted by generation g - 1, divided by the weight of all its
neighbours (loaded or not), reaches its threshold. Adoption is never undone.

The state of an entity at generation G depends exactly on its G-hop ball, so the predictor asks
for `max_generations` hops and simulates once, vectorised, over the union of the targets' balls.
Entities it cannot see (not stored, or past the loaded hops) keep their generation-0 state: they
count in their referrers' denominators but only a seed among them counts as adopted.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from batchpredict.constants import MAX_ID_LENGTH, ErrorCode
from batchpredict.entities import Entity
from batchpredict.predictors._common import (
    InvalidEntityError,
    as_number,
    ball,
    check_weights,
    filled,
    number_attribute,
    sum_by,
    unit_interval,
    with_targets,
)
from batchpredict.predictors.base import (
    EntityGraph,
    Outcome,
    Prediction,
    Predictor,
    PredictorParams,
)
from batchpredict.predictors.registry import register

THRESHOLD = "threshold"
ADOPTED = "adopted"
MAX_SEEDS = 1000
# Weights are summed in floating point; a share equal to the threshold on paper must still adopt.
SHARE_TOLERANCE = 1e-12

Unit = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class ThresholdDistribution(BaseModel):
    """Where an entity's threshold comes from when it has no `threshold` attribute."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["fixed", "uniform", "normal"] = Field(
        default="fixed",
        description="fixed: every threshold is `value`; uniform: on [low, high]; "
        "normal: N(mean, std) clipped to [0, 1].",
    )
    value: Unit = Field(default=0.5, description="The threshold when kind is fixed.")
    low: Unit = Field(default=0.0, description="Lower end of the uniform distribution.")
    high: Unit = Field(default=1.0, description="Upper end of the uniform distribution.")
    mean: Unit = Field(default=0.5, description="Mean of the normal distribution.")
    std: Unit = Field(default=0.15, description="Standard deviation of the normal distribution.")

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdDistribution:
        if self.low > self.high:
            raise ValueError("low must not exceed high")
        return self

    def draw(self, entity_id: str) -> float:
        """The threshold of `entity_id`: the inverse CDF at a stable hash of the id."""
        if self.kind == "fixed":
            return self.value
        u = unit_hash(entity_id)
        if self.kind == "uniform":
            drawn = self.low + u * (self.high - self.low)
        elif self.std == 0:
            drawn = self.mean
        else:
            drawn = NormalDist(self.mean, self.std).inv_cdf(u)
        return min(1.0, max(0.0, drawn))


class CascadeParams(PredictorParams):
    max_generations: int = Field(
        default=5, ge=1, le=50, description="Generations simulated after the seeds (G)."
    )
    threshold_distribution: ThresholdDistribution = Field(
        default_factory=ThresholdDistribution,
        description="Thresholds of the entities without a `threshold` attribute.",
    )
    seed_entity_ids: tuple[
        Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH)], ...
    ] = Field(
        default=(),
        max_length=MAX_SEEDS,
        description="Entities adopted at generation 0 in addition to those with adopted=true.",
    )


def unit_hash(entity_id: str) -> float:
    """A number in (0, 1) from the id, the same in every process (unlike hash())."""
    digest = hashlib.sha256(entity_id.encode()).digest()
    k = int.from_bytes(digest[:8], "big") >> 12  # 52 bits: (k + 0.5) / 2**52 is exact, < 1
    return (k + 0.5) / 2.0**52


def adopted_flag(value: Any) -> bool | None:
    """True/False for a boolean (or 0/1), False when absent, None when unusable."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    number = as_number(value)
    if number in (0.0, 1.0):
        return number == 1.0
    return None


def _seed(entity: Entity) -> bool:
    seed = adopted_flag(entity.attributes.get(ADOPTED))
    if seed is None:
        raise InvalidEntityError(
            ErrorCode.INVALID_INPUT,
            f"attribute 'adopted' of entity {entity.entity_id!r} must be true or false, "
            f"got {entity.attributes[ADOPTED]!r}",
        )
    return seed


def _threshold(entity: Entity, params: CascadeParams) -> float:
    if entity.attributes.get(THRESHOLD) is None:
        return params.threshold_distribution.draw(entity.entity_id)
    return number_attribute(entity, THRESHOLD, low=0.0, high=1.0)


def _target_inputs(entity: Entity, params: CascadeParams) -> tuple[float, bool]:
    """A target's threshold and seed flag; raises InvalidEntityError for unusable input."""
    check_weights(entity, non_negative=True)
    return _threshold(entity, params), _seed(entity)


def _lenient_inputs(entity: Entity, params: CascadeParams) -> tuple[float, bool]:
    """Another entity's threshold and seed flag: an unreadable threshold never adopts, an
    unreadable `adopted` is no seed (its own prediction reports the error)."""
    try:
        threshold = _threshold(entity, params)
    except InvalidEntityError:
        threshold = math.inf
    return threshold, bool(adopted_flag(entity.attributes.get(ADOPTED)))


@register
class CascadePredictor(Predictor[CascadeParams]):
    prediction_type = "cascade"
    version = "1"
    params_model = CascadeParams
    cache_ttl_seconds = 1800
    description = (
        "Granovetter threshold cascade: whether and in which generation an entity adopts, "
        "from seed entities, neighbour weights and per-entity thresholds."
    )

    def neighbour_hops(self, params: CascadeParams) -> int:
        return params.max_generations

    def predict_batch(
        self, entities: Sequence[Entity], params: CascadeParams, graph: EntityGraph
    ) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(entities)
        valid: list[tuple[int, Entity]] = []
        for position, entity in enumerate(entities):
            try:
                _target_inputs(entity, params)
            except InvalidEntityError as error:
                outcomes[position] = error.outcome()
            else:
                valid.append((position, entity))
        if valid:
            targets = [entity for _, entity in valid]
            predictions = _Simulation(targets, params, with_targets(graph, targets)).predictions(
                targets
            )
            for (position, _), prediction in zip(valid, predictions, strict=True):
                outcomes[position] = prediction
        return filled(outcomes)


class _Simulation:
    """The threshold dynamics over the union of the targets' G-balls, as edge arrays."""

    def __init__(
        self, targets: Sequence[Entity], params: CascadeParams, graph: EntityGraph
    ) -> None:
        seeds = set(params.seed_entity_ids)
        members = ball(targets, params.max_generations, graph)
        target_ids = {entity.entity_id for entity in targets}
        self.index: dict[str, int] = {}
        src: list[int] = []
        dst: list[int] = []
        weight: list[float] = []
        threshold: list[float] = []
        seed: list[bool] = []
        self.loaded: list[bool] = []

        def node(entity_id: str) -> int:
            at = self.index.get(entity_id)
            if at is None:
                at = self.index[entity_id] = len(threshold)
                entity = graph.get(entity_id)
                if entity is None or entity_id not in members:
                    # seen but not simulated: keeps its generation-0 state
                    own_seed = entity is not None and bool(
                        adopted_flag(entity.attributes.get(ADOPTED))
                    )
                    threshold.append(math.inf)
                    seed.append(own_seed or entity_id in seeds)
                else:
                    reader = _target_inputs if entity_id in target_ids else _lenient_inputs
                    own_threshold, own_seed = reader(entity, params)
                    threshold.append(own_threshold)
                    seed.append(own_seed or entity_id in seeds)
                self.loaded.append(entity is not None)
            return at

        for entity_id in sorted(members):  # sorted: the same arrays in every process
            entity = graph.get(entity_id)
            at = node(entity_id)
            if entity is None:
                continue
            for neighbour in entity.neighbours:
                src.append(at)
                dst.append(node(neighbour.entity_id))
                w = neighbour.weight
                weight.append(w if math.isfinite(w) and w > 0 else 0.0)

        n = len(threshold)
        self.src = np.asarray(src, dtype=np.intp)
        self.dst = np.asarray(dst, dtype=np.intp)
        self.weight = np.asarray(weight, dtype=float)
        self.threshold = np.asarray(threshold, dtype=float)
        self.seed = np.asarray(seed, dtype=bool)
        self.total = sum_by(self.src, self.weight, n)
        self.generations = params.max_generations
        self._run()

    def _run(self) -> None:
        n = self.threshold.size
        adopted = self.seed.copy()
        generation = np.where(adopted, 0, -1)
        share = np.zeros(n)
        for g in range(1, self.generations + 1):
            got = sum_by(self.src, self.weight * adopted[self.dst], n)
            # After the last step `share` is the generation G - 1 share, the one the final
            # decision compared with the threshold: exact for a target whose G-ball is loaded.
            share = np.divide(got, self.total, out=np.zeros(n), where=self.total > 0)
            new = ~adopted & (share >= self.threshold - SHARE_TOLERANCE)
            if not new.any():
                break  # a fixed point: every later generation is this one
            adopted |= new
            generation[new] = g
        self.adopted = adopted
        self.generation = generation
        self.share = share

    def predictions(self, targets: Sequence[Entity]) -> list[Prediction]:
        rows = np.asarray([self.index[entity.entity_id] for entity in targets], dtype=np.intp)
        loaded = np.asarray(self.loaded, dtype=bool)
        loaded_w = sum_by(self.src, self.weight * loaded[self.dst], self.threshold.size)
        total = self.total[rows]
        quality = np.divide(loaded_w[rows], total, out=np.ones(rows.size), where=total > 0)
        out = []
        for k, row in enumerate(rows):
            generation = int(self.generation[row])
            out.append(
                Prediction(
                    value={
                        "adopted": bool(self.adopted[row]),
                        "adoption_generation": generation if generation >= 0 else None,
                        "threshold": float(self.threshold[row]),
                        "seed": bool(self.seed[row]),
                        "adopted_neighbour_share": (
                            unit_interval(self.share[row]) if total[k] > 0 else None
                        ),
                        "generations_run": self.generations,
                    },
                    quality=unit_interval(quality[k]),
                )
            )
        return out
