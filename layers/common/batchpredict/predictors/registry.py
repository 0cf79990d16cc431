"""Maps a prediction type to its predictor."""

from __future__ import annotations

from typing import Any, TypeVar

from batchpredict.predictors.base import Predictor

_PREDICTORS: dict[str, Predictor[Any]] = {}

T = TypeVar("T", bound=type[Predictor[Any]])


class UnknownPredictionTypeError(LookupError):
    def __init__(self, prediction_type: str) -> None:
        super().__init__(prediction_type)
        self.prediction_type = prediction_type


def register(cls: T) -> T:
    """Class decorator: `@register class MyPredictor(Predictor[MyParams]): ...`."""
    instance = cls()
    if instance.prediction_type in _PREDICTORS:
        raise ValueError(f"prediction type {instance.prediction_type!r} registered twice")
    _PREDICTORS[instance.prediction_type] = instance
    return cls


def get_predictor(prediction_type: str) -> Predictor[Any]:
    try:
        return _PREDICTORS[prediction_type]
    except KeyError:
        raise UnknownPredictionTypeError(prediction_type) from None


def prediction_types() -> list[str]:
    return sorted(_PREDICTORS)
