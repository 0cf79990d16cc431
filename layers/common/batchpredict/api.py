"""What every API function shares: the resolver, the caller's tenant, and error responses.

Domain errors become HTTP responses here and nowhere else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from batchpredict import constants as c
from batchpredict.constants import ErrorCode
from batchpredict.errors import DomainError, FieldError, PayloadTooLargeError, UnauthenticatedError
from batchpredict.observability import logger

_ASSUMED_ROLE = re.compile(r"^arn:(aws[\w-]*):sts::(\d+):assumed-role/([^/]+)/.+$")


def tenant_of(event: Any) -> str:
    """The caller's IAM identity, which API Gateway's IAM auth has verified.

    An assumed role's session name changes per session, so a role session maps to the role.
    """
    identity = event.request_context.identity
    arn = identity.user_arn or identity.caller or identity.account_id
    if not arn:
        raise UnauthenticatedError("the request carries no caller identity")
    match = _ASSUMED_ROLE.match(arn)
    if match:
        partition, account, role = match.groups()
        return f"arn:{partition}:iam::{account}:role/{role}"
    return str(arn)


def error_response(
    status: int, code: ErrorCode | str, message: str, fields: list[FieldError] | None = None
) -> Response[str]:
    body = {
        "error": {
            "code": str(code),
            "message": message,
            "fields": [{"path": f.path, "message": f.message} for f in fields or []],
        }
    }
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body)
    )


def _path(loc: tuple[Any, ...]) -> str:
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path"):
        parts = parts[1:]
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or str(loc[0] if loc else "body")


def _validation_response(error: RequestValidationError) -> Response[str]:
    details = error.errors()
    if any(d.get("type") == "json_invalid" for d in details):
        return error_response(
            400,
            ErrorCode.MALFORMED_JSON,
            "the request body is not valid JSON",
            [FieldError("body", "invalid JSON")],
        )
    fields = [FieldError(_path(tuple(d.get("loc", ()))), str(d.get("msg", ""))) for d in details]
    first = fields[0] if fields else FieldError("body", "invalid")
    return error_response(400, ErrorCode.VALIDATION_ERROR, f"{first.path}: {first.message}", fields)


class Resolver(APIGatewayRestResolver):
    """Refuses an oversized body before anything parses it (Powertools validates first)."""

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        if len(event.get("body") or "") > c.MAX_BODY_BYTES:
            error = PayloadTooLargeError(f"the body is larger than {c.MAX_BODY_BYTES} bytes")
            response = error_response(error.status_code, error.code, error.message)
            return {
                "statusCode": response.status_code,
                "headers": {"Content-Type": content_types.APPLICATION_JSON},
                "body": response.body,
                "isBase64Encoded": False,
            }
        return super().resolve(event, context)


def _log_context(app: APIGatewayRestResolver, next_middleware: Any) -> Any:
    """Every log line of a request names its tenant and, where the path has one, its job."""
    identity = app.current_event.request_context.identity
    logger.append_keys(
        tenant=identity.user_arn or identity.caller,
        job_id=(app.current_event.path_parameters or {}).get("job_id"),
    )
    try:
        return next_middleware(app)
    finally:
        logger.remove_keys(["tenant", "job_id"])


def make_resolver() -> APIGatewayRestResolver:
    app = Resolver(enable_validation=True)
    app.use(middlewares=[_log_context])

    @app.exception_handler(DomainError)
    def _domain(error: DomainError) -> Response[str]:
        return error_response(error.status_code, error.code, error.message, error.fields)

    @app.exception_handler(RequestValidationError)
    def _invalid(error: RequestValidationError) -> Response[str]:
        return _validation_response(error)

    @app.not_found
    def _not_found(_: RouteNotFoundError) -> Response[str]:
        return error_response(404, ErrorCode.NOT_FOUND, "no such route")

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response[str]:
        logger.exception("unhandled error")
        return error_response(500, ErrorCode.INTERNAL_ERROR, "internal error")

    return app


def tenant(app: APIGatewayRestResolver) -> str:
    return tenant_of(app.current_event)
