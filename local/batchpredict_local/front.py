"""The HTTP front: API Gateway (REST, Lambda proxy integration) for the template's Api events.

Routes come from the translated template's REST APIs (their OpenAPI bodies), so exactly the
methods and paths template.yaml declares answer; anything else gets API Gateway's answer.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import hashlib
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler
from werkzeug.wrappers import Request, Response

from batchpredict_local.runtime import FunctionRuntime
from batchpredict_local.template import ACCOUNT_ID, PARTITION

log = logging.getLogger("batchpredict_local.http")

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway REST's payload limit
INTEGRATION_TIMEOUT_MS = 29_000  # API Gateway REST's default integration timeout
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class Route:
    """One method on one resource of a REST API."""

    method: str  # an HTTP method, or ANY
    resource: str  # the resource path with {params}, e.g. /v1/jobs/{job_id}
    api_id: str
    api_logical_id: str
    stage: str
    function: str | None  # the function's logical id; None for a MOCK integration
    mock_status: int = 200
    mock_headers: tuple[tuple[str, str], ...] = ()
    binary_media_types: tuple[str, ...] = ()

    def segments(self) -> list[str]:
        return [s for s in self.resource.split("/") if s]

    def match(self, parts: list[str]) -> dict[str, str] | None:
        pattern = self.segments()
        params: dict[str, str] = {}
        for index, segment in enumerate(pattern):
            if segment.startswith("{") and segment.endswith("+}"):
                rest = parts[index:]
                if not rest:
                    return None
                params[segment[1:-2]] = "/".join(rest)
                return params
            if index >= len(parts):
                return None
            if segment.startswith("{") and segment.endswith("}"):
                params[segment[1:-1]] = parts[index]
            elif segment != parts[index]:
                return None
        return params if len(parts) == len(pattern) else None

    def specificity(self) -> tuple[int, ...]:
        """API Gateway prefers literal segments, then {param}, then {greedy+}."""
        return tuple(
            2 if s.endswith("+}") else 1 if s.startswith("{") else 0 for s in self.segments()
        )


def load_tenants(data: dict[str, Any]) -> dict[str, str]:
    keys = data.get("keys")
    if not isinstance(keys, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k and v for k, v in keys.items()
    ):
        raise ValueError('tenants file must be {"keys": {"<api key>": "<tenant>", ...}}')
    return dict(keys)


def caller_identity(tenant: str, source_ip: str, user_agent: str | None) -> dict[str, Any]:
    """The requestContext.identity that API Gateway's IAM auth gives a signed request."""
    if tenant.startswith("arn:"):
        arn = tenant
    else:
        arn = f"arn:{PARTITION}:iam::{ACCOUNT_ID}:user/{tenant}"
    caller = "AIDA" + hashlib.sha1(arn.encode()).hexdigest()[:17].upper()
    return {
        "accountId": ACCOUNT_ID,
        "caller": caller,
        "user": caller,
        "userArn": arn,
        "sourceIp": source_ip,
        "userAgent": user_agent,
        "accessKey": None,
        "apiKey": None,
        "apiKeyId": None,
        "cognitoAuthenticationProvider": None,
        "cognitoAuthenticationType": None,
        "cognitoIdentityId": None,
        "cognitoIdentityPoolId": None,
        "principalOrgId": None,
    }


# API Gateway's own answers: (status, default message, x-amzn-ErrorType).
GATEWAY_DEFAULTS = {
    "MISSING_AUTHENTICATION_TOKEN": (
        403,
        "Missing Authentication Token",
        "MissingAuthenticationTokenException",
    ),
    "INVALID_SIGNATURE": (403, "Forbidden", "InvalidSignatureException"),
    "REQUEST_TOO_LARGE": (413, "Request Too Long", "RequestTooLongException"),
    "INTEGRATION_FAILURE": (500, "Internal server error", "InternalServerErrorException"),
    "INTEGRATION_TIMEOUT": (504, "Endpoint request timed out", "IntegrationTimeoutException"),
    "DEFAULT_5XX": (502, "Internal server error", "InternalServerErrorException"),
}
_CONTEXT_VARIABLE = re.compile(r"\$context\.([A-Za-z0-9_.]+)")


class GatewayResponses:
    """API Gateway's own responses, customised by the API's GatewayResponses in the template."""

    def __init__(self, spec: dict[str, Any] | None = None) -> None:
        self.spec = spec or {}

    def answer(self, kind: str, request_id: str, message: str | None = None) -> Response:
        status, default_message, error_type = GATEWAY_DEFAULTS[kind]
        message = message or default_message
        custom = self.spec.get(kind) or self.spec.get(
            "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
        )
        if not custom:
            response = Response(
                json.dumps({"message": message}), status=status, content_type="application/json"
            )
        else:
            status = int(custom.get("statusCode", status))
            templates = custom.get("responseTemplates") or {}
            template = templates.get("application/json", next(iter(templates.values()), None))
            variables = {
                "error.message": message,
                "error.messageString": json.dumps(message),
                "error.responseType": kind,
                "requestId": request_id,
                "extendedRequestId": request_id[:16],
            }
            body = (
                _CONTEXT_VARIABLE.sub(lambda m: str(variables.get(m.group(1), "")), template)
                if template is not None
                else json.dumps({"message": message})
            )
            response = Response(body, status=status, content_type="application/json")
            for name, value in (custom.get("responseParameters") or {}).items():
                if name.startswith("gatewayresponse.header."):
                    response.headers[name.rsplit(".", 1)[1]] = str(value).strip("'")
        response.headers["x-amzn-ErrorType"] = error_type
        response.headers["x-amzn-RequestId"] = request_id
        return response


class ApiFront:
    """A WSGI app that turns requests into proxy events and responses back."""

    def __init__(
        self,
        routes: list[Route],
        functions: dict[str, FunctionRuntime],
        tenants: Callable[[], dict[str, str]],
        gateway_responses: dict[str, GatewayResponses] | None = None,
    ) -> None:
        self.routes = sorted(routes, key=lambda r: (r.specificity(), r.method == "ANY"))
        self.functions = functions
        self._tenants = tenants
        self._gateway = gateway_responses or {}

    def _gateway_for(self, route: Route | None) -> GatewayResponses:
        if route is not None and route.api_logical_id in self._gateway:
            return self._gateway[route.api_logical_id]
        # No route: the only API's answers (several APIs on one port cannot tell whose it is).
        return next(iter(self._gateway.values()), GatewayResponses())

    def resolve(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """The route for a request, its path parameters, and whether the path exists at all."""
        parts = [unquote(p) for p in path.split("/") if p]
        path_known = False
        for route in self.routes:
            params = route.match(parts)
            if params is None:
                continue
            path_known = True
            if route.method in (method, "ANY"):
                return route, params, True
        if not path_known and parts:
            # Also accept the stage prefix of a deployed URL (…/dev/v1/jobs).
            stages = {r.stage for r in self.routes}
            if parts[0] in stages:
                return self.resolve(method, "/" + "/".join(path.split("/")[2:]))
        return None, {}, path_known

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        target = "-"
        try:
            response, target = self._handle(request, request_id)
        except Exception:
            log.exception("local front failed on %s %s", request.method, request.path)
            response = GatewayResponses().answer("DEFAULT_5XX", request_id)
        elapsed = (time.perf_counter() - started) * 1000
        log.info(
            "%s %s -> %s %d %.0fms",
            request.method,
            request.full_path.rstrip("?"),
            target,
            response.status_code,
            elapsed,
        )
        return response(environ, start_response)

    def _handle(self, request: Request, request_id: str) -> tuple[Response, str]:
        route, params, _ = self.resolve(request.method, request.path)
        gateway = self._gateway_for(route)
        if route is None:
            # API Gateway answers an undeclared method or path this way, signed or not.
            return gateway.answer("MISSING_AUTHENTICATION_TOKEN", request_id), "-"
        if route.function is None:
            response = Response(b"", status=route.mock_status)
            for name, value in route.mock_headers:
                response.headers[name] = value
            return response, "mock"
        too_large = request.content_length is not None and request.content_length > MAX_BODY_BYTES
        body = b"" if too_large else request.get_data(cache=False)
        if too_large or len(body) > MAX_BODY_BYTES:
            return gateway.answer("REQUEST_TOO_LARGE", request_id), "-"
        api_key = request.headers.get("x-api-key")
        tenant = self._tenants().get(api_key or "")
        if tenant is None:
            # What AWS answers an unsigned request, or one with a bad signature.
            kind = "INVALID_SIGNATURE" if api_key else "MISSING_AUTHENTICATION_TOKEN"
            return gateway.answer(kind, request_id, message="Forbidden"), "-"
        runtime = self.functions[route.function]
        event = self._event(request, route, params, body, tenant, request_id)
        with runtime.slot(timeout=None) as acquired:
            if not acquired:
                log.warning("%s throttled (reserved concurrency)", route.function)
                return gateway.answer("INTEGRATION_FAILURE", request_id), route.function
            outcome = runtime.invoke(
                event, source=f"api:{route.api_logical_id}", request_id=request_id
            )
        if outcome.duration_ms > INTEGRATION_TIMEOUT_MS:
            return gateway.answer("INTEGRATION_TIMEOUT", request_id), route.function
        if not outcome.ok:
            log.warning("%s failed: %s", route.function, outcome.describe_error())
            return gateway.answer("DEFAULT_5XX", request_id), route.function
        mapped = self._response(outcome.result)
        if mapped is None:
            log.warning("%s returned a malformed proxy response", route.function)
            return gateway.answer("DEFAULT_5XX", request_id), route.function
        mapped.headers["x-amzn-RequestId"] = request_id
        return mapped, route.function

    @staticmethod
    def _event(
        request: Request,
        route: Route,
        params: dict[str, str],
        body: bytes,
        tenant: str,
        request_id: str,
    ) -> dict[str, Any]:
        headers: dict[str, str] = {}
        multi_headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            headers[name] = value
            multi_headers.setdefault(name, []).append(value)
        source_ip = request.remote_addr or "127.0.0.1"
        forwarded = {
            "X-Forwarded-For": source_ip,
            "X-Forwarded-Port": str(request.environ.get("SERVER_PORT", "")),
            "X-Forwarded-Proto": request.scheme,
        }
        for name, value in forwarded.items():
            headers.setdefault(name, value)
            multi_headers.setdefault(name, [value])
        query = {key: request.args.getlist(key) for key in request.args}
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        binary = any(fnmatch.fnmatch(content_type, t) for t in route.binary_media_types)
        text: str | None = None
        encoded = False
        if body:
            if binary:
                text, encoded = base64.b64encode(body).decode(), True
            else:
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError:
                    text, encoded = base64.b64encode(body).decode(), True
        now = time.time()
        return {
            "resource": route.resource,
            "path": request.path,
            "httpMethod": request.method,
            "headers": headers,
            "multiValueHeaders": multi_headers,
            "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
            "multiValueQueryStringParameters": query or None,
            "pathParameters": params or None,
            "stageVariables": None,
            "body": text,
            "isBase64Encoded": encoded,
            "requestContext": {
                "accountId": ACCOUNT_ID,
                "apiId": route.api_id,
                "domainName": request.host,
                "domainPrefix": request.host.split(".")[0],
                "extendedRequestId": request_id[:16],
                "httpMethod": request.method,
                "identity": caller_identity(tenant, source_ip, request.user_agent.string or None),
                "path": f"/{route.stage}{request.path}",
                "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "requestId": request_id,
                "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "requestTimeEpoch": int(now * 1000),
                "resourceId": hashlib.sha1(route.resource.encode()).hexdigest()[:6],
                "resourcePath": route.resource,
                "stage": route.stage,
            },
        }

    @staticmethod
    def _response(result: Any) -> Response | None:
        """The HTTP response for a proxy result, or None where API Gateway would answer 502."""
        if not isinstance(result, dict):
            return None
        try:
            status = int(result["statusCode"])
        except (KeyError, TypeError, ValueError):
            return None
        headers = result.get("headers") or {}
        multi = result.get("multiValueHeaders") or {}
        body = result.get("body")
        encoded = result.get("isBase64Encoded", False)
        if not isinstance(headers, dict) or not isinstance(multi, dict):
            return None
        if body is not None and not isinstance(body, str):
            return None
        payload = b""
        if body:
            try:
                payload = base64.b64decode(body) if encoded else body.encode("utf-8")
            except ValueError:
                return None
        response = Response(payload, status=status)
        response.headers.pop("Content-Type", None)
        for name, values in multi.items():
            for value in values if isinstance(values, list) else [values]:
                response.headers.add(name, str(value))
        for name, value in headers.items():
            if name not in multi:
                response.headers[name] = str(value)
        if "Content-Type" not in response.headers:
            response.headers["Content-Type"] = "application/json"
        return response


class _Handler(WSGIRequestHandler):
    """Connections that the server can close when it stops.

    Werkzeug answers every request with ``Connection: close``, but a client that connected and
    has not sent its request yet holds a thread in a blocking read: stopping closes those.
    """

    timeout = 30  # a connection that sends no request for this long is closed
    server: _FrontServer

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # the app logs one line per request

    def log_error(self, format: str, *args: Any) -> None:
        log.debug(format, *args)

    def handle_one_request(self) -> None:
        self.server.track(self, busy=False)
        if self.server.stopping:
            self.close_connection = True
            return
        super().handle_one_request()
        if self.server.stopping:
            self.close_connection = True

    def parse_request(self) -> bool:
        self.server.track(self, busy=True)
        return super().parse_request()

    def finish(self) -> None:
        self.server.untrack(self)
        super().finish()


class _FrontServer(ThreadedWSGIServer):
    """Werkzeug's threaded server that knows which keep-alive connections are idle."""

    daemon_threads = True
    block_on_close = True  # server_close() waits for requests in flight

    def __init__(self, host: str, port: int, app: ApiFront) -> None:
        super().__init__(host, port, app, handler=_Handler)
        self.stopping = False
        self._conns: dict[_Handler, bool] = {}
        self._conn_lock = threading.Lock()

    def track(self, handler: _Handler, busy: bool) -> None:
        with self._conn_lock:
            self._conns[handler] = busy

    def untrack(self, handler: _Handler) -> None:
        with self._conn_lock:
            self._conns.pop(handler, None)

    def close_idle(self) -> None:
        with self._conn_lock:
            self.stopping = True
            idle = [h for h, busy in self._conns.items() if not busy]
        for handler in idle:
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)


class HttpServer:
    """The front's threaded HTTP server on 127.0.0.1, in its own thread."""

    def __init__(self, app: ApiFront, host: str, port: int) -> None:
        self._server = _FrontServer(host, port, app)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="local-http",
            daemon=True,
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stops accepting, closes idle connections, waits for requests in flight."""
        self._server.shutdown()
        self._server.close_idle()
        self._server.server_close()  # joins the request threads
        self._thread.join()


def routes_from_template(
    rest_apis: dict[str, dict[str, Any]],
    stages: dict[str, str],
    api_ids: dict[str, str],
    function_for_uri: Callable[[Any], str | None],
) -> list[Route]:
    """The routes of the translated REST APIs' bodies (already resolved)."""
    routes: list[Route] = []
    for logical_id, body in rest_apis.items():
        binary = tuple(body.get("x-amazon-apigateway-binary-media-types", []) or [])
        for path, operations in (body.get("paths") or {}).items():
            for key, operation in (operations or {}).items():
                method = "ANY" if key == "x-amazon-apigateway-any-method" else key.upper()
                if method != "ANY" and method not in HTTP_METHODS:
                    continue
                integration = (operation or {}).get("x-amazon-apigateway-integration") or {}
                kind = str(integration.get("type", "")).lower()
                common = {
                    "method": method,
                    "resource": path,
                    "api_id": api_ids[logical_id],
                    "api_logical_id": logical_id,
                    "stage": stages.get(logical_id, "Prod"),
                    "binary_media_types": binary,
                }
                if kind == "mock":
                    default = (integration.get("responses") or {}).get("default") or {}
                    headers = tuple(
                        (name.rsplit(".", 1)[-1], str(value).strip("'"))
                        for name, value in (default.get("responseParameters") or {}).items()
                    )
                    routes.append(
                        Route(
                            function=None,
                            mock_status=int(default.get("statusCode", 200)),
                            mock_headers=headers,
                            **common,
                        )
                    )
                    continue
                function = function_for_uri(integration.get("uri"))
                if kind != "aws_proxy" or function is None:
                    log.warning("%s %s: integration %r is not emulated", method, path, kind)
                    continue
                routes.append(Route(function=function, **common))
    return routes


_FUNCTION_IN_URI = re.compile(r"functions/(arn:[^/]+:function:[^/:]+)(?::[^/]+)?/invocations")


def function_arn_in_uri(uri: Any) -> str | None:
    match = _FUNCTION_IN_URI.search(str(uri or ""))
    return match.group(1) if match else None
