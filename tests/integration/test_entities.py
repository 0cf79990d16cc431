from __future__ import annotations

from tests.support.pipeline import TENANT_B, Pipeline


def test_put_get_delete_entity_round_trip_with_version(pipeline: Pipeline) -> None:
    entity = {
        "entity_id": "a-1",
        "attributes": {"spin": 1, "community": "north"},
        "neighbours": [{"entity_id": "a-2", "weight": 0.5}],
        "time_series": [0.1, 0.2],
    }
    put = pipeline.api("PUT", "/v1/entities", body={"entities": [entity]})
    assert put.status == 200
    version = put.body["entities"][0]["version"]

    got = pipeline.api("GET", "/v1/entities/a-1").body
    assert {k: got[k] for k in entity} == entity
    assert got["version"] == version

    same = pipeline.api("PUT", "/v1/entities", body={"entities": [entity]}).body
    assert same["entities"][0]["version"] == version  # unchanged content, unchanged version
    entity["attributes"]["spin"] = -1
    changed = pipeline.api("PUT", "/v1/entities", body={"entities": [entity]}).body
    assert changed["entities"][0]["version"] != version

    assert pipeline.api("GET", "/v1/entities/a-1", tenant=TENANT_B).status == 404
    assert pipeline.api("DELETE", "/v1/entities/a-1", tenant=TENANT_B).status == 404
    assert pipeline.api("DELETE", "/v1/entities/a-1").status == 204
    assert pipeline.api("GET", "/v1/entities/a-1").status == 404
    assert pipeline.api("DELETE", "/v1/entities/a-1").status == 404


def test_put_1000_entities_in_one_call(pipeline: Pipeline) -> None:
    from tests.support.data import ring_entities

    response = pipeline.api("PUT", "/v1/entities", body={"entities": ring_entities(1000)})
    assert response.status == 200
    assert response.body["upserted"] == 1000
