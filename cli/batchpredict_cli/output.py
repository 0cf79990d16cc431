"""How jobs and results look on a terminal and in files (table, JSONL, CSV)."""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import IO, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

# The fields a results table shows per prediction type; other types show their first scalars.
MAIN_FIELDS: dict[str, list[str]] = {
    "ising": ["spin_flip_probability", "expected_spin", "local_field"],
    "cascade": ["adopted", "adoption_generation", "adopted_neighbour_share"],
    "ews": ["critical_distance", "autocorrelation", "variance", "warning"],
}
GENERIC_FIELD_COUNT = 4
STATUS_STYLE = {
    "QUEUED": "cyan",
    "PROCESSING": "blue",
    "COMPLETED": "green",
    "COMPLETED_WITH_ERRORS": "yellow",
    "FAILED": "red",
    "CANCELLING": "magenta",
    "CANCELLED": "magenta",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "magenta",
}
# Columns every CSV row has, before the flattened prediction.
CSV_BASE_COLUMNS = [
    "entity_id",
    "status",
    "cached",
    "quality",
    "attempts",
    "duration_ms",
    "error_code",
    "error_message",
]


# ---------------------------------------------------------------- small formats


def make_console(*, stderr: bool = False, file: IO[str] | None = None) -> Console:
    """A console for stdout, stderr or `file`; wide enough for tables when not a terminal."""
    console = Console(stderr=stderr, file=file, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(stderr=stderr, file=file, highlight=False, width=160)
    return console


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def fmt_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == 0:
            return "0"
        if 1e-3 <= abs(value) < 1e5:
            text = f"{value:.4f}".rstrip("0")
            return text + "0" if text.endswith(".") else text
        return f"{value:.3e}"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def styled_status(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def job_elapsed(job: Mapping[str, Any], now: datetime | None = None) -> float | None:
    """Seconds from the job's creation (as its submitter sees it) to its end (or now)."""
    start = parse_time(job.get("created_at")) or parse_time(job.get("started_at"))
    if start is None:
        return None
    end = parse_time(job.get("finished_at")) or now or datetime.now(UTC)
    return (end - start).total_seconds()


def job_eta(job: Mapping[str, Any], now: datetime | None = None) -> float | None:
    """Seconds until the API's estimated completion (None when it has none)."""
    estimate = parse_time(job.get("estimated_completion"))
    if estimate is None:
        return None
    return max(0.0, (estimate - (now or datetime.now(UTC))).total_seconds())


def counts_of(job: Mapping[str, Any]) -> dict[str, int]:
    counts = dict(job.get("counts") or {})
    total = int(counts.get("total", job.get("total_items") or 0))
    done = sum(int(counts.get(k, 0)) for k in ("succeeded", "failed", "cancelled"))
    return {
        "total": total,
        "succeeded": int(counts.get("succeeded", 0)),
        "failed": int(counts.get("failed", 0)),
        "cancelled": int(counts.get("cancelled", 0)),
        "cached": int(counts.get("cached", 0)),
        "pending": int(counts.get("pending", max(0, total - done))),
        "done": done,
    }


def job_line(job: Mapping[str, Any]) -> str:
    """One plain line that sums a job up (the end of `status --watch`, scripts' logs)."""
    c = counts_of(job)
    elapsed = job_elapsed(job)
    rate = job.get("throughput_items_per_second")
    text = (
        f"{job.get('job_id')} {job.get('prediction_type')} {job.get('status')}: "
        f"{c['done']}/{c['total']} done, succeeded {c['succeeded']}, failed {c['failed']}, "
        f"cancelled {c['cancelled']}, cached {c['cached']}"
    )
    if elapsed is not None and job.get("finished_at"):
        text += f", in {fmt_duration(elapsed)}"
    if rate:
        text += f" ({float(rate):,.0f} items/s)"
    return text


def job_details(job: Mapping[str, Any]) -> Table:
    """`batchpredict status JOB`: the job's state as a two-column grid."""
    c = counts_of(job)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("job", f"{job.get('job_id')}  ({job.get('prediction_type')})")
    grid.add_row("status", styled_status(str(job.get("status"))))
    progress = float(job.get("progress") or (c["done"] / c["total"] if c["total"] else 1.0))
    grid.add_row("progress", f"{progress:.1%}  ({c['done']:,} of {c['total']:,} items)")
    grid.add_row(
        "counts",
        f"succeeded {c['succeeded']:,}  failed {c['failed']:,}  cancelled {c['cancelled']:,}  "
        f"cached {c['cached']:,}  pending {c['pending']:,}",
    )
    rate = job.get("throughput_items_per_second")
    grid.add_row("throughput", f"{float(rate):,.1f} items/s" if rate else "-")
    for key in ("created_at", "started_at", "finished_at"):
        if job.get(key):
            grid.add_row(key.removesuffix("_at"), str(job[key]))
    elapsed = job_elapsed(job)
    if elapsed is not None:
        grid.add_row("elapsed", fmt_duration(elapsed))
    if job.get("status") not in ("COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELLED"):
        grid.add_row("eta", fmt_duration(job_eta(job)))
    if job.get("parameters"):
        grid.add_row("parameters", fmt_value(job["parameters"]))
    if job.get("metadata"):
        grid.add_row("metadata", fmt_value(job["metadata"]))
    return grid


def jobs_table(jobs: Iterable[Mapping[str, Any]]) -> Table:
    table = Table(show_edge=False, header_style="bold")
    for name in ("job", "type", "status", "items", "priority", "created", "finished"):
        table.add_column(name, justify="right" if name == "items" else "left", no_wrap=True)
    for job in jobs:
        table.add_row(
            str(job.get("job_id")),
            str(job.get("prediction_type")),
            styled_status(str(job.get("status"))),
            f"{int(job.get('total_items') or 0):,}",
            str(job.get("priority") or "-"),
            str(job.get("created_at") or "-"),
            str(job.get("finished_at") or "-"),
        )
    return table


# ---------------------------------------------------------------- results


def main_fields(prediction_type: str | None, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    if prediction_type in MAIN_FIELDS:
        return MAIN_FIELDS[prediction_type]
    for row in rows:
        prediction = row.get("prediction")
        if isinstance(prediction, dict) and prediction:
            scalars = [k for k, v in prediction.items() if not isinstance(v, dict | list)]
            return scalars[:GENERIC_FIELD_COUNT]
    return []


def results_table(rows: Sequence[Mapping[str, Any]], prediction_type: str | None) -> Table:
    fields = main_fields(prediction_type, rows)
    has_errors = any(row.get("error") for row in rows)
    table = Table(show_edge=False, header_style="bold")
    table.add_column("entity", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for field in fields:
        table.add_column(field, justify="right")
    table.add_column("quality", justify="right")
    table.add_column("cached", justify="center")
    if has_errors:
        table.add_column("error")
    for row in rows:
        prediction = row.get("prediction") or {}
        cells: list[Any] = [str(row.get("entity_id")), styled_status(str(row.get("status")))]
        cells += [fmt_value(prediction.get(field)) for field in fields]
        cells += [fmt_value(row.get("quality")), "yes" if row.get("cached") else "no"]
        if has_errors:
            error = row.get("error") or {}
            cells.append(f"{error.get('code')}: {error.get('message')}" if error else "")
        table.add_row(*cells)
    return table


def write_jsonl(rows: Iterable[Mapping[str, Any]], handle: IO[str]) -> int:
    count = 0
    for row in rows:
        handle.write(json.dumps(row, separators=(",", ":")) + "\n")
        count += 1
    return count


def flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}, "c": [1, 2]} -> {"a.b": 1, "c": "[1,2]"}."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict):
            out.update(flatten(item, f"{name}."))
        else:
            out[name] = item
    return out


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def csv_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """One result row as flat CSV cells: the base columns, then the prediction's fields."""
    error = row.get("error") or {}
    record: dict[str, Any] = {
        "entity_id": row.get("entity_id"),
        "status": row.get("status"),
        "cached": row.get("cached"),
        "quality": row.get("quality"),
        "attempts": row.get("attempts"),
        "duration_ms": row.get("duration_ms"),
        "error_code": error.get("code") if isinstance(error, dict) else None,
        "error_message": error.get("message") if isinstance(error, dict) else None,
    }
    prediction = row.get("prediction")
    if isinstance(prediction, dict):
        for key, value in flatten(prediction).items():
            # a prediction field named like a base column keeps a prefix
            record[f"prediction.{key}" if key in CSV_BASE_COLUMNS else key] = value
    return record


def write_csv(rows: Iterable[Mapping[str, Any]], handle: IO[str]) -> int:
    """Writes rows as CSV with one column per (flattened) prediction field.

    The columns are known only once every row is seen, so the rows go to a temporary JSONL
    file first: memory stays flat for a million rows.
    """
    columns = list(CSV_BASE_COLUMNS)
    known = set(columns)
    count = 0
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
        for row in rows:
            record = csv_record(row)
            for key in record:
                if key not in known:
                    known.add(key)
                    columns.append(key)
            spool.write(json.dumps(record, separators=(",", ":")) + "\n")
            count += 1
        spool.seek(0)
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for line in spool:
            record = json.loads(line)
            writer.writerow({k: csv_cell(record.get(k)) for k in columns})
    return count
