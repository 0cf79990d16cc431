"""DLQ Lambda: a dead-lettered chunk's items become failed results, so its job still ends."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from batchpredict.constants import Metric
from batchpredict.observability import logger, metrics, tracer
from batchpredict.service.dlq import park_dead_letter, record_dead_letter
from batchpredict.service.worker import UnparseableChunkError
from batchpredict.store import stores

# A batch in which every record failed is a partial response like any other, not a crash.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def handle(record: SQSRecord) -> None:
    try:
        record_dead_letter(stores(), record.body, int(record.attributes.approximate_receive_count))
    except UnparseableChunkError as error:
        # Kept, not dropped: parked for a human. If parking fails this raises, and the
        # letter stays in the DLQ to be tried again.
        logger.error("unparseable dead letter parked", extra={"body": record.body[:4096]})
        metrics.add_metric(name=Metric.UNPARSEABLE_DEAD_LETTERS, unit=MetricUnit.Count, value=1)
        park_dead_letter(stores(), record.body, record.message_id, str(error))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=handle, processor=processor, context=context
    )
