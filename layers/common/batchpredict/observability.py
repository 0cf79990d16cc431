"""Logger, Tracer and Metrics, created once for every function of the service."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
