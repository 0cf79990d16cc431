"""Submit Lambda: creates jobs and fans them out; cancels them."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from batchpredict.api import make_resolver, tenant
from batchpredict.models import SubmitJobRequest
from batchpredict.observability import logger, metrics, tracer
from batchpredict.service import jobs
from batchpredict.service.submit import submit_job
from batchpredict.store import stores

app = make_resolver()


def _accepted(body: dict[str, Any]) -> Response[dict[str, Any]]:
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=body)


@app.post("/v1/jobs")
@tracer.capture_method
def create_job(request: Annotated[SubmitJobRequest, Body()]) -> Response[dict[str, Any]]:
    return _accepted(submit_job(stores(), tenant(app), request))


@app.post("/v1/predict/batch/<prediction_type>")
@tracer.capture_method
def predict_batch(
    prediction_type: Annotated[str, Path(max_length=64)],
    request: Annotated[SubmitJobRequest, Body()],
) -> Response[dict[str, Any]]:
    return _accepted(submit_job(stores(), tenant(app), request, path_type=prediction_type))


@app.post("/v1/jobs/<job_id>/cancel")
@tracer.capture_method
def cancel(job_id: Annotated[str, Path(max_length=128)]) -> Response[dict[str, Any]]:
    return _accepted(jobs.cancel_job(stores(), tenant(app), job_id))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
