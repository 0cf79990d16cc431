"""Status Lambda: job progress from the job's counters, results, the tenant's job list."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from batchpredict.api import make_resolver, tenant
from batchpredict.constants import ItemStatus, JobStatus
from batchpredict.models import ListJobsQuery, ResultsQuery
from batchpredict.observability import logger, metrics, tracer
from batchpredict.service import jobs, report
from batchpredict.store import stores

app = make_resolver()
JobId = Annotated[str, Path(max_length=128)]


@app.get("/v1/jobs")
@tracer.capture_method
def list_jobs(
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    next_token: Annotated[str | None, Query(max_length=2048)] = None,
    status: Annotated[JobStatus | None, Query()] = None,
    prediction_type: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    query = ListJobsQuery(
        limit=limit, next_token=next_token, status=status, prediction_type=prediction_type
    )
    return jobs.list_jobs(stores(), tenant(app), query)


@app.get("/v1/jobs/<job_id>")
@tracer.capture_method
def get_job(job_id: JobId) -> dict[str, Any]:
    return jobs.job_status(stores(), tenant(app), job_id)


@app.get("/v1/jobs/<job_id>/results")
@tracer.capture_method
def get_results(
    job_id: JobId,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    next_token: Annotated[str | None, Query(max_length=2048)] = None,
    status: Annotated[ItemStatus | None, Query()] = None,
) -> dict[str, Any]:
    query = ResultsQuery(limit=limit, next_token=next_token, status=status)
    return jobs.job_results(stores(), tenant(app), job_id, query)


@app.get("/v1/jobs/<job_id>/events")
@tracer.capture_method
def get_events(job_id: JobId) -> dict[str, Any]:
    return jobs.job_events(stores(), tenant(app), job_id)


@app.get("/v1/jobs/<job_id>/report")
@tracer.capture_method
def get_report(job_id: JobId) -> dict[str, Any]:
    return report.job_report(stores(), tenant(app), job_id)


@app.get("/v1/stats")
@tracer.capture_method
def get_stats(days: Annotated[int, Query(ge=1, le=90)] = 7) -> dict[str, Any]:
    return report.tenant_stats(stores(), tenant(app), days)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
