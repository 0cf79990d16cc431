"""The predictor contract. Adding a model is one module and one registration (registry.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from batchpredict.constants import ErrorCode
from batchpredict.entities import Entity


class PredictorParams(BaseModel):
    """Base of every predictor's parameter model: unknown parameters are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


P = TypeVar("P", bound=PredictorParams)


@dataclass(frozen=True, slots=True)
class Prediction:
    """A successful prediction for one entity. `value` is JSON-serialisable."""

    value: Mapping[str, Any]
    quality: float | None = None  # in [0, 1] where the predictor can judge it


@dataclass(frozen=True, slots=True)
class PredictionError:
    """A failed prediction for one entity.

    `transient` errors (a model endpoint timing out, throttling) are retried with backoff;
    permanent ones (bad input, a missing attribute) fail the item at once.
    """

    code: str
    message: str
    transient: bool = False

    @classmethod
    def permanent(cls, code: ErrorCode | str, message: str) -> PredictionError:
        return cls(str(code), message, transient=False)

    @classmethod
    def retryable(cls, code: ErrorCode | str, message: str) -> PredictionError:
        return cls(str(code), message, transient=True)


Outcome = Prediction | PredictionError


@dataclass(frozen=True, slots=True)
class EntityGraph:
    """The entities a predictor may read: the targets and the neighbourhood loaded for them.

    `entities` maps id -> Entity for every entity loaded (targets included). A neighbour that does
    not exist is absent from the mapping; predictors decide how that lowers quality.
    """

    entities: Mapping[str, Entity] = field(default_factory=dict)

    def get(self, entity_id: str) -> Entity | None:
        return self.entities.get(entity_id)


class Predictor(Generic[P]):
    """Subclass, set the class attributes, implement `predict_batch`, and register it.

    predict_batch gets the chunk's target entities (all exist), the validated parameters and the
    loaded graph, and returns exactly one Outcome per target, in order. It should be vectorised
    where the model allows, and must not raise for one bad entity: return a PredictionError.
    """

    prediction_type: ClassVar[str]
    version: ClassVar[str]
    params_model: ClassVar[type[PredictorParams]]
    cache_ttl_seconds: ClassVar[int]
    description: ClassVar[str] = ""

    def neighbour_hops(self, params: P) -> int:
        """How many hops of the entity graph around each target the predictor reads."""
        return 0

    def input_ids(self, target: Entity, graph: EntityGraph, params: P) -> Sequence[str]:
        """The ids of exactly the entities whose content this target's prediction depends on.

        The cache fingerprints their versions, so a change to any of them misses the cache.
        Default: the target and its loaded neighbourhood within neighbour_hops.
        """
        hops = self.neighbour_hops(params)
        seen = {target.entity_id}
        frontier = [target]
        for _ in range(hops):
            nxt = []
            for entity in frontier:
                for n in entity.neighbours:
                    if n.entity_id not in seen:
                        seen.add(n.entity_id)
                        loaded = graph.get(n.entity_id)
                        if loaded is not None:
                            nxt.append(loaded)
            frontier = nxt
        return sorted(seen)

    def parse_params(self, raw: Mapping[str, Any] | None) -> P:
        return self.params_model.model_validate(raw or {})  # type: ignore[return-value]

    def predict_batch(
        self, entities: Sequence[Entity], params: P, graph: EntityGraph
    ) -> list[Outcome]:
        raise NotImplementedError
