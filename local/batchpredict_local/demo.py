"""The main job (`make demo`): the whole system on this machine, three 1,000+ entity jobs.

1. start the local stack (moto, HTTP front, pollers, timer) from template.yaml;
2. generate 3,000 synthetic actors (seed 42) and import them over HTTP;
3. submit an ising job and an ews job on every actor and a cascade job on 1,500 of them, and
   show their live progress;
4. per job: counts, wall time, throughput, p50/p95 prediction time, cache hits, top predictions;
5. write every result to out/demo/<type>.jsonl and .csv;
6. resubmit the ising job unchanged: every item must come from the cache;
then stop the stack (also on Ctrl-C or an error). Exit code 0 only when every job completed
with exact counts: every item accounted for once, one result row per entity.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from batchpredict_cli.client import ApiError, ApiUnreachable, Client
from batchpredict_cli.output import (
    counts_of,
    fmt_duration,
    fmt_value,
    make_console,
    parse_time,
    styled_status,
    write_csv,
    write_jsonl,
)
from batchpredict_cli.progress import watch_jobs
from batchpredict_local.demo_data import generate_network

REPO_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
JOB_TIMEOUT_SECONDS = 900
PARAMETERS: dict[str, dict[str, Any]] = {
    "ising": {"temperature": 2.0, "time_horizon": 1.0},
    "cascade": {"max_generations": 3},
    "ews": {"time_window": 60},
}
# The functions' own logs and EMF metric blobs would drown the demo's output.
QUIET_FUNCTIONS = {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}


@dataclass
class JobRun:
    """One submitted job: what was asked, what came back, and what was checked."""

    label: str
    prediction_type: str
    entity_ids: list[str]
    submitted: dict[str, Any]
    final: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def job_id(self) -> str:
        return str(self.submitted["job_id"])

    @property
    def wall_seconds(self) -> float | None:
        created = parse_time(self.final.get("created_at"))
        finished = parse_time(self.final.get("finished_at"))
        return (finished - created).total_seconds() if created and finished else None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m batchpredict_local.demo",
        description="Run the local stack, three 1,000+ entity prediction jobs and a summary.",
    )
    parser.add_argument("--entities", type=int, default=3000, help="actors to generate (3000)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the demo network (42)")
    parser.add_argument(
        "--output-dir", type=Path, default=Path("out/demo"), help="results go here (out/demo)"
    )
    parser.add_argument(
        "--keep-running", action="store_true", help="keep serving the API after the demo"
    )
    parser.add_argument("--template", type=Path, default=None, help="SAM template (template.yaml)")
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="API port (default: any free one; 8080, the CLI's default, with --keep-running)",
    )
    parser.add_argument("--interval", type=float, default=0.5, help="progress poll seconds")
    args = parser.parse_args(argv)
    if args.entities < 2:
        parser.error("--entities must be at least 2")
    return args


def cascade_targets(entities: Sequence[dict[str, Any]], seed: int) -> list[str]:
    """Half the actors, drawn from those whose ties are all non-negative.

    Granovetter's threshold model has no negative influence: the cascade predictor refuses a
    target with a negative tie (docs/PREDICTORS.md), so the demo asks only for the others.
    """
    eligible = [
        e["entity_id"]
        for e in entities
        if all(float(n.get("weight", 1.0)) >= 0 for n in e.get("neighbours", []))
    ]
    count = min(len(eligible), max(1, len(entities) // 2))
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(eligible), size=count, replace=False)
    return sorted(eligible[int(i)] for i in chosen)


# ---------------------------------------------------------------- checks


def check_run(run: JobRun, *, expect_cached: bool = False) -> list[str]:
    """Every way the job could be wrong, as readable sentences (empty when it is right)."""
    problems = []
    job, c = run.final, counts_of(run.final)
    expected = len(run.entity_ids)
    if job.get("status") != "COMPLETED":
        problems.append(f"status is {job.get('status')}, not COMPLETED")
    if c["total"] != expected:
        problems.append(f"total is {c['total']}, but {expected} entities were submitted")
    if c["succeeded"] + c["failed"] + c["cancelled"] != c["total"] or c["pending"] != 0:
        problems.append(
            f"counts do not add up: {c['succeeded']} + {c['failed']} + {c['cancelled']} "
            f"!= {c['total']} (pending {c['pending']})"
        )
    ids = [row.get("entity_id") for row in run.rows]
    if len(ids) != expected or set(ids) != set(run.entity_ids):
        duplicates = len(ids) - len(set(ids))
        problems.append(
            f"{len(ids)} result rows for {expected} entities "
            f"({duplicates} duplicated, {len(set(run.entity_ids) - set(ids))} missing)"
        )
    by_status = Counter(row.get("status") for row in run.rows)
    for status in ("succeeded", "failed", "cancelled"):
        if by_status[status] != c[status]:
            problems.append(f"{by_status[status]} {status} rows, but the job counts {c[status]}")
    cached_rows = sum(1 for row in run.rows if row.get("cached"))
    if cached_rows != c["cached"]:
        problems.append(f"{cached_rows} cached rows, but the job counts {c['cached']}")
    if expect_cached and c["cached"] != expected:
        problems.append(f"only {c['cached']} of {expected} items came from the cache")
    return problems


# ---------------------------------------------------------------- summaries


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else None


def summary_table(runs: Sequence[JobRun]) -> Table:
    """One row per job. Latency is the model's time per computed prediction (cached items
    take none); throughput is items over the job's wall time, submission to last result."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold")
    for name, justify in (
        ("job", "left"),
        ("status", "left"),
        ("items", "right"),
        ("ok", "right"),
        ("failed", "right"),
        ("cached", "right"),
        ("wall", "right"),
        ("items/s", "right"),
        ("p50 ms", "right"),
        ("p95 ms", "right"),
        ("check", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for run in runs:
        c = counts_of(run.final)
        durations = [
            float(row["duration_ms"])
            for row in run.rows
            if row.get("status") == "succeeded"
            and not row.get("cached")
            and row.get("duration_ms") is not None
        ]
        wall = run.wall_seconds
        table.add_row(
            run.label,
            styled_status(str(run.final.get("status"))),
            f"{c['total']:,}",
            f"{c['succeeded']:,}",
            f"{c['failed'] + c['cancelled']:,}",
            f"{c['cached']:,}",
            fmt_duration(wall),
            f"{c['total'] / wall:,.0f}" if wall else "-",
            fmt_value(percentile(durations, 50)),
            fmt_value(percentile(durations, 95)),
            "[green]exact[/]" if not run.problems else "[red]WRONG[/]",
        )
    return table


def overall_line(runs: Sequence[JobRun]) -> str:
    """Items of all the jobs over the time from the first submission to the last result."""
    starts = [parse_time(run.final.get("created_at")) for run in runs]
    ends = [parse_time(run.final.get("finished_at")) for run in runs]
    items = sum(counts_of(run.final)["total"] for run in runs)
    if not all(starts) or not all(ends):
        return f"{items:,} predictions"
    seconds = (max(e for e in ends if e) - min(s for s in starts if s)).total_seconds()
    return (
        f"{items:,} predictions in {fmt_duration(seconds)} (first submission to last result): "
        f"{items / seconds:,.0f}/s with the {len(runs)} jobs side by side"
    )


def _predictions(run: JobRun) -> list[tuple[str, dict[str, Any]]]:
    return [
        (str(row["entity_id"]), row["prediction"])
        for row in run.rows
        if row.get("status") == "succeeded" and isinstance(row.get("prediction"), dict)
    ]


def ising_top(run: JobRun, actors: dict[str, dict[str, Any]]) -> tuple[Table, str]:
    table = Table(
        title="ising: the 5 actors most likely to flip their spin",
        header_style="bold",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    for name in ("actor", "community", "spin", "local field", "spin_flip_probability"):
        table.add_column(name, justify="left" if name in ("actor", "community") else "right")
    top = sorted(_predictions(run), key=lambda p: (-float(p[1]["spin_flip_probability"]), p[0]))[:5]
    for entity_id, value in top:
        attributes = actors[entity_id]["attributes"]
        table.add_row(
            entity_id,
            str(attributes.get("community")),
            fmt_value(value.get("spin")),
            fmt_value(value.get("local_field")),
            fmt_value(value.get("spin_flip_probability")),
        )
    predictions = _predictions(run)
    likely = sum(1 for _, v in predictions if float(v["spin_flip_probability"]) > 0.5)
    note = (
        f"{likely:,} of {len(predictions):,} actors ({likely / max(1, len(predictions)):.0%}) "
        "are more likely than not to flip: their spin opposes their neighbours' field"
    )
    return table, note


def cascade_top(run: JobRun) -> Table:
    predictions = _predictions(run)
    total = len(predictions) or 1
    generations = Counter(value.get("adoption_generation") for _, value in predictions)
    last = max((g for g in generations if g is not None), default=0)
    table = Table(
        title=f"cascade: adoption by generation ({len(predictions):,} actors)",
        header_style="bold",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    for name in ("generation", "new adopters", "adopted so far", "share", "earliest adopters"):
        table.add_column(name, justify="left" if name == "earliest adopters" else "right")
    cumulative = 0
    for generation in range(last + 1):
        new = generations.get(generation, 0)
        cumulative += new
        first = sorted(e for e, v in predictions if v.get("adoption_generation") == generation)
        table.add_row(
            "0 (seeds)" if generation == 0 else str(generation),
            f"{new:,}",
            f"{cumulative:,}",
            f"{cumulative / total:.1%}",
            ", ".join(first[:3]) + (", ..." if len(first) > 3 else ""),
        )
    table.add_row("never", f"{generations.get(None, 0):,}", "", "", "")
    return table


def ews_top(run: JobRun, actors: dict[str, dict[str, Any]]) -> tuple[Table, str]:
    table = Table(
        title="ews: the 5 actors closest to a critical transition",
        header_style="bold",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    for name in (
        "actor",
        "critical_distance",
        "autocorrelation",
        "variance",
        "warning",
        "near_transition",
    ):
        table.add_column(name, justify="left" if name == "actor" else "right")
    ranked = sorted(
        (p for p in _predictions(run) if p[1].get("critical_distance") is not None),
        key=lambda p: (float(p[1]["critical_distance"]), p[0]),
    )
    for entity_id, value in ranked[:5]:
        near = bool(actors[entity_id]["attributes"].get("near_transition"))
        table.add_row(
            entity_id,
            fmt_value(value.get("critical_distance")),
            fmt_value(value.get("autocorrelation")),
            fmt_value(value.get("variance")),
            fmt_value(value.get("warning")),
            "[bold green]true[/]" if near else "false",
        )
    truly_near = sum(1 for e in run.entity_ids if actors[e]["attributes"].get("near_transition"))
    hits = sum(1 for e, _ in ranked[:truly_near] if actors[e]["attributes"].get("near_transition"))
    note = (
        f"of the {truly_near:,} smallest critical distances, {hits:,} "
        f"({hits / truly_near:.0%}) belong to the {truly_near:,} actors generated near a "
        f"transition (chance: {truly_near / max(1, len(run.entity_ids)):.0%})"
        if truly_near
        else "no actor was generated near a transition"
    )
    return table, note


# ---------------------------------------------------------------- the run


class Demo:
    def __init__(self, client: Client, console: Console, args: argparse.Namespace) -> None:
        self.client = client
        self.console = console
        self.args = args

    def step(self, text: str) -> None:
        self.console.print(f"\n[bold cyan]>[/] [bold]{text}[/]")

    def run(self) -> bool:
        args, console = self.args, self.console
        self.step(f"generating {args.entities:,} actors (seed {args.seed})")
        began = time.perf_counter()
        entities = generate_network(args.entities, args.seed)
        actors = {e["entity_id"]: e for e in entities}
        ties = sum(len(e["neighbours"]) for e in entities) // 2
        communities = len({e["attributes"]["community"] for e in entities})
        seeds = sum(1 for e in entities if e["attributes"]["adopted"])
        near = sum(1 for e in entities if e["attributes"]["near_transition"])
        console.print(
            f"  {len(entities):,} actors in {communities} communities, {ties:,} ties, "
            f"{seeds} seed adopters, {near} near a critical transition "
            f"({time.perf_counter() - began:.1f} s)"
        )
        began = time.perf_counter()
        calls = 0

        def counted(_: int) -> None:
            nonlocal calls
            calls += 1

        with console.status("importing over HTTP..."):
            answer = self.client.put_entities(entities, on_batch=counted)
        seconds = time.perf_counter() - began
        console.print(
            f"  imported {answer['upserted']:,} entities in {calls} PUT /v1/entities calls "
            f"({seconds:.1f} s, {answer['upserted'] / seconds:,.0f} entities/s)"
        )

        all_ids = [e["entity_id"] for e in entities]
        plan = [
            ("ising", all_ids),
            ("cascade", cascade_targets(entities, args.seed)),
            ("ews", all_ids),
        ]
        self.step("submitting three jobs")
        runs = []
        for prediction_type, ids in plan:
            submitted = self.client.submit_job(
                prediction_type,
                entity_ids=ids,
                parameters=PARAMETERS[prediction_type],
                metadata={"source": "make demo"},
            )
            runs.append(JobRun(prediction_type, prediction_type, ids, submitted))
            console.print(
                f"  {submitted['job_id']}  {prediction_type:<8} {len(ids):>6,} entities, "
                f"{submitted.get('chunk_count', '?')} chunks  "
                + " ".join(f"{k}={v}" for k, v in PARAMETERS[prediction_type].items())
            )
        if len(plan[1][1]) < len(all_ids):
            console.print(
                "  [dim](cascade: actors whose ties are all non-negative; the threshold model "
                "has no negative influence)[/]"
            )
        self.finish(runs)

        self.step("summary")
        console.print(summary_table(runs))
        console.print(f"  {overall_line(runs)}")
        console.print(
            "  [dim]wall: submission to last result; p50/p95: the model's time per computed "
            "prediction[/]\n"
        )
        table, note = ising_top(runs[0], actors)
        console.print(table)
        console.print(f"  {note}\n")
        console.print(cascade_top(runs[1]))
        table, note = ews_top(runs[2], actors)
        console.print(table)
        console.print(f"  {note}")

        self.step(f"writing results to {args.output_dir}/")
        args.output_dir.mkdir(parents=True, exist_ok=True)
        for run in runs:
            jsonl = args.output_dir / f"{run.prediction_type}.jsonl"
            csv_path = args.output_dir / f"{run.prediction_type}.csv"
            with open(jsonl, "w", encoding="utf-8") as handle:
                write_jsonl(run.rows, handle)
            with open(csv_path, "w", encoding="utf-8", newline="") as handle:
                write_csv(run.rows, handle)
            console.print(f"  {jsonl}  {csv_path}  ({len(run.rows):,} rows each)")

        self.step("resubmitting the ising job unchanged: every item should come from the cache")
        first = runs[0]
        again = JobRun(
            "ising (again)",
            "ising",
            first.entity_ids,
            self.client.submit_job(
                "ising",
                entity_ids=first.entity_ids,
                parameters=PARAMETERS["ising"],
                metadata={"source": "make demo"},
            ),
        )
        self.finish([again], expect_cached=True)
        c = counts_of(again.final)
        console.print(
            f"  {c['cached']:,} of {c['total']:,} items from the cache "
            f"({c['cached'] / max(1, c['total']):.0%}), counts "
            + ("[green]exact[/]" if not again.problems else "[red]WRONG[/]")
            + f", in {fmt_duration(again.wall_seconds)} (the first run: "
            f"{fmt_duration(first.wall_seconds)}; both bound by queue and table round trips, "
            "not by the model)"
        )

        problems = [(run, p) for run in [*runs, again] for p in run.problems]
        if problems:
            console.print("\n[bold red]the demo found problems:[/]")
            for run, problem in problems:
                console.print(
                    Text.assemble(("  x ", "red"), f"{run.label} ({run.job_id}): {problem}")
                )
            return False
        console.print(
            "\n[bold green]every job completed with exact counts[/]: each item accounted for "
            "once, one result per entity;\nthe resubmission came entirely from the cache."
        )
        return True

    def finish(self, runs: list[JobRun], *, expect_cached: bool = False) -> None:
        """Live progress until every job ends, then fetch and check each job's results."""
        finals = watch_jobs(
            self.client,
            [run.submitted for run in runs],
            console=self.console,
            interval=self.args.interval,
            labels={run.job_id: f"{run.label:<14}" for run in runs},
            timeout=JOB_TIMEOUT_SECONDS,
        )
        for run in runs:
            run.final = finals[run.job_id]
            run.rows = list(self.client.iter_results(run.job_id))
            run.problems = check_run(run, expect_cached=expect_cached)


def _quiet_logs() -> None:
    # Powertools warns on every invocation that publishes no metric (metrics are off here).
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    # Only warnings from the stack and boto3: the demo narrates the rest (a no-op when the
    # process has configured logging already).
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # More threads than pooled connections to moto at peaks: urllib3 drops the extra
    # connection after use, which costs a reconnect, not a request.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


@contextmanager
def stdout_to(path: Path) -> Iterator[None]:
    """Sends what the functions print (Powertools' JSON logs and EMF metric blobs: they run in
    this process) to a file while the stack runs; the demo's console keeps the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    real = sys.stdout
    with open(path, "w", encoding="utf-8", buffering=1) as log:
        sys.stdout = log
        try:
            yield
        finally:
            sys.stdout = real


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    _quiet_logs()
    # Bound to the real stdout before stdout_to() swaps sys.stdout for the functions.
    console = make_console(file=sys.stdout)
    from batchpredict_local.errors import LocalStackError, TemplateError
    from batchpredict_local.stack import LocalStack  # heavy: only once the arguments are fine

    template = args.template or (
        Path("template.yaml") if Path("template.yaml").exists() else REPO_TEMPLATE
    )
    console.print(
        f"[bold]batchpredict demo[/]: {args.entities:,} actors, three prediction jobs, "
        "on the local stack (no AWS account, no Docker)"
    )
    if not template.is_file():
        console.print(Text.assemble(("error: ", "red"), f"no SAM template at {template}"))
        return 1
    port = args.port if args.port is not None else (8080 if args.keep_running else 0)
    try:
        stack = LocalStack(
            template, api_port=port, moto_port=0, schedules=True, overrides=QUIET_FUNCTIONS
        )
    except (LocalStackError, TemplateError) as exc:
        console.print(Text.assemble(("error: ", "red"), str(exc)))
        return 1
    functions_log = args.output_dir / "functions.log"
    with stdout_to(functions_log):
        code = run_on_stack(stack, console, args, port)
    console.print(
        f"{'done' if code == 0 else 'ended'} in {fmt_duration(time.perf_counter() - began)}; "
        f"the functions' logs are in {functions_log}"
    )
    return code


def run_on_stack(stack: Any, console: Console, args: argparse.Namespace, port: int) -> int:
    """Starts the stack, runs the demo, stops the stack whatever happens."""
    from batchpredict_local.errors import LocalStackError, TemplateError

    started = False
    try:
        began = time.perf_counter()
        with console.status("starting the local stack (moto, HTTP front, pollers, timer)..."):
            stack.start()
        started = True
        console.print(
            f"[bold cyan]>[/] [bold]local stack up[/] at {stack.url} in "
            f"{time.perf_counter() - began:.1f} s ({len(stack.functions)} functions, "
            f"{len(stack.routes)} routes)"
        )
        client = Client(stack.url, api_key=stack.api_key("demo"))
        ok = Demo(client, console, args).run()
        if args.keep_running:
            cli = "batchpredict" if port == 8080 else f"batchpredict --api-url {stack.url}"
            console.print(
                f"\nthe local stack keeps running at [bold]{stack.url}[/] (x-api-key "
                f"{stack.api_key('demo')}); try:\n  {cli} jobs\n  {cli} results JOB --format csv\n"
                "Ctrl-C stops it."
            )
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                console.print("\nstopping")
        return 0 if ok else 1
    except KeyboardInterrupt:
        console.print("\ninterrupted")
        return 130
    except (ApiError, ApiUnreachable, LocalStackError, TemplateError) as exc:
        console.print(Text.assemble(("error: ", "red"), str(exc)))
        return 1
    except Exception as exc:
        if os.environ.get("BATCHPREDICT_DEBUG"):
            raise
        console.print(Text.assemble(("error: ", "red"), f"{type(exc).__name__}: {exc}"))
        return 1
    finally:
        with console.status("stopping the local stack..."):
            stack.stop()
        if started:
            console.print("local stack stopped")


if __name__ == "__main__":
    sys.exit(main())
