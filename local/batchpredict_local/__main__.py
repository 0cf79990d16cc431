"""``batchpredict-local serve``: the local stack in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

from batchpredict_local.errors import LocalStackError, TemplateError
from batchpredict_local.stack import LocalStack
from batchpredict_local.template import parse_yaml


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise SystemExit(f"{flag} takes KEY=VALUE, not {value!r}")
        out[key] = val
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchpredict-local",
        description="Run the whole system on this machine (moto, HTTP front, pollers, timer).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the local stack until Ctrl-C")
    serve.add_argument("--port", type=int, default=8080, help="HTTP port (0: any free one)")
    serve.add_argument("--template", type=Path, default=Path("template.yaml"))
    serve.add_argument("--moto-port", type=int, default=0, help="moto's port (0: any free one)")
    serve.add_argument(
        "--tenants", type=Path, default=None, help="API keys file (local/tenants.json)"
    )
    serve.add_argument("--no-schedules", action="store_true", help="do not fire Schedule events")
    serve.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="template parameter"
    )
    serve.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="function environment"
    )
    serve.add_argument(
        "--function-log-level",
        default="WARNING",
        help="POWERTOOLS_LOG_LEVEL for the functions (their JSON logs; default WARNING)",
    )
    serve.add_argument(
        "--metrics", action="store_true", help="let Powertools print its EMF metric blobs"
    )
    serve.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    return parser


def _configure_logging(verbose: bool) -> None:
    # Powertools warns after every invocation that added no metric: noise on a console.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)-26s %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug", "samtranslator"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _banner(stack: LocalStack) -> str:
    info = stack.describe()
    lines = [
        "",
        f"batchpredict local stack ({stack.stack_name}) is up",
        f"  API      {info['url']}/v1/...",
        f"  moto     {info['moto_url']}  (AWS_ENDPOINT_URL for the aws CLI / boto3)",
        "  API keys (x-api-key header; local only, never deployed):",
        *[f"    {key}  -> tenant {tenant}" for key, tenant in info["api_keys"].items()],
        "  tables:",
        *[f"    {lid:<22} {name}" for lid, name in info["tables"].items()],
        "  queues:",
        *[f"    {lid:<22} {url}" for lid, url in info["queues"].items()],
        "  routes:",
        *[f"    {route}" for route in sorted(info["routes"], key=lambda r: r.split()[1])],
        "  pollers:",
        *[f"    {poller}" for poller in info["pollers"]],
        "  schedules:",
        *([f"    {schedule}" for schedule in info["schedules"]] or ["    (none)"]),
        "",
        f"  try: curl -H 'x-api-key: {stack.api_key()}' {info['url']}/v1/jobs",
        "  Ctrl-C stops it.",
        "",
    ]
    return "\n".join(lines)


def serve(args: argparse.Namespace) -> int:
    _configure_logging(args.verbose)
    env = {"POWERTOOLS_LOG_LEVEL": args.function_log_level}
    if not args.metrics:
        env["POWERTOOLS_METRICS_DISABLED"] = "true"
    env.update(_pairs(args.env, "--env"))
    params = _pairs(args.param, "--param")
    if params:
        try:
            declared = parse_yaml(args.template.read_text()).get("Parameters") or {}
        except (OSError, TemplateError) as exc:
            print(f"batchpredict-local: {exc}", file=sys.stderr)
            return 1
        unknown = sorted(set(params) - set(declared))
        if unknown:
            print(
                f"batchpredict-local: {args.template} declares no parameter {unknown}",
                file=sys.stderr,
            )
            return 1
    overrides = {**env, **params}
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()
        # A second Ctrl-C ends the process at once.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stack = LocalStack(
        args.template,
        api_port=args.port,
        moto_port=args.moto_port,
        tenants_file=args.tenants,
        schedules=not args.no_schedules,
        overrides=overrides,
    )
    try:
        stack.start()
    except (LocalStackError, OSError) as exc:
        print(f"batchpredict-local: {exc}", file=sys.stderr)
        return 1
    try:
        print(_banner(stack), flush=True)
        while not stop.wait(0.5):
            pass
        print("stopping (waiting for invocations in flight)...", flush=True)
    finally:
        stack.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
