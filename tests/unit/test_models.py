import pytest
from pydantic import ValidationError

from batchpredict.models import ChunkMessage, EntityIn, PutEntitiesRequest, SubmitJobRequest


def test_submit_request_needs_exactly_one_item_source() -> None:
    with pytest.raises(ValidationError):
        SubmitJobRequest(prediction_type="ising")
    with pytest.raises(ValidationError):
        SubmitJobRequest(prediction_type="ising", entity_ids=["a"], portfolio_id="p")
    assert SubmitJobRequest(prediction_type="ising", portfolio_id="p").portfolio_id == "p"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("entity_ids", []),
        ("entity_ids", [f"e{i}" for i in range(10_001)]),
        ("entity_ids", ["has space"]),
        ("entity_ids", ["x" * 129]),
        ("priority", "urgent"),
        ("tolerated_failure_percent", 101),
        ("metadata", {f"k{i}": "v" for i in range(17)}),
        ("chunk_size", 0),
        ("chunk_size", 101),
        ("unknown_field", 1),
    ],
)
def test_submit_request_bad_field_is_rejected_naming_it(field: str, value: object) -> None:
    body = {"prediction_type": "ising", "entity_ids": ["a"], field: value}
    with pytest.raises(ValidationError) as raised:
        SubmitJobRequest.model_validate(body)
    assert field in {str(e["loc"][0]) for e in raised.value.errors()}


def test_entity_rejects_non_finite_series_and_too_many_neighbours() -> None:
    with pytest.raises(ValidationError):
        EntityIn(entity_id="a", time_series=[1.0, float("nan")])
    with pytest.raises(ValidationError):
        EntityIn.model_validate(
            {"entity_id": "a", "neighbours": [{"entity_id": f"n{i}"} for i in range(1001)]}
        )


def test_put_entities_caps_a_call_at_1000() -> None:
    with pytest.raises(ValidationError):
        PutEntitiesRequest.model_validate(
            {"entities": [{"entity_id": f"e{i}"} for i in range(1001)]}
        )


def test_chunk_message_rejects_an_empty_chunk() -> None:
    with pytest.raises(ValidationError):
        ChunkMessage(tenant="t", job_id="j", chunk_id="000000", entity_ids=[])
