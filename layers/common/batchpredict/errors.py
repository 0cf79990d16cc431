"""Domain errors. The API layer maps each to one HTTP response (api.py); nothing else does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from batchpredict.constants import ErrorCode


@dataclass(frozen=True, slots=True)
class FieldError:
    path: str
    message: str


class DomainError(Exception):
    status_code = 400
    code: ErrorCode = ErrorCode.VALIDATION_ERROR

    def __init__(
        self,
        message: str,
        fields: Sequence[FieldError] = (),
        code: ErrorCode | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = list(fields)
        if code is not None:
            self.code = code

    def with_status(self, status_code: int) -> DomainError:
        self.status_code = status_code
        return self


class BadRequestError(DomainError):
    status_code = 400


class UnauthenticatedError(DomainError):
    status_code = 401
    code = ErrorCode.UNAUTHENTICATED


class NotFoundError(DomainError):
    status_code = 404
    code = ErrorCode.NOT_FOUND


class ConflictError(DomainError):
    status_code = 409
    code = ErrorCode.CONFLICT


class PayloadTooLargeError(DomainError):
    status_code = 413
    code = ErrorCode.PAYLOAD_TOO_LARGE


class UnprocessableError(DomainError):
    status_code = 422
