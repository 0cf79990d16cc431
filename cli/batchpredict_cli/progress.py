"""Live progress of one or more jobs: a rich progress bar per job, polled until all are terminal."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from batchpredict_cli.client import TERMINAL_STATUSES, Client
from batchpredict_cli.output import STATUS_STYLE, counts_of, fmt_duration, job_elapsed, job_eta


class JobBoard:
    """A progress bar per job with its counts, throughput, ETA and status."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=20),
            TextColumn("{task.percentage:>5.1f}%"),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[eta]}"),
            TextColumn("{task.fields[state]}"),
            console=console,
            refresh_per_second=4,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> JobBoard:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def add(self, job_id: str, label: str, total: int | None = None) -> None:
        self._tasks[job_id] = self.progress.add_task(
            label, total=total or None, counts="", rate="", eta="", state=""
        )

    def update(self, job: Mapping[str, Any]) -> None:
        task = self._tasks[str(job["job_id"])]
        c = counts_of(job)
        status = str(job.get("status"))
        terminal = status in TERMINAL_STATUSES
        rate = job.get("throughput_items_per_second")
        if terminal:
            eta = f"took {fmt_duration(job_elapsed(job))}"
        else:
            eta = f"ETA {fmt_duration(job_eta(job))}" if job.get("estimated_completion") else ""
        counts = f"[green]ok {c['succeeded']:,}[/] [red]failed {c['failed']:,}[/]"
        if c["cancelled"]:
            counts += f" [magenta]cancelled {c['cancelled']:,}[/]"
        counts += f" cached {c['cached']:,}"
        self.progress.update(
            task,
            total=c["total"] or None,
            completed=c["done"],
            counts=counts,
            rate=f"{float(rate):,.0f}/s" if rate else "",
            eta=eta,
            state=f"[{STATUS_STYLE.get(status, '')}]{status}",
        )


def watch_jobs(
    client: Client,
    jobs: Sequence[Mapping[str, Any]] | Sequence[str],
    *,
    console: Console,
    interval: float = 1.0,
    labels: Mapping[str, str] | None = None,
    on_terminal: Callable[[dict[str, Any]], None] | None = None,
    timeout: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, dict[str, Any]]:
    """Polls the jobs every `interval` seconds, with a live bar each, until all are terminal.

    `jobs` are job ids or submit answers; returns each job's last state by id (some not
    terminal if `timeout` seconds passed first). `on_terminal` is called once per job when it
    reaches a terminal status.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    ids = [job if isinstance(job, str) else str(job["job_id"]) for job in jobs]
    totals = {
        str(job["job_id"]): int(job.get("total_items") or 0)
        for job in jobs
        if not isinstance(job, str)
    }
    last: dict[str, dict[str, Any]] = {}
    with JobBoard(console) as board:
        for job_id in ids:
            board.add(job_id, (labels or {}).get(job_id, job_id), totals.get(job_id))
        while True:
            for job_id in ids:
                if job_id in last and last[job_id].get("status") in TERMINAL_STATUSES:
                    continue
                job = client.get_job(job_id)
                board.update(job)
                last[job_id] = job
                if job.get("status") in TERMINAL_STATUSES and on_terminal is not None:
                    on_terminal(job)
            if all(job.get("status") in TERMINAL_STATUSES for job in last.values()):
                return last
            if deadline is not None and time.monotonic() >= deadline:
                return last
            sleep(interval)
