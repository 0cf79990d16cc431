"""Formatting and file parsing of the CLI: pure functions, no HTTP."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from batchpredict_cli.files import (
    InputFileError,
    parse_neighbours,
    parse_scalar,
    read_entities,
    read_ids,
)
from batchpredict_cli.output import (
    counts_of,
    csv_record,
    flatten,
    fmt_duration,
    fmt_value,
    job_elapsed,
    job_line,
    main_fields,
    results_table,
    write_csv,
)


def row(entity_id: str, prediction: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    return {
        "entity_id": entity_id,
        "status": "succeeded" if prediction is not None else "failed",
        "prediction": prediction,
        "quality": 1.0 if prediction is not None else None,
        "error": None if prediction is not None else {"code": "invalid_input", "message": "bad"},
        "cached": False,
        "attempts": 1,
        "duration_ms": 0.4,
        **extra,
    }


def render(table: Any) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(table)
    return console.file.getvalue()  # type: ignore[attr-defined]


# ---------------------------------------------------------------- CSV


def test_write_csv_columns_union_of_all_rows_in_first_seen_order() -> None:
    rows = [
        row("a", None),  # a failed row first: no prediction columns yet
        row("b", {"p": 0.5, "nested": {"x": 1, "y": [1, 2]}}),
        row("c", {"p": 0.25, "late": True}),
    ]
    out = io.StringIO()

    count = write_csv(rows, out)

    parsed = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert count == 3
    assert list(parsed[0])[8:] == ["p", "nested.x", "nested.y", "late"]
    assert parsed[0]["error_code"] == "invalid_input"
    assert parsed[0]["p"] == ""
    assert parsed[1]["nested.y"] == "[1,2]"
    assert parsed[2]["late"] == "true"


def test_csv_record_prefixes_prediction_fields_named_like_base_columns() -> None:
    record = csv_record(row("a", {"status": "odd", "quality": 3, "score": 1}))

    assert record["status"] == "succeeded"
    assert record["prediction.status"] == "odd"
    assert record["prediction.quality"] == 3
    assert record["score"] == 1


def test_flatten_nested_dicts_with_dots() -> None:
    assert flatten({"a": {"b": {"c": 1}}, "d": 2}) == {"a.b.c": 1, "d": 2}


# ---------------------------------------------------------------- tables and text


def test_results_table_ews_shows_critical_distance_column() -> None:
    text = render(
        results_table([row("a", {"critical_distance": 0.1234567, "warning": True})], "ews")
    )

    assert "critical_distance" in text
    assert "0.1235" in text
    assert "true" in text


def test_results_table_unknown_type_shows_first_scalar_fields() -> None:
    rows = [row("a", {"score": 1.5, "vec": [1, 2], "label": "x", "k": 1, "m": 2, "n": 3})]

    assert main_fields("custom", rows) == ["score", "label", "k", "m"]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (True, "true"),
        (0.0, "0"),
        (1.0, "1.0"),
        (0.21, "0.21"),
        (0.123456, "0.1235"),
        (1.5e-7, "1.500e-07"),
        (3, "3"),
        ({"a": 1}, '{"a":1}'),
    ],
)
def test_fmt_value(value: Any, text: str) -> None:
    assert fmt_value(value) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(4.12, "4.1 s"), (125, "2 min 05 s"), (7260, "2 h 01 min"), (None, "?")]
)
def test_fmt_duration(seconds: float | None, text: str) -> None:
    assert fmt_duration(seconds) == text


def test_counts_of_derives_done_and_pending() -> None:
    job = {"counts": {"total": 10, "succeeded": 5, "failed": 2, "cancelled": 1, "cached": 3}}

    assert counts_of(job) == {
        "total": 10, "succeeded": 5, "failed": 2, "cancelled": 1, "cached": 3, "pending": 2,
        "done": 8,
    }  # fmt: skip


def test_job_line_and_elapsed_from_created_to_finished() -> None:
    job = {
        "job_id": "j-1",
        "prediction_type": "ising",
        "status": "COMPLETED",
        "counts": {"total": 4, "succeeded": 4, "failed": 0, "cancelled": 0, "cached": 1},
        "created_at": "2026-11-24T12:00:00.000Z",
        "started_at": "2026-11-24T12:00:01.000Z",
        "finished_at": "2026-11-24T12:00:03.500Z",
        "throughput_items_per_second": 1.6,
    }

    assert job_elapsed(job) == 3.5
    assert job_line(job) == (
        "j-1 ising COMPLETED: 4/4 done, succeeded 4, failed 0, cancelled 0, cached 1, "
        "in 3.5 s (2 items/s)"
    )


# ---------------------------------------------------------------- files


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("FALSE", False), ("3", 3), ("-0.5", -0.5), ("1e3", 1000.0), ("nan", "nan"),
     ("north", "north")],
)  # fmt: skip
def test_parse_scalar_reads_csv_cells_like_json(text: str, value: Any) -> None:
    assert parse_scalar(text) == value


def test_parse_neighbours_weight_after_last_colon_only_if_number() -> None:
    assert parse_neighbours("a:1; ns:b:0.5 ;c;ns:d;") == [
        {"entity_id": "a", "weight": 1.0},
        {"entity_id": "ns:b", "weight": 0.5},
        {"entity_id": "c"},
        {"entity_id": "ns:d"},
    ]


def test_parse_neighbours_infinite_weight_refused() -> None:
    with pytest.raises(ValueError, match="not a finite number"):
        parse_neighbours("a:inf")


def test_read_entities_json_list_and_wrapped(tmp_path: Path) -> None:
    listed = tmp_path / "a.json"
    listed.write_text('[{"entity_id": "a"}, {"entity_id": "b"}]')
    wrapped = tmp_path / "b.json"
    wrapped.write_text('{"entities": [{"entity_id": "c"}]}')

    assert [e["entity_id"] for e in read_entities(listed)] == ["a", "b"]
    assert [e["entity_id"] for e in read_entities(wrapped)] == ["c"]


def test_read_entities_csv_without_entity_id_column_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id,spin\na,1\n")

    with pytest.raises(InputFileError, match="no 'entity_id' column"):
        list(read_entities(path))


def test_read_ids_csv_entities_file(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("entity_id,spin\na,1\nb,-1\n")

    assert read_ids(path) == ["a", "b"]


def test_read_ids_empty_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("# nothing\n\n")

    with pytest.raises(InputFileError, match="no entity ids"):
        read_ids(path)
