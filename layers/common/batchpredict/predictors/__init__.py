"""Built-in predictors. Importing this package registers them all.

To add a model: write one module with a `@register`ed Predictor subclass and import it here.
"""

# Importing a module registers its predictor.
from batchpredict.predictors import cascade as cascade
from batchpredict.predictors import ews as ews
from batchpredict.predictors import ising as ising
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
