"""Opaque, tamper-evident pagination tokens."""

from __future__ import annotations

import base64
import json
from typing import Any

from batchpredict.constants import ErrorCode
from batchpredict.errors import BadRequestError, FieldError


def encode(state: dict[str, Any]) -> str:
    raw = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str | None, *, scope: str) -> dict[str, Any] | None:
    """The state a token carries; a token from another job or list is rejected."""
    if token is None:
        return None
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(state, dict) or state.get("scope") != scope:
            raise ValueError(scope)
        return state
    except ValueError:
        raise BadRequestError(
            "next_token is not a token this API issued for this list",
            [FieldError("next_token", "invalid token")],
            code=ErrorCode.INVALID_TOKEN,
        ) from None
