"""Reading entities and entity ids from files: JSONL, JSON or CSV (docs/CLI.md)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ENTITY_FORMATS = ("jsonl", "json", "csv")
# CSV columns that are not attributes
CSV_ID, CSV_NEIGHBOURS, CSV_SERIES = "entity_id", "neighbours", "time_series"


class InputFileError(Exception):
    """A file the CLI cannot use; the message names the file and line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        where = f"{path} line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")


def guess_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    return {"csv": "csv", "json": "json"}.get(suffix, "jsonl")


def read_entities(path: str | Path, fmt: str | None = None) -> Iterator[dict[str, Any]]:
    """The file's entities as API dicts, lazily (a file may be larger than memory)."""
    fmt = fmt or guess_format(path)
    try:
        handle = open(path, encoding="utf-8", newline="")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise InputFileError(path, exc.strerror or str(exc)) from exc
    with handle:
        if fmt == "csv":
            yield from _csv_entities(path, handle)
        elif fmt == "json":
            yield from _json_entities(path, handle.read())
        else:
            yield from _jsonl_entities(path, handle)


def _jsonl_entities(path: str | Path, handle: Any) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            entity = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputFileError(path, f"not JSON ({exc.msg})", number) from exc
        if not isinstance(entity, dict) or "entity_id" not in entity:
            raise InputFileError(path, "expected an object with an entity_id", number)
        yield entity


def _json_entities(path: str | Path, text: str) -> Iterator[dict[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFileError(path, f"not JSON ({exc.msg})", exc.lineno) from exc
    if isinstance(data, dict) and isinstance(data.get("entities"), list):
        data = data["entities"]
    if not isinstance(data, list):
        raise InputFileError(path, 'expected a list of entities or {"entities": [...]}')
    for position, entity in enumerate(data):
        if not isinstance(entity, dict) or "entity_id" not in entity:
            raise InputFileError(path, f"entity {position} has no entity_id")
        yield entity


def _csv_entities(path: str | Path, handle: Any) -> Iterator[dict[str, Any]]:
    reader = csv.DictReader(handle)
    if not reader.fieldnames or CSV_ID not in reader.fieldnames:
        raise InputFileError(path, f"the header has no {CSV_ID!r} column", 1)
    for row in reader:
        line = reader.line_num
        entity_id = (row.get(CSV_ID) or "").strip()
        if not entity_id:
            raise InputFileError(path, "empty entity_id", line)
        entity: dict[str, Any] = {"entity_id": entity_id}
        attributes = {}
        for column, cell in row.items():
            if column in (CSV_ID, CSV_NEIGHBOURS, CSV_SERIES) or column is None:
                continue
            if cell is None or cell.strip() == "":
                continue  # an empty cell is an absent attribute
            attributes[column.strip()] = parse_scalar(cell.strip())
        if attributes:
            entity["attributes"] = attributes
        try:
            if (row.get(CSV_NEIGHBOURS) or "").strip():
                entity["neighbours"] = parse_neighbours(row[CSV_NEIGHBOURS])
            if (row.get(CSV_SERIES) or "").strip():
                entity["time_series"] = parse_series(row[CSV_SERIES])
        except ValueError as exc:
            raise InputFileError(path, str(exc), line) from exc
        yield entity


def parse_scalar(text: str) -> Any:
    """A CSV cell as JSON would read it: true/false, an integer, a finite number, else text."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def parse_neighbours(text: str) -> list[dict[str, Any]]:
    """ "a:0.5;b;c:1" -> [{"entity_id": "a", "weight": 0.5}, {"entity_id": "b"}, ...].

    Ids may hold ':' themselves: the weight is the part after the last ':' when that part is a
    number; otherwise the whole item is the id (weight 1.0, the API's default).
    """
    out: list[dict[str, Any]] = []
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        head, sep, tail = item.rpartition(":")
        if sep and head:
            try:
                weight = float(tail)
            except ValueError:
                out.append({"entity_id": item})
                continue
            if not math.isfinite(weight):
                raise ValueError(f"neighbour {head!r} has weight {tail!r}: not a finite number")
            out.append({"entity_id": head, "weight": weight})
        else:
            out.append({"entity_id": item})
    return out


def parse_series(text: str) -> list[float]:
    values = []
    for position, item in enumerate(text.split(";")):
        item = item.strip()
        if not item:
            continue
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"time_series[{position}] is {item!r}: not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"time_series[{position}] is {item!r}: not a finite number")
        values.append(value)
    return values


def read_ids(path: str | Path) -> list[str]:
    """Entity ids from a file: one per line (blank lines and # comments skipped), or the
    entity_id of every entity in a JSONL/JSON/CSV entities file."""
    fmt = guess_format(path)
    if fmt in ("csv", "json"):
        return [str(entity["entity_id"]) for entity in read_entities(path, fmt)]
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputFileError(path, exc.strerror or str(exc)) from exc
    ids = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            try:
                ids.append(str(json.loads(line)["entity_id"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise InputFileError(path, "expected an id or an entity object", number) from exc
        else:
            ids.append(line)
    if not ids:
        raise InputFileError(path, "no entity ids in the file")
    return ids
