"""What every benchmark shares: statistics, the machine, memory, template settings, output."""

from __future__ import annotations

import contextlib
import io
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "template.yaml"


# ------------------------------------------------------------------ output


def log(message: str) -> None:
    """Progress lines go to stderr (stdout carries the final table)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.__stderr__, flush=True)


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Powertools prints EMF blobs to stdout even with metrics disabled (its 100-value flush)."""
    with contextlib.redirect_stdout(io.StringIO()) as sink:
        try:
            yield
        finally:
            sink.truncate(0)


# ------------------------------------------------------------------ statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): an observed value, never an interpolation."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def ratio(a: float, b: float) -> float:
    return a / b if b else math.inf


# ------------------------------------------------------------------ results


@dataclass
class Row:
    """One figure of a benchmark, against its target when it has one."""

    part: str
    metric: str
    value: str
    target: str = ""
    ok: bool | None = None  # None: no target (informative)

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: ""}[self.ok]


@dataclass
class PartResult:
    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    details: str = ""  # markdown, for RESULTS.md
    seconds: float = 0.0
    error: str | None = None

    def row(self, metric: str, value: str, target: str = "", ok: bool | None = None) -> None:
        self.rows.append(Row(self.name, metric, value, target, ok))


# ------------------------------------------------------------------ machine


def machine() -> dict[str, str]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        ram = f"{kb / 1024 / 1024:.1f} GiB"
    os_name = platform.platform()
    with contextlib.suppress(OSError):
        match = re.search(r'PRETTY_NAME="([^"]+)"', Path("/etc/os-release").read_text())
        if match:
            os_name = f"{match.group(1)} (kernel {platform.release()})"
    load = ""
    with contextlib.suppress(OSError):
        load = " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    return {
        "load": load,
        "cpu": cpu or "unknown",
        "cores": str(os.cpu_count() or "?"),
        "ram": ram or "unknown",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": os_name,
    }


def git_commit() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        return sha + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# ------------------------------------------------------------------ memory (/proc; no psutil)


def proc_status_kb(pid: int | str, field_name: str) -> int:
    """VmRSS / VmHWM of a process in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def reset_peak_rss(pid: int | str = "self") -> bool:
    """Resets VmHWM to the current RSS (Linux: writing 5 to clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time of a process (its threads included), from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks
    except (OSError, ValueError, IndexError):
        return 0.0


def children_matching(text: str) -> list[int]:
    """Child processes of this one whose command line contains `text`."""
    found = []
    for task in Path("/proc/self/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for pid in children:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline:
                found.append(int(pid))
    return sorted(set(found))


# ------------------------------------------------------------------ template.yaml


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags kept as {"Tag": value}."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {suffix: value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


@dataclass(frozen=True)
class WorkerSettings:
    """What template.yaml declares for the worker and its event source mapping."""

    memory_mb: int
    batch_size: int
    max_concurrency: int
    reserved_concurrency: int
    submit_memory_mb: int
    chunk_size: int

    @property
    def concurrency(self) -> int:
        return min(self.max_concurrency, self.reserved_concurrency)


def template_settings(path: Path = TEMPLATE) -> WorkerSettings:
    doc = yaml.load(path.read_text(), Loader=_CfnLoader)  # a SafeLoader subclass
    params = doc.get("Parameters", {})
    resources = doc.get("Resources", {})
    globals_fn = (doc.get("Globals") or {}).get("Function", {})

    def resolve(value: Any) -> Any:
        if isinstance(value, dict) and "Ref" in value and value["Ref"] in params:
            return params[value["Ref"]].get("Default")
        return value

    worker = resources["WorkerFunction"]["Properties"]
    submit = resources["SubmitFunction"]["Properties"]
    event = next(iter(worker.get("Events", {}).values()))["Properties"]
    scaling = event.get("ScalingConfig") or {}
    reserved = resolve(worker.get("ReservedConcurrentExecutions")) or 1000
    return WorkerSettings(
        memory_mb=int(resolve(worker.get("MemorySize", globals_fn.get("MemorySize", 128)))),
        batch_size=int(resolve(event.get("BatchSize", 10))),
        max_concurrency=int(resolve(scaling.get("MaximumConcurrency")) or reserved),
        reserved_concurrency=int(reserved),
        submit_memory_mb=int(resolve(submit.get("MemorySize", globals_fn.get("MemorySize", 128)))),
        chunk_size=int(resolve(params.get("ChunkSize", {}).get("Default", 25))),
    )


def fmt_int(n: float) -> str:
    return f"{n:,.0f}"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def fmt_usd(value: float) -> str:
    return f"${value:.3f}" if value >= 0.01 else f"${value:.4f}"


# ------------------------------------------------------------------ the process tree


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (children through /proc/<pid>/task/*/children)."""
    found: list[int] = []
    stack = [pid]
    while stack:
        parent = stack.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
            for child in children:
                if child not in found:
                    found.append(child)
                    stack.append(child)
    return found


class TreeRss:
    """Samples the summed RSS of this process and all its descendants; keeps the peak.

    `with TreeRss() as rss: ...; rss.peak_bytes` -- sampled every `interval` seconds on a thread
    (so a spike shorter than that can be missed; the per-process high-water marks bound it).
    """

    def __init__(self, interval: float = 0.2) -> None:
        import threading

        self.interval = interval
        self.peak_kb = 0
        self.peak_hwm_kb = 0  # sum of each process's own peak: an upper bound
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-rss", daemon=True)

    def sample(self) -> int:
        pids = [os.getpid(), *descendants(os.getpid())]
        total = sum(proc_status_kb(p, "VmRSS") for p in pids)
        hwm = sum(proc_status_kb(p, "VmHWM") for p in pids)
        self.peak_kb = max(self.peak_kb, total)
        self.peak_hwm_kb = max(self.peak_hwm_kb, hwm)
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> TreeRss:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    @property
    def peak_mib(self) -> float:
        return self.peak_kb / 1024


def stop_process_group(process: subprocess.Popen[Any], grace: float = 15) -> None:
    """SIGTERM to the group `process` leads (started with start_new_session), then SIGKILL."""
    import signal

    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # forked pool children that outlived their leader
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
