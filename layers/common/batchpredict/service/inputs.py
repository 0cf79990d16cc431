"""A job's entity ids from an S3 object (`input_uri`): JSONL, one entity per line.

A line is a JSON string (`"actor-0001"`) or an object with an `entity_id` (other keys are
ignored, so a file of entity records serves as it is). Blank lines are skipped. The object must
be in the stack's input bucket (least privilege: the functions may read nothing else).
"""

from __future__ import annotations

import json
import re
from typing import Any

from botocore.exceptions import ClientError

from batchpredict import aws
from batchpredict import constants as c
from batchpredict.constants import ErrorCode
from batchpredict.errors import BadRequestError, FieldError, UnprocessableError
from batchpredict.models import ID_PATTERN

FIELD = "input_uri"
MAX_REPORTED = 20
_ID = re.compile(ID_PATTERN)


def split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def read_input_ids(uri: str, allowed_bucket: str, s3: Any | None = None) -> list[str]:
    """Every entity id of the object, in order; 4xx naming `input_uri[line]` on bad content."""
    bucket, key = split_uri(uri)
    if not allowed_bucket or bucket != allowed_bucket:
        where = f"s3://{allowed_bucket}/" if allowed_bucket else "nowhere (no input bucket)"
        raise BadRequestError(
            f"input_uri must point into this stack's input bucket: {where}",
            [FieldError(FIELD, f"bucket {bucket!r} is not the input bucket")],
            code=ErrorCode.INVALID_INPUT_FILE,
        )
    s3 = s3 or aws.client("s3")
    try:
        obj = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code not in ("NoSuchKey", "404", "NotFound", "AccessDenied", "403"):
            raise
        raise UnprocessableError(
            f"input_uri {uri} cannot be read: {code}",
            [FieldError(FIELD, "no such object")],
            code=ErrorCode.INVALID_INPUT_FILE,
        ) from None
    if int(obj.get("ContentLength") or 0) > c.MAX_INPUT_BYTES:
        obj["Body"].close()
        raise BadRequestError(
            f"input_uri is larger than {c.MAX_INPUT_BYTES // (1024 * 1024)} MiB",
            [FieldError(FIELD, "object too large")],
            code=ErrorCode.INVALID_INPUT_FILE,
        )
    return _parse_lines(obj["Body"].iter_lines())


def _parse_lines(lines: Any) -> list[str]:
    ids: list[str] = []
    first_line: dict[str, int] = {}
    errors: list[FieldError] = []
    duplicates: list[FieldError] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        entity_id, problem = _entity_id(line)
        path = f"{FIELD}[{number}]"
        if problem:
            errors.append(FieldError(path, problem))
        elif entity_id in first_line:
            duplicates.append(FieldError(path, f"duplicate of line {first_line[entity_id]}"))
        else:
            first_line[entity_id] = number
            ids.append(entity_id)
        if len(ids) > c.MAX_INPUT_LINES:
            raise BadRequestError(
                f"input_uri has more than {c.MAX_INPUT_LINES:,} entities",
                [FieldError(FIELD, "too many lines")],
                code=ErrorCode.INVALID_INPUT_FILE,
            )
        if len(errors) >= MAX_REPORTED:
            break
    if errors:
        raise BadRequestError(
            f"input_uri: line {errors[0].path[len(FIELD) + 1 : -1]}: {errors[0].message}",
            errors,
            code=ErrorCode.INVALID_INPUT_FILE,
        )
    if duplicates:
        raise BadRequestError(
            f"{len(duplicates)} duplicated entity id(s) in input_uri; each entity may appear once",
            duplicates[:MAX_REPORTED],
            code=ErrorCode.DUPLICATE_ENTITY_IDS,
        )
    if not ids:
        raise BadRequestError(
            "input_uri holds no entity ids",
            [FieldError(FIELD, "empty")],
            code=ErrorCode.INVALID_INPUT_FILE,
        )
    return ids


def _entity_id(line: bytes) -> tuple[str, str | None]:
    try:
        value = json.loads(line)
    except ValueError:
        return "", "not JSON"
    if isinstance(value, dict):
        value = value.get("entity_id")
        if value is None:
            return "", "no entity_id"
    if not isinstance(value, str):
        return "", "entity id must be a string"
    if len(value) > c.MAX_ID_LENGTH or not _ID.fullmatch(value):
        return "", f"invalid entity id {value[:40]!r}"
    return value, None
