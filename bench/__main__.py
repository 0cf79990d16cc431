"""`python -m bench` (`make bench`): the five measurements of issue 6, a table and bench/RESULTS.md.

Each part runs in a child process of its own (`--child PART`), so that one part's memory, moto
state and threads never weigh on the next and the scale part's peak RSS is its own. Whatever a
part starts (a local stack and its moto process, redis-server, Celery workers) it stops in
`finally`/`with` blocks; Ctrl-C reaches the child too (same process group), SIGTERM is passed
on, and a child that does not stop in time is killed.

    python -m bench                      # everything (~20 min on 2 cores), writes bench/RESULTS.md
    python -m bench --quick              # small sizes, one repeat (~3 min)
    python -m bench --only cost,scale    # some parts

To see where a part's time goes (its local moto included), profile the whole process tree:

    .venv/bin/py-spy record --subprocesses -o profile.svg -- .venv/bin/python -m bench --only throughput
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from bench.common import REPO, PartResult, Row, git_commit, log, machine
from bench.prices import AWS_CALL_SECONDS, price_table_markdown

PARTS = {  # issue 6's numbering: 1 submission, 2 cost, 3 throughput, 4 scale, 5 predictors
    "submission": "bench.part_submission",
    "cost": "bench.part_cost",
    "throughput": "bench.part_throughput",
    "scale": "bench.part_scale",
    "predictors": "bench.part_predictors",
}
# Run order: quick parts first; the longest (scale) last. The markdown is rewritten after each.
ORDER = ["predictors", "cost", "submission", "throughput", "scale"]
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
PARTIAL = Path(__file__).resolve().parent / "RESULTS.partial.md"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and one repeat")
    parser.add_argument(
        "--only", default="", help=f"comma-separated parts among: {', '.join(PARTS)}"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="where to write the markdown (default: bench/RESULTS.md for a full run, "
        "bench/RESULTS.partial.md otherwise)",
    )
    parser.add_argument("--child", choices=list(PARTS), help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    chosen = [p.strip() for p in args.only.split(",") if p.strip()] or list(ORDER)
    unknown = [p for p in chosen if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {unknown}; known: {', '.join(PARTS)}")
    args.parts = chosen
    return args


# ------------------------------------------------------------------ a part, in a child


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_child(part: str, quick: bool, out: Path) -> int:
    """Runs one part here; its result (or its error) as JSON in `out`."""
    import importlib

    signal.signal(signal.SIGTERM, _raise_interrupt)
    started = time.perf_counter()
    try:
        result: PartResult = importlib.import_module(PARTS[part]).run(quick)
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        import traceback

        traceback.print_exc()
        result = PartResult(part, part, error=f"{type(error).__name__}: {error}")
    result.seconds = time.perf_counter() - started
    out.write_text(json.dumps(asdict(result)))
    return 0


def run_part(part: str, quick: bool) -> PartResult:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "bench", "--child", part, "--json", str(out)]
        child = subprocess.Popen([*command, *(["--quick"] if quick else [])], cwd=REPO)
        previous = signal.signal(signal.SIGTERM, lambda s, f: child.send_signal(signal.SIGTERM))
        try:
            code = child.wait()
        except KeyboardInterrupt:
            # the terminal sent SIGINT to the child as well: give it time to stop what it started
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
        if code == 130:
            raise KeyboardInterrupt
        if not out.exists():
            return PartResult(part, part, error=f"the part's process exited with {code}")
        raw = json.loads(out.read_text())
    rows = [Row(**r) for r in raw.pop("rows")]
    return PartResult(**raw, rows=rows)


# ------------------------------------------------------------------ output


def table(results: list[PartResult]) -> str:
    rows: list[tuple[str, str, str, str, str]] = [("part", "metric", "value", "target", "")]
    for r in results:
        if r.error:
            rows.append((r.name, "ERROR", r.error[:80], "", "FAILED"))
        for item in r.rows:
            rows.append((r.name, item.metric, item.value, item.target, item.verdict))
    widths = [min(70, max(len(row[i]) for row in rows)) for i in range(5)]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(cell[:70].ljust(w) for cell, w in zip(row, widths, strict=True)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def markdown(results: list[PartResult], quick: bool, seconds: float, before: dict[str, str]) -> str:
    m = machine()
    out = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`python -m bench"
        + (" --quick" if quick else "")
        + "`); the method of each part is in its module's docstring under `bench/`.",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- commit: {git_commit()}",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['ram']} RAM; {m['os']}; {m['python']}",
        f"- load average (1/5/15 min) at the start: {before['load']}, at the end: {m['load']} "
        "(other work on the machine makes the timed figures slower, not the counted ones)",
        f"- run time: {seconds / 60:.1f} min" + (" (quick run: small sizes)" if quick else ""),
        "",
        "## Every figure against its target",
        "",
        "| part | metric | value | target | verdict |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        if r.error:
            out.append(f"| {r.name} | ERROR | {r.error} | | FAILED |")
        for row in r.rows:
            verdict = {"met": "met", "MISSED": "**MISSED**", "": ""}[row.verdict]
            out.append(f"| {r.name} | {row.metric} | {row.value} | {row.target} | {verdict} |")
    for r in results:
        out += ["", f"## {r.title}", "", f"({r.seconds:.0f} s)", ""]
        out.append(r.details or (f"Failed: {r.error}" if r.error else ""))
    out += [
        "",
        "## Prices",
        "",
        "List prices, us-east-1, on-demand, first tier (bench/prices.py). Lambda GB-s are the "
        "orchestration's own: handler time minus predictor time minus the time spent inside "
        f"moto, plus {AWS_CALL_SECONDS * 1000:g} ms per AWS call (a same-region round trip), "
        "at the worker's memory.",
        "",
        price_table_markdown(),
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return run_child(args.child, args.quick, args.json)
    started = time.perf_counter()
    before = machine()
    results: list[PartResult] = []
    full = not args.quick and sorted(args.parts) == sorted(PARTS)
    out = args.out or (RESULTS if full else PARTIAL)
    try:
        for part in args.parts:
            log(f"== {part}")
            results.append(run_part(part, args.quick))
            log(
                f"== {part}: {results[-1].seconds:.0f} s"
                + (" (error)" if results[-1].error else "")
            )
            results.sort(key=lambda r: list(PARTS).index(r.name))
            out.write_text(markdown(results, args.quick, time.perf_counter() - started, before))
    except KeyboardInterrupt:
        log("interrupted: everything started has been stopped")
        return 130
    print(table(results))
    log(f"wrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    failed = any(r.error for r in results)
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
