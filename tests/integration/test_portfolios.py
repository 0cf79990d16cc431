"""Portfolios: named entity sets, refreshed on schedule, never twice at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from batchpredict.predictors import get_predictor
from batchpredict.service.portfolios import refresh_due
from batchpredict.store import stores
from tests.integration.conftest import put_entities
from tests.support.data import ids, ring_entities
from tests.support.handlers import invoke
from tests.support.pipeline import TENANT_B, Pipeline


def portfolio(entity_ids: list[str], interval: int | None = 5) -> dict[str, Any]:
    return {
        "name": "north region",
        "entity_ids": entity_ids,
        "predictions": [{"prediction_type": "ising", "parameters": {"temperature": 1.5}}],
        "refresh_interval_minutes": interval,
    }


def test_portfolio_crud_is_tenant_scoped(pipeline: Pipeline) -> None:
    entities = ring_entities(10)
    put_entities(pipeline, entities)
    put = pipeline.api("PUT", "/v1/portfolios/north", body=portfolio(ids(entities)))
    assert put.status == 200
    assert put.body["entity_count"] == 10
    assert pipeline.api("GET", "/v1/portfolios/north").body["entity_ids"] == ids(entities)
    assert [
        p["portfolio_id"] for p in pipeline.api("GET", "/v1/portfolios").body["portfolios"]
    ] == ["north"]
    assert pipeline.api("GET", "/v1/portfolios/north", tenant=TENANT_B).status == 404
    assert pipeline.api("GET", "/v1/portfolios", tenant=TENANT_B).body["portfolios"] == []
    assert pipeline.api("DELETE", "/v1/portfolios/north").status == 204
    assert pipeline.api("GET", "/v1/portfolios/north").status == 404


def test_portfolio_bad_input_names_the_field(pipeline: Pipeline) -> None:
    put_entities(pipeline, ring_entities(3))
    bad_type = portfolio(["e00000"]) | {"predictions": [{"prediction_type": "nope"}]}
    response = pipeline.api("PUT", "/v1/portfolios/p", body=bad_type)
    assert response.status == 400
    assert response.body["error"]["fields"][0]["path"] == "predictions[0].prediction_type"
    unknown = pipeline.api("PUT", "/v1/portfolios/p", body=portfolio(["e00000", "ghost"]))
    assert unknown.status == 422
    assert unknown.body["error"]["fields"][0]["path"] == "entity_ids[1]"
    interval = pipeline.api("PUT", "/v1/portfolios/p", body=portfolio(["e00000"], interval=0))
    assert interval.status == 400


def test_submit_with_portfolio_id_predicts_its_entities(pipeline: Pipeline) -> None:
    entities = ring_entities(30)
    put_entities(pipeline, entities)
    pipeline.api("PUT", "/v1/portfolios/all", body=portfolio(ids(entities), interval=None))
    response = pipeline.api(
        "POST", "/v1/jobs", body={"prediction_type": "ews", "portfolio_id": "all"}
    )
    assert response.status == 202
    assert response.body["total_items"] == 30
    assert (
        pipeline.api(
            "POST", "/v1/jobs", body={"prediction_type": "ews", "portfolio_id": "nope"}
        ).status
        == 404
    )


def test_submit_with_portfolio_id_takes_its_parameters_unless_the_request_gives_some(
    pipeline: Pipeline,
) -> None:
    entities = ring_entities(5)
    put_entities(pipeline, entities)
    pipeline.api("PUT", "/v1/portfolios/north", body=portfolio(ids(entities), interval=None))

    own = pipeline.submit(prediction_type="ising", portfolio_id="north").body
    given = pipeline.submit(
        prediction_type="ising", portfolio_id="north", parameters={"temperature": 3.0}
    ).body
    other_type = pipeline.submit(prediction_type="ews", portfolio_id="north").body

    assert own["parameters"]["temperature"] == 1.5
    assert given["parameters"]["temperature"] == 3.0
    assert other_type["parameters"] == get_predictor("ews").parse_params({}).model_dump(mode="json")


def test_scheduled_refresh_runs_due_portfolio_once_and_not_while_running(
    pipeline: Pipeline,
) -> None:
    entities = ring_entities(40)
    put_entities(pipeline, entities)
    pipeline.api("PUT", "/v1/portfolios/north", body=portfolio(ids(entities)))
    t0 = datetime.now(UTC) + timedelta(seconds=1)

    first = refresh_due(stores(), now=t0)
    assert len(first) == 1
    assert refresh_due(stores(), now=t0) == []  # not due again within the interval
    # Due again 5 minutes later, but the first refresh has not run yet: never two at once.
    assert refresh_due(stores(), now=t0 + timedelta(minutes=5, seconds=1)) == []

    pipeline.drain()
    assert pipeline.api("GET", f"/v1/jobs/{first[0]}").body["status"] == "COMPLETED"
    second = refresh_due(stores(), now=t0 + timedelta(minutes=5, seconds=2))
    assert len(second) == 1
    assert second != first
    pipeline.drain()
    status = pipeline.api("GET", f"/v1/jobs/{second[0]}").body
    assert status["counts"]["cached"] == 40  # nothing changed: the refresh cost nothing new
    assert status["metadata"] == {"trigger": "schedule", "portfolio_id": "north"}


def test_refresh_lambda_on_schedule_event_submits_due_portfolio(pipeline: Pipeline) -> None:
    entities = ring_entities(5)
    put_entities(pipeline, entities)
    pipeline.api("PUT", "/v1/portfolios/p", body=portfolio(ids(entities)))
    event = {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": datetime.now(UTC).isoformat(),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/refresh"],
        "detail": {},
    }
    import time

    time.sleep(0.01)
    summary = invoke("refresh", event)
    assert len(summary["portfolio_jobs_submitted"]) == 1
