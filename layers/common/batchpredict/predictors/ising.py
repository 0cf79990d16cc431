"""`ising`: the probability that an entity's spin flips within a horizon, under Glauber dynamics.

The local field on entity i is h_i = sum_j J_ij s_j + H_i (J_ij = the neighbour's edge weight,
s_j its spin, H_i the entity's own `field`). With unit attempt rate, Glauber dynamics flips s_i
at rate a = (1 - s_i tanh(h_i / T)) / 2 and flips it back at rate 1 - a. Holding the neighbours
fixed over the horizon t, that two-state chain (total rate 1) gives

    P(s_i(t) != s_i(0)) = a (1 - e^-t),    E[s_i(t)] = s_i (1 - 2 P).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import Field

from batchpredict.constants import ErrorCode
from batchpredict.entities import Entity
from batchpredict.predictors._common import (
    InvalidEntityError,
    as_number,
    check_weights,
    filled,
    json_float,
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

SPIN = "spin"
FIELD = "field"


class IsingParams(PredictorParams):
    temperature: float = Field(
        default=1.0,
        gt=0,
        le=1e9,
        allow_inf_nan=False,
        description="Temperature T of the Glauber dynamics (in units of the couplings).",
    )
    time_horizon: float = Field(
        default=1.0,
        gt=0,
        le=1e9,
        allow_inf_nan=False,
        description="Horizon t, in units of the mean time between spin-flip attempts.",
    )


def spin_of(entity: Entity) -> float | None:
    """The entity's spin (-1.0 or 1.0), or None when it has none or an invalid one."""
    spin = as_number(entity.attributes.get(SPIN))
    return spin if spin in (-1.0, 1.0) else None


@register
class IsingPredictor(Predictor[IsingParams]):
    prediction_type = "ising"
    version = "1"
    params_model = IsingParams
    cache_ttl_seconds = 3600
    description = (
        "Spin-flip probability within a horizon under Glauber dynamics, from the entity's spin, "
        "its external field and its neighbours' spins and couplings."
    )

    def neighbour_hops(self, params: IsingParams) -> int:
        return 1

    def predict_batch(
        self, entities: Sequence[Entity], params: IsingParams, graph: EntityGraph
    ) -> list[Outcome]:
        graph = with_targets(graph, entities)
        outcomes: list[Outcome | None] = [None] * len(entities)
        rows: list[int] = []  # positions of the valid targets
        spins: list[float] = []
        fields: list[float] = []
        edge_row: list[int] = []  # per coupling: index into rows
        edge_weight: list[float] = []
        edge_spin: list[float] = []  # 0.0 where the neighbour's spin is unknown
        for position, entity in enumerate(entities):
            try:
                spin = _target_spin(entity)
                field = number_attribute(entity, FIELD, default=0.0)
                check_weights(entity)
            except InvalidEntityError as error:
                outcomes[position] = error.outcome()
                continue
            row = len(rows)
            rows.append(position)
            spins.append(spin)
            fields.append(field)
            for neighbour in entity.neighbours:
                loaded = graph.get(neighbour.entity_id)
                neighbour_spin = spin_of(loaded) if loaded is not None else None
                edge_row.append(row)
                edge_weight.append(neighbour.weight)
                edge_spin.append(neighbour_spin or 0.0)

        if rows:
            n = len(rows)
            s = np.asarray(spins)
            index = np.asarray(edge_row, dtype=np.intp)
            weight = np.asarray(edge_weight, dtype=float)
            neighbour_s = np.asarray(edge_spin, dtype=float)
            with np.errstate(over="ignore", invalid="ignore"):
                local = sum_by(index, weight * neighbour_s, n)
                local += np.asarray(fields)
                # tanh saturates to +-1 for |h/T| -> inf, so a very low T needs no special case
                rate = 0.5 * (1.0 - s * np.tanh(local / params.temperature))
            rate = np.clip(np.nan_to_num(rate, nan=0.5), 0.0, 1.0)
            flip = np.clip(rate * -math.expm1(-params.time_horizon), 0.0, 1.0)
            expected = s * (1.0 - 2.0 * flip)
            total_w = sum_by(index, np.abs(weight), n)
            known_w = sum_by(index, np.abs(weight) * (neighbour_s != 0), n)
            quality = np.divide(known_w, total_w, out=np.ones(n), where=total_w > 0)
            for row, position in enumerate(rows):
                outcomes[position] = Prediction(
                    value={
                        "spin_flip_probability": float(flip[row]),
                        "flip_rate": float(rate[row]),
                        "local_field": json_float(local[row]),
                        "spin": int(s[row]),
                        "expected_spin": float(expected[row]),
                    },
                    quality=unit_interval(quality[row]),
                )
        return filled(outcomes)


def _target_spin(entity: Entity) -> float:
    if entity.attributes.get(SPIN) is None:
        raise InvalidEntityError(
            ErrorCode.MISSING_ATTRIBUTE, f"entity {entity.entity_id!r} has no 'spin' attribute"
        )
    spin = spin_of(entity)
    if spin is None:
        raise InvalidEntityError(
            ErrorCode.INVALID_INPUT,
            f"attribute 'spin' of entity {entity.entity_id!r} must be -1 or 1, "
            f"got {entity.attributes[SPIN]!r}",
        )
    return spin
