"""Names and limits used by code, template checks and tests alike: one place for each."""

from enum import StrEnum
from typing import Final


class JobStatus(StrEnum):
    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    COMPLETED_WITH_ERRORS = "COMPLETED_WITH_ERRORS"
    FAILED = "FAILED"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES: Final = frozenset(
    {JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_ERRORS, JobStatus.FAILED, JobStatus.CANCELLED}
)
# A job in one of these still accepts chunk results that predict; CANCELLING only cancels.
ACTIVE_STATUSES: Final = frozenset({JobStatus.QUEUED, JobStatus.PROCESSING})


class ItemStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class ErrorCode(StrEnum):
    """Machine-readable codes in 4xx bodies and in failed items' `error.code`."""

    # request errors
    VALIDATION_ERROR = "validation_error"
    MALFORMED_JSON = "malformed_json"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNKNOWN_PREDICTION_TYPE = "unknown_prediction_type"
    UNKNOWN_ENTITIES = "unknown_entities"
    DUPLICATE_ENTITY_IDS = "duplicate_entity_ids"
    INVALID_PARAMETERS = "invalid_parameters"
    INVALID_TOKEN = "invalid_token"
    INVALID_INPUT_FILE = "invalid_input_file"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    JOB_FINISHED = "job_finished"
    UNAUTHENTICATED = "unauthenticated"
    # answered by API Gateway itself (template.yaml's GatewayResponses) or on an unexpected error
    FORBIDDEN = "forbidden"
    THROTTLED = "throttled"
    BAD_REQUEST = "bad_request"
    INTERNAL_ERROR = "internal_error"
    # item errors
    ENTITY_NOT_FOUND = "entity_not_found"
    MISSING_ATTRIBUTE = "missing_attribute"
    INVALID_INPUT = "invalid_input"
    PREDICTOR_ERROR = "predictor_error"
    TRANSIENT_EXHAUSTED = "transient_retries_exhausted"
    DEAD_LETTERED = "dead_lettered"
    RESULT_TOO_LARGE = "result_too_large"
    CANCELLED = "cancelled"
    FAILURE_TOLERANCE_EXCEEDED = "failure_tolerance_exceeded"


class Metric(StrEnum):
    """Custom CloudWatch metric names (EMF). The dashboard and alarms name only these."""

    JOBS_CREATED = "JobsCreated"
    JOBS_COMPLETED = "JobsCompleted"
    JOBS_FAILED = "JobsFailed"
    JOBS_CANCELLED = "JobsCancelled"
    ITEMS_SUCCEEDED = "ItemsSucceeded"
    ITEMS_FAILED = "ItemsFailed"
    ITEMS_CANCELLED = "ItemsCancelled"
    CACHE_HITS = "CacheHits"
    CACHE_MISSES = "CacheMisses"
    RETRIES = "Retries"
    DUPLICATE_CHUNKS = "DuplicateChunks"
    DEAD_LETTERED_CHUNKS = "DeadLetteredChunks"
    UNPARSEABLE_DEAD_LETTERS = "UnparseableDeadLetters"
    PREDICTION_LATENCY = "PredictionLatency"
    CHUNK_LATENCY = "ChunkLatency"
    JOB_DURATION = "JobDuration"
    SUBMIT_LATENCY = "SubmitLatency"
    STUCK_CHUNKS_REDISPATCHED = "StuckChunksRedispatched"


# Request limits (public contract, DESIGN.md)
MAX_ENTITY_IDS_PER_JOB: Final = 10_000
# input_uri: an S3 JSONL object in the stack's input bucket, one entity per line.
MAX_INPUT_LINES: Final = 1_000_000
MAX_INPUT_BYTES: Final = 256 * 1024 * 1024
MAX_INPUT_URI_LINES: Final = 1_000_000
MAX_ENTITIES_PER_PUT: Final = 1_000
MAX_METADATA_PAIRS: Final = 16
MAX_ID_LENGTH: Final = 128
MAX_BODY_BYTES: Final = 6 * 1024 * 1024  # Lambda's synchronous payload limit
MAX_RESULTS_PAGE: Final = 1_000
DEFAULT_RESULTS_PAGE: Final = 100
MIN_CHUNK_SIZE: Final = 1
MAX_CHUNK_SIZE: Final = 100

# AWS service limits that moto does not enforce (tests/limits.py enforces them).
DDB_BATCH_WRITE_MAX: Final = 25
DDB_BATCH_GET_MAX: Final = 100
DDB_TRANSACT_MAX: Final = 100
DDB_ITEM_MAX_BYTES: Final = 400 * 1024
SQS_BATCH_MAX: Final = 10
SQS_MESSAGE_MAX_BYTES: Final = 256 * 1024
SQS_MAX_DELAY_SECONDS: Final = 900

# EventBridge
EVENT_SOURCE: Final = "batchpredict"
EVENT_JOB_COMPLETED: Final = "JobCompleted"
EVENT_JOB_FAILED: Final = "JobFailed"
EVENT_JOB_CANCELLED: Final = "JobCancelled"
# How long one caller holds the right to announce a job's end before another may take over.
ANNOUNCE_LEASE_SECONDS: Final = 60
