"""The CLI's client library without a server: error parsing, retry policy, SigV4, URLs.

What the client does with the real API (batching, pagination, idempotency, error bodies) is
proved against the local stack in tests/e2e/test_cli_client.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
import requests
from botocore.credentials import Credentials

from batchpredict_cli import client as client_module
from batchpredict_cli.client import (
    ApiError,
    ApiUnreachable,
    Client,
    ClientConfigError,
    SigV4Auth,
    is_local_url,
    region_from_url,
)

KEY = "local-demo-key"
URL = "http://127.0.0.1:9"  # never contacted: the tests' transport answers instead


class ScriptedTransport(requests.adapters.BaseAdapter):
    """Answers each request with the next (status, body) of a script and keeps what was sent.

    A stand-in for the network, not for the API: it knows nothing of routes or bodies, so it
    serves only to prove what the client does with a given HTTP status.
    """

    def __init__(self, *script: tuple[int, Any]) -> None:
        super().__init__()
        self.script = list(script)
        self.sent: list[requests.PreparedRequest] = []

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        self.sent.append(request)
        status, body = self.script.pop(0)
        return response(status, body, request)

    def close(self) -> None:
        pass


def response(status: int, body: Any, request: requests.PreparedRequest | None = None) -> Any:
    answer = requests.Response()
    answer.status_code = status
    answer.reason = {403: "Forbidden", 502: "Bad Gateway", 503: "Service Unavailable"}.get(
        status, "OK"
    )
    if isinstance(body, str):
        answer._content = body.encode()
        answer.headers["content-type"] = "text/plain"
    else:
        answer._content = json.dumps(body).encode() if body is not None else b""
        answer.headers["content-type"] = "application/json"
    answer.request = request  # type: ignore[assignment]
    return answer


def scripted_client(
    *script: tuple[int, Any], **kwargs: Any
) -> tuple[Client, ScriptedTransport, list[float]]:
    transport = ScriptedTransport(*script)
    session = requests.Session()
    session.mount("http://", transport)
    sleeps: list[float] = []
    kwargs.setdefault("api_key", KEY)
    return Client(URL, session=session, sleep=sleeps.append, **kwargs), transport, sleeps


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------- error lines


def test_api_error_from_error_body_keeps_code_message_and_paths() -> None:
    body = {
        "error": {
            "code": "unknown_entities",
            "message": "2 entity ids are not stored",
            "fields": [
                {"path": "entity_ids[1]", "message": "not stored"},
                {"path": "entity_ids[2]", "message": "not stored"},
            ],
        }
    }

    error = ApiError.from_response(response(422, body))

    assert (error.status, error.code) == (422, "unknown_entities")
    assert error.paths == ["entity_ids[1]", "entity_ids[2]"]
    assert str(error) == (
        "422 unknown_entities: 2 entity ids are not stored (entity_ids[1], entity_ids[2])"
    )


def test_api_error_from_gateway_message_body_takes_code_from_status() -> None:
    error = ApiError.from_response(response(403, {"message": "Missing Authentication Token"}))

    assert str(error) == "403 forbidden: Missing Authentication Token"


def test_api_error_from_plain_text_body_keeps_first_line_only() -> None:
    error = ApiError.from_response(response(502, "upstream broke\n  at line 2\n  at line 3"))

    assert str(error) == "502 bad_gateway: upstream broke"


def test_api_error_from_empty_body_uses_reason() -> None:
    assert str(ApiError.from_response(response(503, ""))) == "503 unavailable: Service Unavailable"


def test_api_error_str_shows_three_paths_then_ellipsis() -> None:
    fields = [{"path": f"entity_ids[{i}]", "message": "not stored"} for i in range(5)]
    error = ApiError(422, "unknown_entities", "5 entity ids are not stored", fields)

    assert str(error).endswith("(entity_ids[0], entity_ids[1], entity_ids[2], ...)")


def test_api_error_str_omits_paths_the_message_already_names() -> None:
    error = ApiError(
        400,
        "validation_error",
        "entity_ids: list should have at most 10000 items",
        [{"path": "entity_ids", "message": "too long"}],
    )

    assert str(error) == "400 validation_error: entity_ids: list should have at most 10000 items"


def test_non_json_success_answer_is_an_api_error_not_a_traceback() -> None:
    client, _, _ = scripted_client((200, "<html>proxy login</html>"))

    with pytest.raises(ApiError, match="is not JSON"):
        client.get_job("j-1")


# ---------------------------------------------------------------- retries


def test_get_retried_after_5xx_then_answer_returned() -> None:
    client, transport, sleeps = scripted_client((503, None), (502, None), (200, {"job_id": "j-1"}))

    assert client.get_job("j-1") == {"job_id": "j-1"}
    assert len(transport.sent) == 3
    # capped exponential backoff with full jitter
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.2
    assert 0 <= sleeps[1] <= 0.4


def test_get_gives_up_after_retries_with_last_error() -> None:
    client, transport, _ = scripted_client(*[(502, {"message": "Internal server error"})] * 3,
                                           retries=2)  # fmt: skip

    with pytest.raises(ApiError) as caught:
        client.get_job("j-1")

    assert (caught.value.status, caught.value.message) == (502, "Internal server error")
    assert len(transport.sent) == 3


def test_4xx_not_retried() -> None:
    client, transport, _ = scripted_client((404, {"error": {"code": "not_found", "message": "x"}}))

    with pytest.raises(ApiError):
        client.get_job("j-1")

    assert len(transport.sent) == 1


def test_submit_without_client_token_not_retried_on_5xx() -> None:
    # a retry could create a second job: without a token the caller decides
    client, transport, _ = scripted_client((503, None), (202, {"job_id": "j-2"}))

    with pytest.raises(ApiError) as caught:
        client.submit_job("ising", entity_ids=["a"])

    assert caught.value.status == 503
    assert len(transport.sent) == 1


def test_submit_with_client_token_retried_on_5xx() -> None:
    client, transport, _ = scripted_client((503, None), (202, {"job_id": "j-2"}))

    job = client.submit_job("ising", entity_ids=["a"], client_token="nightly-1")

    assert job == {"job_id": "j-2"}
    assert [json.loads(r.body or b"")["client_token"] for r in transport.sent] == ["nightly-1"] * 2


def test_submit_sends_only_given_fields() -> None:
    client, transport, _ = scripted_client((202, {"job_id": "j-1"}))

    client.submit_job(
        "cascade",
        entity_ids=["a", "b"],
        parameters={"max_generations": 3},
        priority="high",
        metadata={"team": "risk"},
        use_cache=False,
        tolerated_failure_percent=5,
        chunk_size=10,
    )

    assert json.loads(transport.sent[0].body or b"") == {
        "prediction_type": "cascade",
        "entity_ids": ["a", "b"],
        "parameters": {"max_generations": 3},
        "priority": "high",
        "metadata": {"team": "risk"},
        "use_cache": False,
        "tolerated_failure_percent": 5,
        "chunk_size": 10,
    }


def test_connection_refused_raises_unreachable_after_retries() -> None:
    sleeps: list[float] = []
    client = Client(f"http://127.0.0.1:{free_port()}", api_key=KEY, sleep=sleeps.append)

    with pytest.raises(ApiUnreachable) as caught:
        client.get_job("j-1")

    assert caught.value.reason == "connection refused"
    assert len(sleeps) == client.retries


def test_ids_are_one_percent_encoded_path_segment() -> None:
    client, transport, _ = scripted_client((200, {}))

    client.get_entity("ns:actor/1")

    assert urlsplit(str(transport.sent[0].url)).path == "/v1/entities/ns%3Aactor%2F1"


def test_put_byte_budget_below_api_gateway_limit() -> None:
    assert client_module.MAX_PUT_BYTES <= 6 * 1024 * 1024 - 64 * 1024


# ---------------------------------------------------------------- SigV4


def expected_signature(request: requests.PreparedRequest, secret: str) -> tuple[str, str]:
    """(the request's signature, the one API Gateway would compute), by the SigV4 spec."""
    headers = {name.lower(): value for name, value in request.headers.items()}
    headers["host"] = urlsplit(str(request.url)).netloc
    algorithm, _, rest = headers["authorization"].partition(" ")
    parts = dict(item.strip().split("=", 1) for item in rest.split(","))
    assert algorithm == "AWS4-HMAC-SHA256"
    _, date, region, service, _ = parts["Credential"].split("/")
    signed = parts["SignedHeaders"].split(";")
    url = urlsplit(str(request.url))
    query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
        for k, v in sorted(parse_qsl(url.query, keep_blank_values=True))
    )
    body = request.body or b""
    canonical = "\n".join(
        [
            str(request.method),
            quote(url.path, safe="/~"),  # execute-api: each segment encoded twice
            query,
            "".join(f"{name}:{headers[name].strip()}\n" for name in signed),
            ";".join(signed),
            hashlib.sha256(body if isinstance(body, bytes) else body.encode()).hexdigest(),
        ]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            headers["x-amz-date"],
            scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return parts["Signature"], hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


API = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"


@pytest.mark.parametrize(
    ("method", "path", "params", "body"),
    [
        ("GET", "/v1/jobs", {"status": "COMPLETED", "limit": 5}, None),
        ("GET", "/v1/entities/ns%3Aa", None, None),
        ("PUT", "/v1/entities", None, {"entities": [{"entity_id": "ns:a"}]}),
        ("POST", "/v1/jobs/j-1/cancel", None, None),
    ],
)
def test_sigv4_signature_verifies_with_known_credentials(
    method: str, path: str, params: dict[str, Any] | None, body: Any
) -> None:
    auth = SigV4Auth(Credentials("AKIDEXAMPLE", "secret-key", "session-token"), "eu-west-1")
    request = requests.Request(
        method,
        API + path,
        params=params,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"content-type": "application/json"} if body is not None else {},
    ).prepare()

    signed = auth(request)

    authorization = signed.headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in authorization
    assert signed.headers["X-Amz-Security-Token"] == "session-token"
    got, expected = expected_signature(signed, "secret-key")
    assert got == expected


def test_sigv4_signature_differs_with_another_secret() -> None:
    request = requests.Request("GET", API + "/v1/jobs").prepare()

    signed = SigV4Auth(Credentials("AKIDEXAMPLE", "secret-key"), "eu-west-1")(request)

    got, expected = expected_signature(signed, "another-secret")
    assert got != expected


def test_client_without_api_key_signs_and_sends_no_key() -> None:
    transport = ScriptedTransport((200, {"jobs": [], "next_token": None}))
    session = requests.Session()
    session.mount("https://", transport)
    client = Client(API, session=session, credentials=Credentials("AKID", "secret"))

    list(client.list_jobs())

    sent = transport.sent[0]
    assert "/eu-west-1/execute-api/aws4_request" in sent.headers["Authorization"]
    assert "x-api-key" not in sent.headers
    got, expected = expected_signature(sent, "secret")
    assert got == expected


def test_sigv4_region_taken_from_execute_api_url() -> None:
    client = Client(
        "https://abc123.execute-api.ap-southeast-2.amazonaws.com/prod",
        credentials=Credentials("AKID", "secret"),
    )

    assert isinstance(client._auth, SigV4Auth)
    assert client._auth.region == "ap-southeast-2"


def test_sigv4_without_credentials_raises_config_error() -> None:
    class NoCredentials:
        def get_credentials(self) -> None:
            return None

        def get_config_variable(self, name: str) -> str:
            return "us-east-1"

    with pytest.raises(ClientConfigError, match="no AWS credentials"):
        Client("https://api.example.com/dev", aws_session=NoCredentials())


def test_sigv4_without_region_raises_config_error() -> None:
    class NoRegion:
        def get_credentials(self) -> Credentials:
            return Credentials("AKID", "secret")

        def get_config_variable(self, name: str) -> None:
            return None

    with pytest.raises(ClientConfigError, match="--region"):
        Client("https://api.example.com/dev", aws_session=NoRegion())


# ---------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://abc.execute-api.us-east-1.amazonaws.com/dev", "us-east-1"),
        ("https://abc.execute-api.cn-north-1.amazonaws.com.cn/dev", "cn-north-1"),
        ("https://api.example.com/dev", None),
    ],
)
def test_region_from_url_reads_execute_api_host(url: str, region: str | None) -> None:
    assert region_from_url(url) == region


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8080", True),
        ("http://localhost:8080/v1", True),
        ("http://[::1]:8080", True),
        ("https://abc.execute-api.us-east-1.amazonaws.com/dev", False),
    ],
)
def test_is_local_url(url: str, local: bool) -> None:
    assert is_local_url(url) is local


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_base_url_suffix_v1_not_doubled(suffix: str) -> None:
    assert Client(API + suffix, api_key=KEY).base_url == API


def test_non_http_url_rejected() -> None:
    with pytest.raises(ClientConfigError, match="not an http"):
        Client("127.0.0.1:8080", api_key=KEY)
