"""Worker Lambda: predicts the chunks of an SQS batch; reports failed chunks individually."""

from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from batchpredict.observability import logger, metrics, tracer
from batchpredict.service.worker import BatchWork, Clock
from batchpredict.store import stores

# A batch in which every record failed is a partial response like any other, not a crash.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    work = BatchWork(stores(), Clock(remaining_ms=context.get_remaining_time_in_millis))
    work.prepare(record["body"] for record in event.get("Records", []))

    def handle(record: SQSRecord) -> None:
        work.handle(record.message_id, record.body)

    response = process_partial_response(
        event=event, record_handler=handle, processor=processor, context=context
    )
    # The batch's results are written together once every chunk has run; a chunk whose write
    # failed joins the batch item failures.
    unrecorded = work.finish()
    response["batchItemFailures"] += [{"itemIdentifier": m} for m in unrecorded]
    return response
