"""Logger, Tracer and Metrics, created once for every function of the service."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)


class _EMFProvider(AmazonCloudWatchEMFProvider):
    """Powertools' EMF provider, minus a leak when POWERTOOLS_METRICS_DISABLED is set.

    Disabled, it skips the flush but keeps the values, and prints them as EMF once a metric
    holds 100 values (a long-running local stack shows stray JSON blobs). Drop them instead.
    """

    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
        super().flush_metrics(raise_on_empty_metrics=raise_on_empty_metrics)
        if is_metrics_disabled():
            self.clear_metrics()


logger = Logger()
tracer = Tracer()
metrics = Metrics()
metrics.provider = _EMFProvider(
    metric_set=metrics.metric_set,
    dimension_set=metrics.dimension_set,
    metadata_set=metrics.metadata_set,
    default_dimensions=metrics.default_dimensions,
)
