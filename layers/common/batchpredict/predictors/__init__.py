"""Built-in predictors. Importing this package registers them all.

To add a model: write one module with a `@register`ed Predictor subclass and import it here.
"""

from batchpredict.predictors import cascade, ews, ising  # noqa: F401  (registration)
from batchpredict.predictors.base import (
    EntityGraph,
    Outcome,
    Prediction,
    PredictionError,
    Predictor,
    PredictorParams,
)
from batchpredict.predictors.registry import (
    UnknownPredictionTypeError,
    get_predictor,
    prediction_types,
    register,
)

__all__ = [
    "EntityGraph",
    "Outcome",
    "Prediction",
    "PredictionError",
    "Predictor",
    "PredictorParams",
    "UnknownPredictionTypeError",
    "get_predictor",
    "prediction_types",
    "register",
]
