from __future__ import annotations

from typing import Any

import pytest

from tests.support.data import ring_entities
from tests.support.pipeline import TENANT_A, Pipeline


def put_entities(
    pipeline: Pipeline, entities: list[dict[str, Any]], tenant: str = TENANT_A
) -> None:
    for start in range(0, len(entities), 1000):
        response = pipeline.api(
            "PUT", "/v1/entities", body={"entities": entities[start : start + 1000]}, tenant=tenant
        )
        assert response.status == 200, response


@pytest.fixture
def entities_1000(pipeline: Pipeline) -> list[dict[str, Any]]:
    entities = ring_entities(1000)
    put_entities(pipeline, entities)
    return entities
