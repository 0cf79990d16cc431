"""A small client for the batch-prediction HTTP API (docs/API.md).

Against the local stack it sends an `x-api-key` header; against API Gateway it signs every
request with SigV4 (service `execute-api`) using botocore's default credential chain, so the
caller's IAM identity is the tenant.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import requests

TERMINAL_STATUSES = frozenset({"COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELLED"})
MAX_ENTITIES_PER_PUT = 1_000
# API Gateway and Lambda refuse bodies over 6 MB; stay well below with JSON overhead.
MAX_PUT_BYTES = 5 * 1024 * 1024
MAX_RESULTS_PAGE = 1_000
MAX_JOBS_PAGE = 200
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_EXECUTE_API_HOST = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")


class ApiError(Exception):
    """A 4xx/5xx answer, parsed from the API's error body or API Gateway's `{"message": ...}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = list(fields or [])

    @property
    def paths(self) -> list[str]:
        return [str(f.get("path")) for f in self.fields if isinstance(f, dict) and f.get("path")]

    def __str__(self) -> str:
        text = f"{self.status} {self.code}: {self.message}"
        # Name the offending fields unless the message already does.
        extra = [path for path in self.paths if path not in self.message]
        if extra:
            shown = ", ".join(extra[:3])
            text += f" ({shown}{', ...' if len(extra) > 3 else ''})"
        return text

    @classmethod
    def from_response(cls, response: requests.Response) -> ApiError:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
            fields = error.get("fields")
            return cls(
                status,
                str(error.get("code") or _code_for_status(status)),
                str(error.get("message") or response.reason or "error"),
                fields if isinstance(fields, list) else [],
            )
        if isinstance(body, dict) and body.get("message"):
            # API Gateway's own answers: missing/invalid signature, throttling, timeouts
            return cls(status, _code_for_status(status), str(body["message"]))
        text = (response.text or "").strip().splitlines()
        message = text[0][:200] if text else (response.reason or "no details")
        return cls(status, _code_for_status(status), message)


class ApiUnreachable(Exception):
    """No HTTP answer at all: connection refused, DNS failure, timeout."""

    def __init__(self, url: str, reason: str, *, timed_out: bool = False) -> None:
        super().__init__(f"cannot reach {url}: {reason}")
        self.url = url
        self.reason = reason
        self.timed_out = timed_out


class ClientConfigError(Exception):
    """The client cannot make a request: no credentials or no region for SigV4."""


def _code_for_status(status: int) -> str:
    return {
        400: "bad_request",
        401: "unauthenticated",
        403: "forbidden",
        404: "not_found",
        409: "conflict",
        413: "payload_too_large",
        429: "throttled",
        502: "bad_gateway",
        503: "unavailable",
        504: "gateway_timeout",
    }.get(status, "server_error" if status >= 500 else f"http_{status}")


def is_local_url(url: str) -> bool:
    return (urlsplit(url).hostname or "") in LOCAL_HOSTS or urlsplit(url).netloc.startswith("[::1]")


def region_from_url(url: str) -> str | None:
    match = _EXECUTE_API_HOST.search(urlsplit(url).hostname or "")
    return match.group(1) if match else None


class SigV4Auth(requests.auth.AuthBase):
    """Signs a prepared request with SigV4 for `execute-api` (API Gateway IAM auth).

    Only host, content-type and the x-amz-* headers are signed: the other headers requests or
    urllib3 set may change on the way without breaking the signature.
    """

    def __init__(self, credentials: Any, region: str, service: str = "execute-api") -> None:
        self.credentials = credentials  # botocore Credentials (refreshable or not)
        self.region = region
        self.service = service

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        from botocore.auth import SigV4Auth as BotocoreSigV4Auth
        from botocore.awsrequest import AWSRequest

        frozen = (
            self.credentials.get_frozen_credentials()
            if hasattr(self.credentials, "get_frozen_credentials")
            else self.credentials
        )
        headers = {}
        if request.headers.get("content-type"):
            headers["content-type"] = request.headers["content-type"]
        body = request.body or b""
        aws_request = AWSRequest(method=request.method, url=request.url, data=body, headers=headers)
        BotocoreSigV4Auth(frozen, self.service, self.region).add_auth(aws_request)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in aws_request.headers:
                request.headers[name] = aws_request.headers[name]
        return request


class Client:
    """The HTTP API as Python methods. Errors raise ApiError / ApiUnreachable.

    `session` is the requests.Session to send with (tests mount adapters on it); `credentials`
    and `aws_session` (a botocore or boto3 session) override botocore's default credential chain.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        region: str | None = None,
        session: requests.Session | None = None,
        timeout: float = 30,
        credentials: Any = None,
        aws_session: Any = None,
        retries: int = 3,
        backoff: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        url = base_url.rstrip("/")
        if url.endswith("/v1"):
            url = url[: -len("/v1")]
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise ClientConfigError(f"not an http(s) URL: {base_url!r}")
        self.base_url = url
        self.api_key = api_key
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self._sleep = sleep
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = (
                f"batchpredict-cli {requests.utils.default_user_agent()}"
            )
        self.session = session
        self._auth: requests.auth.AuthBase | None = None
        if api_key is None:
            self._auth = self._sigv4(region, credentials, aws_session)

    def _sigv4(self, region: str | None, credentials: Any, aws_session: Any) -> SigV4Auth:
        if credentials is None or region is None:
            import botocore.exceptions
            import botocore.session

            try:
                if aws_session is None:
                    aws_session = botocore.session.get_session()
                if credentials is None:
                    credentials = aws_session.get_credentials()
                if region is None:
                    region = region_from_url(self.base_url) or _session_region(aws_session)
            except (botocore.exceptions.BotoCoreError, ValueError) as exc:
                # a missing profile, an unreadable config file, a credential process that fails
                raise ClientConfigError(f"cannot load AWS credentials: {exc}") from exc
        if credentials is None:
            raise ClientConfigError(
                f"no AWS credentials to sign requests to {self.base_url}: configure them "
                "(aws configure, AWS_PROFILE, AWS_ACCESS_KEY_ID...) or pass an API key"
            )
        if not region:
            raise ClientConfigError(
                f"cannot tell the AWS region of {self.base_url}: pass --region or set AWS_REGION"
            )
        return SigV4Auth(credentials, region)

    # ---------------------------------------------------------------- transport

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        retry: bool | None = None,
    ) -> Any:
        """One API call: the decoded JSON answer (None for 204). Retries idempotent calls."""
        url = self.base_url + path
        headers = {"accept": "application/json"}
        if self.api_key is not None:
            headers["x-api-key"] = self.api_key
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
            headers["content-type"] = "application/json"
        query = {k: v for k, v in (params or {}).items() if v is not None}
        if retry is None:
            retry = method in ("GET", "PUT", "HEAD")
        attempts = 1 + (self.retries if retry else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self.session.request(
                    method,
                    url,
                    params=query,
                    data=data,
                    headers=headers,
                    auth=self._auth,
                    timeout=self.timeout,
                )
            except requests.Timeout as exc:
                if last:
                    raise ApiUnreachable(
                        self.base_url, f"no answer within {self.timeout:g}s", timed_out=True
                    ) from exc
            except requests.ConnectionError as exc:
                if last:
                    raise ApiUnreachable(self.base_url, _reason(exc)) from exc
            else:
                if response.status_code in RETRY_STATUSES and not last:
                    response.close()
                elif response.status_code >= 400:
                    raise ApiError.from_response(response)
                elif response.status_code == 204 or not response.content:
                    return None
                else:
                    try:
                        return response.json()
                    except ValueError as exc:
                        raise ApiError(
                            response.status_code,
                            "invalid_response",
                            f"the answer to {method} {path} is not JSON",
                        ) from exc
            # capped exponential backoff with full jitter
            self._sleep(random.uniform(0, min(2.0, self.backoff * 2**attempt)))
        raise AssertionError("unreachable")  # pragma: no cover

    # ---------------------------------------------------------------- entities

    def put_entities(
        self,
        entities: Iterable[Mapping[str, Any]],
        *,
        on_batch: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """Upserts any number of entities in calls of at most 1,000 (and ~5 MB).

        Returns {"upserted": n, "entities": [{"entity_id", "version"}, ...]} over all calls;
        `on_batch` gets the running count after each call.
        """
        upserted = 0
        versions: list[dict[str, Any]] = []
        batch: list[Mapping[str, Any]] = []
        size = 0

        def flush() -> None:
            nonlocal upserted, batch, size
            if not batch:
                return
            answer = self.request("PUT", "/v1/entities", body={"entities": batch}) or {}
            upserted += int(answer.get("upserted", len(batch)))
            versions.extend(answer.get("entities") or [])
            batch, size = [], 0
            if on_batch is not None:
                on_batch(upserted)

        for entity in entities:
            entity_size = len(json.dumps(entity, separators=(",", ":"))) + 1
            if batch and (len(batch) >= MAX_ENTITIES_PER_PUT or size + entity_size > MAX_PUT_BYTES):
                flush()
            batch.append(entity)
            size += entity_size
        flush()
        return {"upserted": upserted, "entities": versions}

    def get_entity(self, entity_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/entities/{_segment(entity_id)}")

    def delete_entity(self, entity_id: str) -> None:
        self.request("DELETE", f"/v1/entities/{_segment(entity_id)}")

    # ---------------------------------------------------------------- jobs

    def submit_job(
        self,
        prediction_type: str,
        entity_ids: Iterable[str] | None = None,
        portfolio_id: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        priority: str | None = None,
        client_token: str | None = None,
        metadata: Mapping[str, str] | None = None,
        use_cache: bool | None = None,
        tolerated_failure_percent: float | None = None,
        chunk_size: int | None = None,
        input_uri: str | None = None,
        callback_url: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"prediction_type": prediction_type}
        optional = {
            "entity_ids": list(entity_ids) if entity_ids is not None else None,
            "portfolio_id": portfolio_id,
            "input_uri": input_uri,
            "parameters": dict(parameters) if parameters is not None else None,
            "priority": priority,
            "client_token": client_token,
            "metadata": dict(metadata) if metadata is not None else None,
            "use_cache": use_cache,
            "tolerated_failure_percent": tolerated_failure_percent,
            "chunk_size": chunk_size,
            "callback_url": callback_url,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        # With a client token the same request returns the same job: safe to retry.
        return self.request("POST", "/v1/jobs", body=body, retry=client_token is not None)

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/jobs/{_segment(job_id)}")

    def get_job_report(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/jobs/{_segment(job_id)}/report")

    def iter_results(
        self, job_id: str, status: str | None = None, page_size: int = MAX_RESULTS_PAGE
    ) -> Iterator[dict[str, Any]]:
        """Every result row of the job, page after page (follows next_token)."""
        token: str | None = None
        path = f"/v1/jobs/{_segment(job_id)}/results"
        while True:
            page = self.request(
                "GET",
                path,
                params={
                    "limit": max(1, min(page_size, MAX_RESULTS_PAGE)),
                    "status": status,
                    "next_token": token,
                },
            )
            yield from page.get("items") or []
            token = page.get("next_token")
            if not token:
                return

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        # Cancelling twice is harmless, so a retry is too.
        return self.request("POST", f"/v1/jobs/{_segment(job_id)}/cancel", retry=True)

    def list_jobs(
        self,
        status: str | None = None,
        prediction_type: str | None = None,
        limit: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The tenant's jobs, newest first, across pages; at most `limit` of them."""
        token: str | None = None
        seen = 0
        while limit is None or seen < limit:
            page_size = MAX_JOBS_PAGE if limit is None else min(MAX_JOBS_PAGE, limit - seen)
            page = self.request(
                "GET",
                "/v1/jobs",
                params={
                    "status": status,
                    "prediction_type": prediction_type,
                    "limit": page_size,
                    "next_token": token,
                },
            )
            for job in page.get("jobs") or []:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield job
            token = page.get("next_token")
            if not token:
                return

    def wait_for_job(
        self,
        job_id: str,
        *,
        interval: float = 1.0,
        timeout: float | None = None,
        on_update: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Polls the job until it is terminal; returns its last state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if on_update is not None:
                on_update(job)
            if job.get("status") in TERMINAL_STATUSES:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job.get('status')} after {timeout}s")
            self._sleep(interval)


def _segment(value: str) -> str:
    """One path segment, percent-encoded (ids may hold ':')."""
    return quote(value, safe="")


def _session_region(aws_session: Any) -> str | None:
    for getter in ("get_config_variable", "region_name"):
        attribute = getattr(aws_session, getter, None)
        if callable(attribute):
            value = attribute("region")
            if value:
                return str(value)
        elif isinstance(attribute, str) and attribute:
            return attribute
    return None


def _reason(exc: requests.ConnectionError) -> str:
    text = str(exc)
    for marker, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("Failed to resolve", "unknown host"),
        ("CERTIFICATE_VERIFY_FAILED", "TLS certificate not trusted"),
        ("Connection reset", "connection reset"),
        ("RemoteDisconnected", "the server closed the connection"),
    ):
        if marker in text:
            return reason
    return text.splitlines()[0][:200] if text else type(exc).__name__
