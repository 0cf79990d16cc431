from datetime import UTC, datetime, timedelta

import pytest

from batchpredict.constants import JobStatus
from batchpredict.errors import BadRequestError
from batchpredict.service import tokens
from batchpredict.store.jobs import (
    ChunkResult,
    Counts,
    Job,
    ResultRow,
    decode_rows,
    encode_rows,
)
from batchpredict.views import job_view


def make_job(**overrides: object) -> Job:
    fields: dict[str, object] = {
        "tenant": "t",
        "job_id": "j-1",
        "prediction_type": "ising",
        "predictor_version": "1",
        "parameters": {},
        "total_items": 100,
        "chunk_size": 25,
        "chunk_count": 4,
        "counter_shards": 4,
        "created_at": "2026-11-24T12:00:00.000Z",
        "expires_at": 0,
    }
    fields.update(overrides)
    return Job(**fields)  # type: ignore[arg-type]


def test_token_round_trips_within_its_scope() -> None:
    token = tokens.encode({"scope": "results:j-1:", "sk": "RESULT#000003", "offset": 7})
    assert tokens.decode(token, scope="results:j-1:") == {
        "scope": "results:j-1:",
        "sk": "RESULT#000003",
        "offset": 7,
    }


@pytest.mark.parametrize("token", ["not-base64!!", "e30", tokens.encode({"scope": "results:j-2:"})])
def test_token_foreign_or_garbled_is_400_invalid_token(token: str) -> None:
    with pytest.raises(BadRequestError) as raised:
        tokens.decode(token, scope="results:j-1:")
    assert raised.value.code == "invalid_token"
    assert raised.value.fields[0].path == "next_token"


def test_result_rows_round_trip_compressed() -> None:
    rows = [
        ResultRow("a", "succeeded", {"p": 0.25}, None, 0.9, True, 1, 0.5),
        ResultRow("b", "failed", None, {"code": "x", "message": "y"}, None, False, 3, 0.0),
    ]
    blob = encode_rows(rows)
    assert decode_rows(blob) == rows
    assert len(blob) < len(str([r.to_compact() for r in rows]).encode()) + 64


def test_chunk_result_counts_cached_successes_and_retries() -> None:
    from batchpredict.chunking import Chunk

    result = ChunkResult(
        "000001",
        (
            ResultRow("a", "succeeded", {}, cached=True),
            ResultRow("b", "succeeded", {}),
            ResultRow("c", "failed", error={"code": "x", "message": "m"}),
        ),
        retry=Chunk("000001.r2", ("d", "e"), attempt=2),
    )
    assert result.counts() == {
        "succeeded": 2, "failed": 1, "cancelled": 0, "cached": 1, "retried": 2,
    }  # fmt: skip


def test_job_view_progress_throughput_and_eta() -> None:
    now = datetime(2026, 11, 24, 12, 0, 10, tzinfo=UTC)
    job = make_job(status=JobStatus.PROCESSING, started_at="2026-11-24T12:00:00.000Z")
    view = job_view(job, Counts(total=100, succeeded=40, failed=10, cached=20), now=now)
    assert view["progress"] == 0.5
    assert view["counts"]["pending"] == 50
    assert view["throughput_items_per_second"] == 5.0
    assert view["estimated_completion"] == (now + timedelta(seconds=10)).isoformat(
        timespec="milliseconds"
    ).replace("+00:00", "Z")
    assert view["cache_hit_rate"] == 0.5


def test_job_view_of_finished_job_estimates_its_finish() -> None:
    job = make_job(
        status=JobStatus.COMPLETED,
        started_at="2026-11-24T12:00:00.000Z",
        finished_at="2026-11-24T12:00:04.000Z",
    )
    view = job_view(job, Counts(total=100, succeeded=100))
    assert view["progress"] == 1.0
    assert view["estimated_completion"] == "2026-11-24T12:00:04.000Z"
    assert view["throughput_items_per_second"] == 25.0
