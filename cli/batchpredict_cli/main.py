"""`batchpredict`: submit, watch, fetch and cancel batch-prediction jobs from a shell.

Every API error is one line on stderr and exit code 1, never a traceback (docs/CLI.md lists
the exit codes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from itertools import islice
from typing import IO, Any

from rich.console import Console

from batchpredict_cli.client import (
    TERMINAL_STATUSES,
    ApiError,
    ApiUnreachable,
    Client,
    ClientConfigError,
    is_local_url,
)
from batchpredict_cli.files import InputFileError, read_entities, read_ids
from batchpredict_cli.output import (
    counts_of,
    job_details,
    job_line,
    jobs_table,
    make_console,
    results_table,
    write_csv,
    write_jsonl,
)
from batchpredict_cli.progress import watch_jobs

DEFAULT_API_URL = "http://127.0.0.1:8080"
LOCAL_API_KEY = "local-demo-key"  # local/tenants.json: tenant "demo" (local stack only)
ENV_URL, ENV_KEY, ENV_DEBUG = "BATCHPREDICT_API_URL", "BATCHPREDICT_API_KEY", "BATCHPREDICT_DEBUG"

EXIT_OK = 0  # the command worked; a watched job ended COMPLETED or COMPLETED_WITH_ERRORS
EXIT_ERROR = 1  # an API error, an unreachable API, an unusable file
EXIT_USAGE = 2  # bad command line (argparse's convention)
EXIT_JOB_FAILED = 3  # a watched job ended FAILED
EXIT_JOB_CANCELLED = 4  # a watched job ended CANCELLED
EXIT_INTERRUPTED = 130  # Ctrl-C

EXIT_FOR_STATUS = {
    "COMPLETED": EXIT_OK,
    "COMPLETED_WITH_ERRORS": EXIT_OK,
    "FAILED": EXIT_JOB_FAILED,
    "CANCELLED": EXIT_JOB_CANCELLED,
}


class CliError(Exception):
    """A failure to report as one line (`error: ...`) with exit code 1."""


# ---------------------------------------------------------------- helpers


def exit_code_for(status: str | None) -> int:
    return EXIT_FOR_STATUS.get(str(status), EXIT_OK)


def resolve_api_key(url: str, explicit: str | None) -> str | None:
    """The API key to send, or None to sign with SigV4 (any non-local URL without a key)."""
    if explicit:
        return explicit
    from_env = os.environ.get(ENV_KEY)
    if from_env:
        return from_env
    return LOCAL_API_KEY if is_local_url(url) else None


def parse_pairs(values: Sequence[str], flag: str, *, json_values: bool) -> dict[str, Any]:
    """KEY=VALUE pairs; with json_values a value that parses as JSON is taken as JSON."""
    out: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CliError(f"{flag} takes KEY=VALUE, not {item!r}")
        parsed: Any = value
        if json_values:
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = value
        out[key.strip()] = parsed
    return out


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False)


@contextmanager
def output_stream(path: str | None) -> Iterator[IO[str]]:
    if path is None or path == "-":
        yield sys.stdout
        return
    try:
        handle = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from exc
    with handle:
        yield handle


class Context:
    """What every command gets: the parsed arguments, the client and the consoles."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.url = args.api_url or os.environ.get(ENV_URL) or DEFAULT_API_URL
        self.out = make_console()
        self.err = make_console(stderr=True)
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(
                self.url,
                api_key=resolve_api_key(self.url, self.args.api_key),
                region=self.args.region,
                timeout=self.args.timeout,
            )
        return self._client

    def watch(self, jobs: Sequence[dict[str, Any]] | Sequence[str]) -> dict[str, dict[str, Any]]:
        return watch_jobs(self.client, jobs, console=self.err, interval=self.args.interval)


# ---------------------------------------------------------------- commands


def cmd_entities_import(ctx: Context) -> int:
    imported = 0

    def progress(count: int) -> None:
        nonlocal imported
        imported = count

    try:
        ctx.client.put_entities(read_entities(ctx.args.file, ctx.args.format), on_batch=progress)
    except (InputFileError, ApiError) as exc:
        if imported:
            raise CliError(f"{exc} ({imported} entities were imported before this)") from exc
        raise
    print(f"imported {imported} entities")
    return EXIT_OK


def cmd_entities_get(ctx: Context) -> int:
    print(dumps(ctx.client.get_entity(ctx.args.entity_id)))
    return EXIT_OK


def cmd_entities_delete(ctx: Context) -> int:
    ctx.client.delete_entity(ctx.args.entity_id)
    print(f"deleted {ctx.args.entity_id}")
    return EXIT_OK


def cmd_submit(ctx: Context) -> int:
    args = ctx.args
    parameters: dict[str, Any] = {}
    if args.params_json:
        try:
            loaded = json.loads(args.params_json)
        except ValueError as exc:
            raise CliError(f"--params-json is not JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise CliError("--params-json must be a JSON object")
        parameters.update(loaded)
    parameters.update(parse_pairs(args.param, "--param", json_values=True))
    entity_ids: list[str] | None = None
    if args.ids_file:
        entity_ids = read_ids(args.ids_file)
    elif args.ids is not None:
        entity_ids = [item.strip() for item in args.ids.split(",") if item.strip()]
        if not entity_ids:
            raise CliError("--ids names no entity ids")
    metadata = parse_pairs(args.metadata, "--metadata", json_values=False)
    job = ctx.client.submit_job(
        args.prediction_type,
        entity_ids=entity_ids,
        portfolio_id=args.portfolio,
        input_uri=args.input_uri,
        parameters=parameters or None,
        priority=args.priority,
        client_token=args.client_token,
        metadata=metadata or None,
        use_cache=False if args.no_cache else None,
        tolerated_failure_percent=args.tolerated_failure_percent,
        chunk_size=args.chunk_size,
    )
    if not args.watch:
        print(dumps(job) if args.json else job["job_id"])
        return EXIT_OK
    if not args.json:
        print(job["job_id"], flush=True)
    final = ctx.watch([job])[job["job_id"]]
    if args.json:
        print(dumps(final))
    else:
        ctx.err.print(job_line(final), markup=False)
    return exit_code_for(final.get("status"))


def cmd_status(ctx: Context) -> int:
    args = ctx.args
    if args.watch:
        final = ctx.watch([args.job_id])[args.job_id]
        if args.json:
            print(dumps(final))
        else:
            print(job_line(final))
        return exit_code_for(final.get("status"))
    job = ctx.client.get_job(args.job_id)
    if args.json:
        print(dumps(job))
    else:
        ctx.out.print(job_details(job))
    return EXIT_OK


def cmd_results(ctx: Context) -> int:
    args = ctx.args
    job = ctx.client.get_job(args.job_id)  # the prediction type, and a clear 404 first
    page_size = min(1000, args.limit) if args.limit else 1000
    rows: Any = ctx.client.iter_results(args.job_id, status=args.status, page_size=page_size)
    if args.limit:
        rows = islice(rows, args.limit)
    with output_stream(args.output) as handle:
        if args.format == "jsonl":
            count = write_jsonl(rows, handle)
        elif args.format == "csv":
            count = write_csv(rows, handle)
        else:
            materialised = list(rows)
            count = len(materialised)
            table = results_table(materialised, job.get("prediction_type"))
            if handle is sys.stdout:
                ctx.out.print(table)
            else:
                Console(file=handle, width=200, color_system=None, highlight=False).print(table)
    if args.output and args.output != "-":
        print(f"wrote {count} results to {args.output}")
    if job.get("status") not in TERMINAL_STATUSES:
        c = counts_of(job)
        ctx.err.print(
            f"note: job {args.job_id} is {job.get('status')}: {c['done']} of {c['total']} "
            "items have results so far",
            markup=False,
        )
    return EXIT_OK


def cmd_cancel(ctx: Context) -> int:
    job = ctx.client.cancel_job(ctx.args.job_id)
    if ctx.args.json:
        print(dumps(job))
    else:
        c = counts_of(job)
        print(
            f"{job.get('job_id', ctx.args.job_id)}: {job.get('status')} "
            f"({c['done']} of {c['total']} items accounted for, {c['cancelled']} cancelled)"
        )
    return EXIT_OK


def cmd_jobs(ctx: Context) -> int:
    args = ctx.args
    jobs = list(
        ctx.client.list_jobs(status=args.status, prediction_type=args.type, limit=args.limit)
    )
    if args.json:
        for job in jobs:
            print(json.dumps(job, separators=(",", ":")))
    elif not jobs:
        print("no jobs")
    else:
        ctx.out.print(jobs_table(jobs))
    return EXIT_OK


def cmd_demo_data(ctx: Context) -> int:
    # The generator lives with the local stack (make demo uses it); imported only when asked.
    from batchpredict_local.demo_data import generate_network
    from batchpredict_local.demo_data import write_jsonl as write_entities

    entities = generate_network(ctx.args.entities, ctx.args.seed)
    with output_stream(ctx.args.output) as handle:
        count = write_entities(entities, handle)
    if ctx.args.output and ctx.args.output != "-":
        print(f"wrote {count} entities to {ctx.args.output}")
    return EXIT_OK


# ---------------------------------------------------------------- parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The connection options; accepted before and after the command."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("connection")
    group.add_argument(
        "--api-url",
        default=default(None),
        help=f"API base URL (env {ENV_URL}; default {DEFAULT_API_URL}, the local stack)",
    )
    group.add_argument(
        "--api-key",
        default=default(None),
        help=f"send this x-api-key (env {ENV_KEY}; default {LOCAL_API_KEY!r} for a local URL); "
        "without a key, requests are signed with SigV4 from your AWS credentials",
    )
    group.add_argument("--region", default=default(None), help="AWS region for SigV4 signing")
    group.add_argument(
        "--timeout",
        type=_positive_float,
        default=default(30.0),
        help="seconds to wait for each HTTP answer (default 30)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchpredict",
        description="Batch predictions over the batchpredict HTTP API: import entities, submit "
        "jobs, watch them, fetch results.",
        epilog="exit codes: 0 ok (a watched job COMPLETED or COMPLETED_WITH_ERRORS), 1 error, "
        "2 usage, 3 watched job FAILED, 4 watched job CANCELLED, 130 interrupted",
    )
    _global_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, suppress=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        parent: Any, name: str, handler: Callable[[Context], int], help_text: str
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = parent.add_parser(
            name, parents=[common], help=help_text, description=help_text
        )
        sub.set_defaults(handler=handler)
        return sub

    entities = commands.add_parser("entities", help="import, show or delete entities")
    entity_commands = entities.add_subparsers(
        dest="entities_command", required=True, metavar="ACTION"
    )
    imp = command(entity_commands, "import", cmd_entities_import, "upsert entities from a file")
    imp.add_argument("file", help="JSONL (one entity per line), JSON list, or CSV")
    imp.add_argument("--format", choices=["jsonl", "json", "csv"], help="default: by extension")
    get = command(entity_commands, "get", cmd_entities_get, "show one stored entity as JSON")
    get.add_argument("entity_id")
    delete = command(entity_commands, "delete", cmd_entities_delete, "delete one entity")
    delete.add_argument("entity_id")

    submit = command(commands, "submit", cmd_submit, "submit a prediction job")
    submit.add_argument("prediction_type", metavar="TYPE", help="ising, cascade, ews, ...")
    source = submit.add_mutually_exclusive_group(required=True)
    source.add_argument("--ids-file", help="entity ids, one per line (or an entities file)")
    source.add_argument("--ids", help="comma-separated entity ids")
    source.add_argument("--portfolio", help="a stored portfolio's id")
    source.add_argument("--input-uri", help="s3://bucket/key of a JSONL file of ids")
    submit.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a predictor parameter; VALUE is read as JSON when it parses (2.0, true, {...})",
    )
    submit.add_argument("--params-json", help="all parameters as one JSON object")
    submit.add_argument("--priority", choices=["low", "normal", "high"])
    submit.add_argument("--client-token", help="idempotency token: the same token, the same job")
    submit.add_argument(
        "--metadata", action="append", default=[], metavar="KEY=VALUE", help="a metadata pair"
    )
    submit.add_argument("--no-cache", action="store_true", help="ignore cached predictions")
    submit.add_argument(
        "--tolerated-failure-percent",
        type=float,
        metavar="PCT",
        help="fail the job beyond this share of failed items (0-100)",
    )
    submit.add_argument("--chunk-size", type=int, help="items per work message (1-100)")
    submit.add_argument("--watch", action="store_true", help="show live progress until it ends")
    submit.add_argument("--interval", type=_positive_float, default=1.0, help="--watch poll s")
    submit.add_argument("--json", action="store_true", help="print the job as JSON")

    status = command(commands, "status", cmd_status, "show a job's state and progress")
    status.add_argument("job_id", metavar="JOB")
    status.add_argument("--watch", action="store_true", help="live progress until the job ends")
    status.add_argument(
        "--interval", type=_positive_float, default=1.0, help="seconds between polls"
    )
    status.add_argument("--json", action="store_true", help="print the job as JSON")

    results = command(commands, "results", cmd_results, "print or export a job's results")
    results.add_argument("job_id", metavar="JOB")
    results.add_argument("--format", choices=["table", "jsonl", "csv"], default="table")
    results.add_argument("--status", choices=["succeeded", "failed", "cancelled"])
    results.add_argument("--output", "-o", help="write to this file instead of stdout")
    results.add_argument("--limit", type=_positive_int, help="at most N rows")

    cancel = command(commands, "cancel", cmd_cancel, "cancel a job")
    cancel.add_argument("job_id", metavar="JOB")
    cancel.add_argument("--json", action="store_true", help="print the job as JSON")

    jobs = command(commands, "jobs", cmd_jobs, "list your jobs, newest first")
    jobs.add_argument(
        "--status",
        choices=sorted(
            [
                "QUEUED",
                "PROCESSING",
                "COMPLETED",
                "COMPLETED_WITH_ERRORS",
                "FAILED",
                "CANCELLING",
                "CANCELLED",
            ]
        ),
    )
    jobs.add_argument("--type", help="only this prediction type")
    jobs.add_argument("--limit", type=_positive_int, default=20, help="at most N jobs (20)")
    jobs.add_argument("--json", action="store_true", help="one JSON object per line")

    demo = command(
        commands, "demo-data", cmd_demo_data, "write the synthetic demo network as JSONL"
    )
    demo.add_argument("--entities", type=_positive_int, default=3000, help="actors (3000)")
    demo.add_argument("--seed", type=int, default=42, help="random seed (42)")
    demo.add_argument("--output", "-o", help="file to write (default stdout)")
    return parser


# ---------------------------------------------------------------- entry point


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not hasattr(args, "interval"):
        args.interval = 1.0
    ctx = Context(args)
    try:
        return int(args.handler(ctx))
    except ApiError as exc:
        return _fail(str(exc))
    except ApiUnreachable as exc:
        if exc.timed_out:
            return _fail(f"no answer from {exc.url} within {args.timeout:g}s")
        if is_local_url(exc.url):
            return _fail(f"cannot reach {exc.url}: is the local stack running? (make serve)")
        return _fail(str(exc))
    except (CliError, InputFileError, ClientConfigError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        job_id = getattr(args, "job_id", None)
        if getattr(args, "watch", False):
            print(
                f"\nstopped watching{f'; job {job_id} keeps running' if job_id else ''} "
                "(batchpredict cancel JOB stops it)",
                file=sys.stderr,
            )
        else:
            print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `batchpredict results JOB --format csv | head`: the reader left; not an error
        with suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return EXIT_OK
    except Exception as exc:
        if os.environ.get(ENV_DEBUG):
            raise
        return _fail(f"unexpected {type(exc).__name__}: {exc} (set {ENV_DEBUG}=1 for a traceback)")


if __name__ == "__main__":
    sys.exit(main())
