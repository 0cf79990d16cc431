"""The CLI's client library against the real API: the local stack, over HTTP."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import requests

from batchpredict_cli import client as client_module
from batchpredict_cli.client import ApiError, Client
from batchpredict_local import LocalStack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


@pytest.fixture
def client(local_stack: LocalStack) -> Client:
    return Client(local_stack.url, api_key=local_stack.api_key("demo"))


@pytest.fixture
def prefix() -> str:
    """Entity ids no other test uses: the session's stack is shared."""
    return f"cc-{uuid.uuid4().hex[:8]}"


def actors(prefix: str, n: int) -> list[dict[str, Any]]:
    """A ring of n actors with every attribute the built-in predictors read."""
    return [
        {
            "entity_id": f"{prefix}-{i:05d}",
            "attributes": {"spin": 1 if i % 3 else -1, "threshold": 0.3, "adopted": i == 0},
            "neighbours": [
                {"entity_id": f"{prefix}-{(i + 1) % n:05d}", "weight": 0.5},
                {"entity_id": f"{prefix}-{(i - 1) % n:05d}", "weight": 0.5},
            ],
            "time_series": [float((i * k) % 7) for k in range(30)],
        }
        for i in range(n)
    ]


def body_sizes(client: Client) -> list[int]:
    """The size of every request body the client sends from now on."""
    sizes: list[int] = []

    def record(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.request.method == "PUT":
            sizes.append(len(response.request.body or b""))

    client.session.hooks["response"].append(record)
    return sizes


def test_put_entities_2500_in_calls_of_at_most_1000_all_stored(client: Client, prefix: str) -> None:
    seen: list[int] = []

    answer = client.put_entities(actors(prefix, 2500), on_batch=seen.append)

    assert seen == [1000, 2000, 2500]
    assert answer["upserted"] == 2500
    assert {e["entity_id"] for e in answer["entities"]} == {
        f"{prefix}-{i:05d}" for i in range(2500)
    }
    assert client.get_entity(f"{prefix}-02499")["attributes"]["threshold"] == 0.3


def test_put_entities_large_bodies_split_by_size(
    client: Client, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # API Gateway refuses bodies over 6 MB; scaled down here: a 20 kB budget per call
    monkeypatch.setattr(client_module, "MAX_PUT_BYTES", 20_000)
    big = [{"entity_id": f"{prefix}-{i}", "time_series": [0.123456789] * 300} for i in range(30)]
    sizes = body_sizes(client)

    answer = client.put_entities(big)

    assert answer["upserted"] == 30
    assert len(sizes) >= 5
    assert max(sizes) <= 20_000
    assert len(client.get_entity(f"{prefix}-29")["time_series"]) == 300


def test_entity_id_with_colon_round_trips(client: Client, prefix: str) -> None:
    entity_id = f"ns:{prefix}:a"
    client.put_entities([{"entity_id": entity_id, "attributes": {"spin": -1}}])

    stored = client.get_entity(entity_id)

    assert (stored["entity_id"], stored["attributes"]) == (entity_id, {"spin": -1})


def test_delete_entity_then_get_raises_404(client: Client, prefix: str) -> None:
    client.put_entities(actors(prefix, 1))
    client.delete_entity(f"{prefix}-00000")

    with pytest.raises(ApiError) as caught:
        client.get_entity(f"{prefix}-00000")

    assert (caught.value.status, caught.value.code) == (404, "not_found")


def test_unknown_entities_error_names_their_field_paths(client: Client, prefix: str) -> None:
    client.put_entities(actors(prefix, 3))

    with pytest.raises(ApiError) as caught:
        client.submit_job("ising", entity_ids=[f"{prefix}-00000", "nope-1", "nope-2"])

    assert (caught.value.status, caught.value.code) == (422, "unknown_entities")
    assert caught.value.paths == ["entity_ids[1]", "entity_ids[2]"]
    assert str(caught.value).startswith("422 unknown_entities: ")


def test_invalid_parameters_error_names_parameter_path(client: Client, prefix: str) -> None:
    client.put_entities(actors(prefix, 1))

    with pytest.raises(ApiError) as caught:
        client.submit_job(
            "ising", entity_ids=[f"{prefix}-00000"], parameters={"temperature": "hot"}
        )

    assert (caught.value.status, caught.value.code) == (400, "invalid_parameters")
    assert any(path.startswith("parameters.temperature") for path in caught.value.paths)


def test_unknown_api_key_refused_by_gateway(local_stack: LocalStack) -> None:
    with pytest.raises(ApiError) as caught:
        next(Client(local_stack.url, api_key="stolen", retries=0).list_jobs())

    # API Gateway's INVALID_SIGNATURE response, shaped by the template's GatewayResponses
    assert (caught.value.status, caught.value.code) == (403, "unauthenticated")


def test_another_tenants_job_is_404(client: Client, local_stack: LocalStack, prefix: str) -> None:
    client.put_entities(actors(prefix, 2))
    job = client.submit_job("ews", entity_ids=[f"{prefix}-00000", f"{prefix}-00001"])
    other = Client(local_stack.url, api_key=local_stack.api_key("other"))

    with pytest.raises(ApiError) as caught:
        other.get_job(job["job_id"])

    assert caught.value.status == 404


def test_wait_for_job_then_results_over_pages_in_order(client: Client, prefix: str) -> None:
    entities = actors(prefix, 20)
    ids = [e["entity_id"] for e in entities]
    client.put_entities(entities)
    job = client.submit_job("ising", entity_ids=ids, chunk_size=5)
    updates: list[dict[str, Any]] = []
    pages = []

    final = client.wait_for_job(job["job_id"], interval=0.1, timeout=60, on_update=updates.append)
    client.session.hooks["response"].append(lambda r, *a, **k: pages.append(r.request.url))
    rows = list(client.iter_results(job["job_id"], page_size=7))

    assert final["status"] == "COMPLETED"
    assert final["counts"]["succeeded"] == 20
    done = [sum(u["counts"][k] for k in ("succeeded", "failed", "cancelled")) for u in updates]
    assert done == sorted(done)  # progress never goes back
    assert [r["entity_id"] for r in rows] == ids  # chunk order is submission order here
    assert len(pages) == 3


def test_iter_results_status_filter(client: Client, prefix: str) -> None:
    entities = actors(prefix, 4)
    entities[1]["neighbours"][0]["weight"] = -0.5  # the threshold model refuses a negative tie
    client.put_entities(entities)
    job = client.submit_job("cascade", entity_ids=[e["entity_id"] for e in entities])
    client.wait_for_job(job["job_id"], interval=0.1, timeout=60)

    failed = list(client.iter_results(job["job_id"], status="failed"))

    assert [r["entity_id"] for r in failed] == [f"{prefix}-00001"]
    assert failed[0]["error"]["code"]
    assert failed[0]["prediction"] is None


def test_list_jobs_newest_first_and_limit_across_pages(
    client: Client, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.put_entities(actors(prefix, 1))
    ids = [
        client.submit_job("ews", entity_ids=[f"{prefix}-00000"], use_cache=False)["job_id"]
        for _ in range(3)
    ]
    monkeypatch.setattr(client_module, "MAX_JOBS_PAGE", 2)  # 3 jobs: two pages

    listed = [job["job_id"] for job in client.list_jobs(limit=3)]

    assert listed == ids[::-1]


def test_submit_same_client_token_same_job(client: Client, prefix: str) -> None:
    client.put_entities(actors(prefix, 2))
    ids = [f"{prefix}-00000", f"{prefix}-00001"]

    first = client.submit_job("ising", entity_ids=ids, client_token=prefix)
    again = client.submit_job("ising", entity_ids=ids, client_token=prefix)

    assert again["job_id"] == first["job_id"]
    with pytest.raises(ApiError) as caught:
        client.submit_job("ising", entity_ids=ids[:1], client_token=prefix)
    assert (caught.value.status, caught.value.code) == (409, "idempotency_conflict")


def test_cancel_of_finished_job_raises_409_job_finished(client: Client, prefix: str) -> None:
    client.put_entities(actors(prefix, 1))
    job = client.submit_job("ews", entity_ids=[f"{prefix}-00000"])
    client.wait_for_job(job["job_id"], interval=0.1, timeout=60)

    with pytest.raises(ApiError) as caught:
        client.cancel_job(job["job_id"])

    assert (caught.value.status, caught.value.code) == (409, "job_finished")


def test_base_url_with_v1_suffix_reaches_same_api(local_stack: LocalStack) -> None:
    client = Client(local_stack.url + "/v1/", api_key=local_stack.api_key("demo"))

    page = client.request("GET", "/v1/jobs", params={"limit": 1})

    assert json.dumps(page).startswith('{"jobs": [')
