"""Refresh Lambda (EventBridge schedule): refreshes due portfolios, repairs stuck jobs."""

from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from batchpredict.observability import logger, metrics, tracer
from batchpredict.service.portfolios import refresh_due
from batchpredict.service.sweep import sweep_jobs
from batchpredict.store import stores


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    submitted = refresh_due(stores())
    report = sweep_jobs(stores())
    summary = {
        "portfolio_jobs_submitted": submitted,
        "jobs_checked": report.jobs_checked,
        "jobs_finished": report.jobs_finished,
        "chunks_redispatched": report.redispatched,
    }
    logger.info("refresh done", extra=summary)
    return summary
