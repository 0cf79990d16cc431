"""The submission's existence check: a range read where the asked ids are dense, point reads where
they are sparse, and the same answer either way."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from batchpredict import aws, store
from tests.integration.conftest import put_entities
from tests.support.data import ring_entities
from tests.support.pipeline import TENANT_A, TENANT_B, Pipeline


class DynamoCalls:
    """Every DynamoDB call of the functions' client: by operation, and the items Queries read."""

    def __init__(self) -> None:
        self.operations: Counter[str] = Counter()
        self.query_items_read = 0

    def __call__(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        self.operations[model.name] += 1
        if model.name == "Query":
            self.query_items_read += parsed.get("ScannedCount", 0)


@pytest.fixture
def calls() -> Iterator[DynamoCalls]:
    counter = DynamoCalls()
    events = aws.client("dynamodb").meta.events
    events.register("after-call.dynamodb", counter)
    try:
        yield counter
    finally:
        events.unregister("after-call.dynamodb", counter)


@pytest.fixture
def stored(pipeline: Pipeline) -> list[str]:
    """2,000 entities e00000..e01999 of tenant A, and e05000 of tenant B only."""
    put_entities(pipeline, ring_entities(2000))
    put_entities(pipeline, ring_entities(5001)[-1:], tenant=TENANT_B)
    return [f"e{i:05d}" for i in range(2000)]


def missing(ids: list[str]) -> list[str]:
    return store.stores().entities.missing(TENANT_A, ids)


def test_dense_ids_are_checked_by_a_range_read(stored: list[str], calls: DynamoCalls) -> None:
    ids = stored[500:1500]
    ghosts = ["e00999.5", "e01499x"]  # inside the range, and at its end
    asked = [*ids[:300], ghosts[0], *ids[300:], *ghosts[1:]]

    assert missing(asked) == ghosts

    assert calls.operations == {"Query": 3}  # pages of 100, 400, then the last 502
    assert calls.query_items_read == 1000  # nothing outside the asked range


def test_sparse_ids_fall_back_to_point_reads_after_one_small_page(
    stored: list[str], calls: DynamoCalls
) -> None:
    asked = [*stored[::10], "e01999z", "e00000a"]  # 1 in 10 of the range is asked for

    assert missing(asked) == ["e01999z", "e00000a"]

    assert calls.operations["Query"] == 1
    assert calls.query_items_read <= 100
    assert calls.operations["BatchGetItem"] == 2  # ~190 ids the probe did not reach


@pytest.mark.parametrize("count", [1, 99, 100, 101, 200])
def test_answers_at_the_edges_of_the_probe_page(
    stored: list[str], calls: DynamoCalls, count: int
) -> None:
    ids = stored[:count]
    assert missing(ids) == []
    assert missing([*ids, "e00000-gone"]) == ["e00000-gone"]
    assert calls.operations["BatchGetItem"] == 0


def test_a_dense_run_then_a_sparse_tail_and_no_stored_ids(
    stored: list[str], calls: DynamoCalls
) -> None:
    asked = stored[:300] + stored[300::50] + ["e02000", "e09999"]
    assert missing(asked) == ["e02000", "e09999"]
    assert calls.operations["BatchGetItem"] == 1  # the tail, once the range thins out

    assert missing(["x-1", "x-2", "a"]) == ["x-1", "x-2", "a"]
    assert missing(["e05000"]) == ["e05000"]  # tenant B's entity is not tenant A's


def test_unknown_entities_in_a_dense_job_get_422_naming_each_index(
    pipeline: Pipeline, stored: list[str]
) -> None:
    ids = stored[:1000]
    ids[10], ids[990] = "e00010-old", "zz-new"
    response = pipeline.submit(prediction_type="ising", entity_ids=ids)
    assert response.status == 422
    assert response.body["error"]["code"] == "unknown_entities"
    assert [f["path"] for f in response.body["error"]["fields"]] == [
        "entity_ids[10]",
        "entity_ids[990]",
    ]
