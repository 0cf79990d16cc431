"""Environment settings: one pydantic model, validated once per process and cached."""

from functools import cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from batchpredict import constants as c


class Settings(BaseSettings):
    """Every environment variable the functions read. template.yaml sets them per function."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    jobs_table: str = "batchpredict-jobs"
    entities_table: str = "batchpredict-entities"
    cache_table: str = "batchpredict-cache"
    work_queue_url: str = ""
    # Where the DLQ function moves dead letters it cannot parse, for a human to look at.
    parking_queue_url: str = ""
    # The bucket input_uri may point into (the stack's InputBucket); empty: input_uri refused.
    input_bucket: str = ""
    event_bus_name: str = "default"
    stage: str = "dev"

    chunk_size: int = Field(default=25, ge=c.MIN_CHUNK_SIZE, le=c.MAX_CHUNK_SIZE)
    counter_shards: int = Field(default=16, ge=1, le=64)
    job_retention_days: int = Field(default=30, ge=1, le=3650)
    max_attempts: int = Field(default=5, ge=1, le=20)
    # Retries inside one invocation before the still-failing items are re-enqueued.
    inline_retries: int = Field(default=2, ge=0, le=10)
    retry_base_delay_seconds: int = Field(default=5, ge=0, le=c.SQS_MAX_DELAY_SECONDS)
    # A chunk with no result this long after its job was dispatched is re-sent by the sweep.
    stuck_after_seconds: int = Field(default=900, ge=60)
    # Stop taking new chunks when less than this much of the invocation's time is left.
    time_safety_margin_ms: int = Field(default=10_000, ge=0)
    cache_ttl_overrides: dict[str, int] = Field(default_factory=dict)


@cache
def get_settings() -> Settings:
    return Settings()
