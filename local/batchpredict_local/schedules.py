"""Schedule events: EventBridge rules (and Scheduler schedules) that invoke a function."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from batchpredict_local.errors import TemplateError
from batchpredict_local.runtime import FunctionRuntime, Outcome
from batchpredict_local.template import ACCOUNT_ID, REGION

log = logging.getLogger("batchpredict_local.schedule")

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_SLOT_WAIT_SECONDS = 0.2


@dataclass(frozen=True)
class Schedule:
    logical_id: str
    function: str
    expression: str
    rule_arn: str
    payload: str | None = None  # the target's constant Input; None = the Scheduled Event
    enabled: bool = True
    scheduler: bool = False  # AWS::Scheduler::Schedule (ScheduleV2) rather than a rule
    # The function's EventInvokeConfig (Lambda's defaults for asynchronous invocations).
    maximum_retry_attempts: int = 2
    maximum_event_age_seconds: int = 6 * 3600

    def event(self, now: dt.datetime | None = None) -> Any:
        if self.payload is not None:
            return json.loads(self.payload)
        if self.scheduler:
            return {}
        now = now or dt.datetime.now(dt.UTC)
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT_ID,
            "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [self.rule_arn],
            "detail": {},
        }


class _Cron:
    """EventBridge cron(min hour day-of-month month day-of-week year), in UTC.

    Supports *, ?, numbers, ranges, lists, steps and month/day names; not L, W or #.
    """

    _MONTHS = {
        m: i + 1
        for i, m in enumerate(
            ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
        )
    }
    _DAYS = {d: i + 1 for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}

    def __init__(self, text: str) -> None:
        fields = text.split()
        if len(fields) != 6:
            raise TemplateError(f"cron({text}) needs six fields")
        if any(c in text for c in "LW#"):
            raise TemplateError(f"cron({text}): L, W and # are not emulated")
        self.minutes = self._field(fields[0], 0, 59, {})
        self.hours = self._field(fields[1], 0, 23, {})
        self.days = self._field(fields[2], 1, 31, {})
        self.months = self._field(fields[3], 1, 12, self._MONTHS)
        self.weekdays = self._field(fields[4], 1, 7, self._DAYS)
        self.years = self._field(fields[5], 1970, 2199, {})
        self._any_day = fields[2] in ("*", "?")
        self._any_weekday = fields[4] in ("*", "?")

    @staticmethod
    def _field(text: str, low: int, high: int, names: dict[str, int]) -> set[int]:
        values: set[int] = set()
        for part in text.upper().split(","):
            step = 1
            if "/" in part:
                part, step_text = part.split("/", 1)
                step = int(step_text)
            if part in ("*", "?"):
                start, end = low, high
            elif "-" in part:
                a, b = part.split("-", 1)
                start, end = int(names.get(a, a)), int(names.get(b, b))
            else:
                start = int(names.get(part, part))
                end = high if step > 1 else start
            values.update(range(start, end + 1, step))
        return values

    def matches(self, t: dt.datetime) -> bool:
        weekday = (t.isoweekday() % 7) + 1  # SUN=1 .. SAT=7
        day_ok = t.day in self.days
        weekday_ok = weekday in self.weekdays
        if self._any_day:
            day_match = weekday_ok
        elif self._any_weekday:
            day_match = day_ok
        else:
            day_match = day_ok or weekday_ok
        return (
            t.minute in self.minutes
            and t.hour in self.hours
            and day_match
            and t.month in self.months
            and t.year in self.years
        )


def next_fire(expression: str, after: dt.datetime, started: dt.datetime) -> dt.datetime:
    """When a schedule next fires after ``after`` (rates count from ``started``)."""
    rate = _RATE.match(expression.strip())
    if rate:
        amount, unit = int(rate.group(1)), rate.group(2).rstrip("s")
        if amount < 1:
            raise TemplateError(f"{expression}: the rate must be at least 1")
        period = dt.timedelta(seconds=amount * _UNIT_SECONDS[unit])
        elapsed = (after - started) // period
        return started + period * (elapsed + 1)
    cron = _CRON.match(expression.strip())
    if cron:
        spec = _Cron(cron.group(1))
        t = after.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        for _ in range(366 * 24 * 60):
            if spec.matches(t):
                return t
            t += dt.timedelta(minutes=1)
        raise TemplateError(f"{expression} does not fire within a year")
    raise TemplateError(f"schedule expression {expression!r} is not emulated")


class Scheduler:
    """One timer thread for every enabled schedule; each firing runs in its own thread."""

    def __init__(
        self,
        schedules: list[Schedule],
        functions: dict[str, FunctionRuntime],
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.schedules = schedules
        self.functions = functions
        self._clock = clock
        self._stopping = threading.Event()
        self._timer: threading.Thread | None = None
        self._firings: set[threading.Thread] = set()
        self._lock = threading.Lock()
        for schedule in schedules:
            next_fire(schedule.expression, clock(), clock())  # fail early on a bad expression

    def start(self) -> None:
        if any(s.enabled for s in self.schedules):
            self._timer = threading.Thread(target=self._run, name="schedules", daemon=True)
            self._timer.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._timer is not None:
            self._timer.join()
        with self._lock:
            firings = list(self._firings)
        for thread in firings:
            thread.join()

    def _run(self) -> None:
        started = self._clock()
        due = {
            s.logical_id: next_fire(s.expression, started, started)
            for s in self.schedules
            if s.enabled
        }
        by_id = {s.logical_id: s for s in self.schedules}
        while not self._stopping.is_set():
            now = self._clock()
            for logical_id, when in list(due.items()):
                if when <= now:
                    self._fire_async(by_id[logical_id])
                    due[logical_id] = next_fire(by_id[logical_id].expression, now, started)
            wait = min((w - self._clock()).total_seconds() for w in due.values())
            self._stopping.wait(max(0.05, min(wait, 1.0)))

    def _fire_async(self, schedule: Schedule) -> None:
        def run() -> None:
            try:
                self.fire(schedule)
            finally:
                with self._lock:
                    self._firings.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=f"schedule-{schedule.logical_id}", daemon=True)
        with self._lock:
            self._firings.add(thread)
        thread.start()

    def fire(self, schedule: Schedule, *, retries: bool = True) -> Outcome:
        """Invokes the schedule's function as an asynchronous invocation, and waits for it.

        As Lambda does: a throttled event waits for a free slot until it is
        MaximumEventAgeInSeconds old, then is dropped; a function error is retried
        MaximumRetryAttempts times, one and then two minutes later.
        """
        runtime = self.functions[schedule.function]
        event = schedule.event()
        deadline = time.monotonic() + schedule.maximum_event_age_seconds
        attempt = 0
        while True:
            outcome = self._invoke_when_free(schedule, runtime, event, deadline)
            if outcome is None:
                log.warning(
                    "%s -> %s throttled until the event expired; dropped",
                    schedule.logical_id,
                    schedule.function,
                )
                return Outcome(error=RuntimeError("throttled; event dropped"))
            if outcome.ok:
                log.info(
                    "%s -> %s ok %.0fms",
                    schedule.logical_id,
                    schedule.function,
                    outcome.duration_ms,
                )
                return outcome
            log.warning(
                "%s -> %s error (%s)",
                schedule.logical_id,
                schedule.function,
                outcome.describe_error(),
            )
            attempt += 1
            delay = 60.0 * attempt
            if (
                not retries
                or attempt > schedule.maximum_retry_attempts
                or time.monotonic() + delay > deadline
                or self._stopping.wait(delay)
            ):
                return outcome

    def _invoke_when_free(
        self, schedule: Schedule, runtime: FunctionRuntime, event: Any, deadline: float
    ) -> Outcome | None:
        while time.monotonic() < deadline and not self._stopping.is_set():
            if runtime.throttled_entirely:
                return None
            wait = min(_SLOT_WAIT_SECONDS, max(0.0, deadline - time.monotonic()))
            with runtime.slot(timeout=wait) as acquired:
                if acquired:
                    return runtime.invoke(event, source=schedule.logical_id)
        return None

    def find(self, name: str) -> Schedule:
        matches = [s for s in self.schedules if name in (s.logical_id, s.function)]
        if not matches:
            raise KeyError(f"no schedule for {name!r}")
        if len(matches) > 1:
            raise KeyError(f"{name!r} has several schedules: {[s.logical_id for s in matches]}")
        return matches[0]
