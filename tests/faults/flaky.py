"""`flaky`: the real ising predictor, with seeded transient, permanent and crashing failures.

Registered once per process by tests/faults/conftest.py through the registry's `@register`, the
way a real model is added. What it does to an entity is decided by a hash of (seed, entity id),
so a run is reproducible from its seed whatever order chunks arrive in:

- `transient`: the first k calls for the entity return PredictionError.retryable (k in 1..16, so
  some recover inline, some in a retry chunk, some exhaust max_attempts);
- `permanent`: every call returns PredictionError.permanent(INVALID_INPUT);
- `crash`: every call raises (safe_predict turns that into a permanent predictor_error);
- `hang`: the call takes longer than the invocation has left (the Lambda is killed);
- otherwise the ising prediction, unchanged.

Every call costs virtual time (tests/faults/injector.py: VirtualClock), so slow predictions use
up the invocation's remaining time the way real ones do.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from batchpredict.constants import ErrorCode
from batchpredict.entities import Entity
from batchpredict.predictors import (
    EntityGraph,
    Outcome,
    PredictionError,
    Predictor,
    get_predictor,
    prediction_types,
    register,
)
from batchpredict.predictors.ising import IsingParams

FLAKY = "flaky"
TRANSIENT_CODE = "model_unavailable"
PREDICT_MS_PER_ENTITY = 1.0
HANG_MS = 15 * 60 * 1000  # longer than any Lambda may run


def unit(*parts: object) -> float:
    """A uniform number in [0, 1) from a hash of `parts`: stable across runs and processes."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass
class FlakyBehaviour:
    """What the flaky predictor does in the current run (reset by every run)."""

    seed: int = 0
    transient: float = 0.0
    permanent: float = 0.0
    crash: float = 0.0
    # explicit behaviours, whatever the rates say: entity id -> transient failures before
    # success (a huge number: never succeeds); ids that fail permanently, crash, hang
    fail_times: dict[str, int] = field(default_factory=dict)
    permanent_ids: frozenset[str] = frozenset()
    crash_ids: frozenset[str] = frozenset()
    hang: frozenset[str] = frozenset()
    clock: Any = None  # a VirtualClock; None: time is free
    calls: Counter[str] = field(default_factory=Counter)
    transient_errors: int = 0
    permanent_errors: int = 0
    crashes: int = 0

    def kind(self, entity_id: str) -> str:
        if entity_id in self.hang:
            return "hang"
        if entity_id in self.fail_times:
            return "transient"
        if entity_id in self.permanent_ids:
            return "permanent"
        if entity_id in self.crash_ids:
            return "crash"
        u = unit(self.seed, "flaky", entity_id)
        for name, rate in (
            ("permanent", self.permanent),
            ("crash", self.crash),
            ("transient", self.transient),
        ):
            if u < rate:
                return name
            u -= rate
        return "ok"

    def transient_failures(self, entity_id: str) -> int:
        """How many calls fail before the entity's prediction succeeds."""
        if entity_id in self.fail_times:
            return self.fail_times[entity_id]
        return 1 + int(unit(self.seed, "k", entity_id) * 16)


BEHAVIOUR = FlakyBehaviour()


class PredictorCrashError(RuntimeError):
    pass


class FlakyPredictor(Predictor[IsingParams]):
    prediction_type = FLAKY
    version = "flaky-1"
    params_model = IsingParams
    cache_ttl_seconds = 3600
    description = "ising with seeded failures (fault-injection tests only)"

    def neighbour_hops(self, params: IsingParams) -> int:
        return get_predictor("ising").neighbour_hops(params)

    def predict_batch(
        self, entities: Sequence[Entity], params: IsingParams, graph: EntityGraph
    ) -> list[Outcome]:
        b = BEHAVIOUR
        if b.clock is not None:
            b.clock.advance(PREDICT_MS_PER_ENTITY * len(entities))
        kinds = [b.kind(e.entity_id) for e in entities]
        for entity, kind in zip(entities, kinds, strict=True):
            b.calls[entity.entity_id] += 1
            if kind == "hang" and b.clock is not None:
                b.clock.advance(HANG_MS)
            if kind == "crash":
                b.crashes += 1
                raise PredictorCrashError(f"model crashed on {entity.entity_id}")
        outcomes = get_predictor("ising").predict_batch(entities, params, graph)
        out: list[Outcome] = []
        for entity, kind, outcome in zip(entities, kinds, outcomes, strict=True):
            if kind == "permanent":
                b.permanent_errors += 1
                out.append(
                    PredictionError.permanent(
                        ErrorCode.INVALID_INPUT, f"flaky: {entity.entity_id} is unusable"
                    )
                )
            elif kind == "transient" and b.calls[entity.entity_id] <= b.transient_failures(
                entity.entity_id
            ):
                b.transient_errors += 1
                out.append(
                    PredictionError.retryable(TRANSIENT_CODE, "flaky: model endpoint timed out")
                )
            else:
                out.append(outcome)
        return out


def register_flaky() -> None:
    """Register `flaky` once per process (the registry refuses a second registration)."""
    if FLAKY not in prediction_types():
        register(FlakyPredictor)


def configure(**changes: Any) -> FlakyBehaviour:
    """Start a run: forget the previous run's calls and set this one's behaviour."""
    global BEHAVIOUR
    BEHAVIOUR = FlakyBehaviour(**changes)
    return BEHAVIOUR
