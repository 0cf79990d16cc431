"""Runs a function's handler in this process, as the Lambda runtime would call it."""

from __future__ import annotations

import importlib.util
import itertools
import logging
import sys
import threading
import time
import traceback
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from batchpredict_local.errors import LocalStackError
from batchpredict_local.template import FunctionCode

log = logging.getLogger("batchpredict_local.invoke")

_module_counter = itertools.count(1)
_import_lock = threading.Lock()


@dataclass(frozen=True)
class FunctionConfig:
    logical_id: str
    name: str
    arn: str
    code: FunctionCode
    timeout_seconds: int
    memory_mb: int
    reserved_concurrency: int | None
    environment: dict[str, str]


class LambdaContext:
    """What the Lambda runtime passes as ``context`` (the attributes Powertools reads)."""

    function_version = "$LATEST"
    identity = None
    client_context = None
    tenant_id = None

    def __init__(self, function: FunctionConfig, request_id: str | None = None) -> None:
        self.function_name = function.name
        self.memory_limit_in_mb = function.memory_mb
        self.invoked_function_arn = function.arn
        self.aws_request_id = request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function.name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self._deadline = time.monotonic() + function.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class Outcome:
    """One invocation's result: ``error`` is set when Lambda would report a function error."""

    result: Any = None
    error: BaseException | None = None
    timed_out: bool = False
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and not self.timed_out

    def describe_error(self) -> str:
        if self.timed_out:
            return f"timed out after {self.duration_ms:.0f} ms"
        if self.error is None:
            return ""
        frames = traceback.extract_tb(self.error.__traceback__)
        where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
        return f"{type(self.error).__name__}: {self.error}{where}"


class Stats:
    """Counts for tests and the console: invocations, concurrency, batch sizes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.invocations: dict[str, int] = defaultdict(int)
            self.errors: dict[str, int] = defaultdict(int)
            self.throttles: dict[str, int] = defaultdict(int)
            self.running: dict[str, int] = defaultdict(int)
            self.max_concurrency: dict[str, int] = defaultdict(int)
            self.batch_sizes: dict[str, list[int]] = defaultdict(list)
            self.source_running: dict[str, int] = defaultdict(int)
            self.source_max_concurrency: dict[str, int] = defaultdict(int)
            self.source_batch_sizes: dict[str, list[int]] = defaultdict(list)

    def started(self, function: str, source: str, batch_size: int | None) -> None:
        with self._lock:
            self.invocations[function] += 1
            self.running[function] += 1
            self.max_concurrency[function] = max(
                self.max_concurrency[function], self.running[function]
            )
            self.source_running[source] += 1
            self.source_max_concurrency[source] = max(
                self.source_max_concurrency[source], self.source_running[source]
            )
            if batch_size is not None:
                self.batch_sizes[function].append(batch_size)
                self.source_batch_sizes[source].append(batch_size)

    def finished(self, function: str, source: str, ok: bool) -> None:
        with self._lock:
            self.running[function] -= 1
            self.source_running[source] -= 1
            if not ok:
                self.errors[function] += 1

    def throttled(self, function: str) -> None:
        with self._lock:
            self.throttles[function] += 1

    def busy(self) -> int:
        with self._lock:
            return sum(self.running.values())

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "invocations": dict(self.invocations),
                "errors": dict(self.errors),
                "throttles": dict(self.throttles),
                "max_concurrency": dict(self.max_concurrency),
                "batch_sizes": {k: list(v) for k, v in self.batch_sizes.items()},
                "source_max_concurrency": dict(self.source_max_concurrency),
                "source_batch_sizes": {k: list(v) for k, v in self.source_batch_sizes.items()},
            }


class FunctionRuntime:
    """A function's execution environments, as Lambda keeps them.

    Lambda runs one invocation at a time per execution environment, so a handler module's
    globals (a Powertools resolver's current event, a BatchProcessor's records) belong to one
    invocation at a time. Here an environment is a separate import of the handler's module: an
    invocation takes an idle one, or imports a new one (a cold start). What the handler imports
    (the layer's package, boto3, Powertools) is shared by the environments of this process.
    """

    def __init__(self, config: FunctionConfig, stats: Stats) -> None:
        self.config = config
        self.stats = stats
        self._slots: threading.BoundedSemaphore | None = None
        if config.reserved_concurrency is not None:
            self._slots = threading.BoundedSemaphore(max(config.reserved_concurrency, 0) or 1)
        self._namespace = ""
        self._pool_lock = threading.Lock()
        self._idle: list[ModuleType] = []
        self._environments: list[ModuleType] = []

    @property
    def logical_id(self) -> str:
        return self.config.logical_id

    @property
    def module(self) -> ModuleType | None:
        """The first execution environment's handler module."""
        return self._environments[0] if self._environments else None

    @property
    def environments(self) -> int:
        return len(self._environments)

    def load(self, namespace: str) -> None:
        """Imports the first execution environment, so that a broken handler fails the start."""
        self._namespace = namespace
        self._idle.append(self._new_environment())

    def _new_environment(self) -> ModuleType:
        """Imports the handler's module by path under a unique name (every handler is `app`)."""
        code = self.config.code
        path = code.module_path
        if not path.is_file():
            raise LocalStackError(f"{self.logical_id}: handler module {path} does not exist")
        name = f"_batchpredict_local_fn.{self._namespace}.{self.logical_id}_{next(_module_counter)}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise LocalStackError(f"{self.logical_id}: cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        with _import_lock:
            # Lambda puts the code directory first on sys.path: helpers next to the handler
            # import as top-level modules. Only while importing, so functions do not see each
            # other's directories afterwards.
            sys.path.insert(0, str(code.code_dir))
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(name, None)
                raise
            finally:
                sys.path.remove(str(code.code_dir))
        if not callable(getattr(module, code.attribute, None)):
            sys.modules.pop(name, None)
            raise LocalStackError(f"{self.logical_id}: {path} has no callable {code.attribute}")
        with self._pool_lock:
            self._environments.append(module)
        return module

    def _checkout(self) -> ModuleType:
        with self._pool_lock:
            if self._idle:
                return self._idle.pop()
        return self._new_environment()

    def _checkin(self, module: ModuleType) -> None:
        with self._pool_lock:
            self._idle.append(module)

    def unload(self) -> None:
        with self._pool_lock:
            for module in self._environments:
                sys.modules.pop(module.__name__, None)
            self._idle.clear()

    @property
    def throttled_entirely(self) -> bool:
        return self.config.reserved_concurrency == 0

    @contextmanager
    def slot(self, timeout: float | None) -> Iterator[bool]:
        """One of the function's reserved-concurrency slots; yields False if none came in time."""
        if self.throttled_entirely:
            self.stats.throttled(self.logical_id)
            yield False
            return
        if self._slots is None:
            yield True
            return
        acquired = self._slots.acquire(timeout=timeout) if timeout else self._slots.acquire(False)
        if not acquired:
            self.stats.throttled(self.logical_id)
        try:
            yield acquired
        finally:
            if acquired:
                self._slots.release()

    def invoke(
        self,
        event: dict[str, Any],
        *,
        source: str,
        batch_size: int | None = None,
        request_id: str | None = None,
    ) -> Outcome:
        """Calls the handler (the caller holds a slot). Never raises for a function error."""
        if not self._namespace:
            raise LocalStackError(f"{self.logical_id} is not loaded")
        self.stats.started(self.logical_id, source, batch_size)
        started = time.perf_counter()
        outcome = Outcome()
        environment: ModuleType | None = None
        try:
            environment = self._checkout()
            context = LambdaContext(self.config, request_id)
            handler = getattr(environment, self.config.code.attribute)
            outcome.result = handler(event, context)
        except Exception as exc:
            outcome.error = exc
            log.debug("%s raised", self.logical_id, exc_info=exc)
        finally:
            if environment is not None:
                self._checkin(environment)
            outcome.duration_ms = (time.perf_counter() - started) * 1000
            # Lambda would have stopped the function at its Timeout: whatever it did by then
            # stands, and the invocation is an error.
            outcome.timed_out = outcome.duration_ms > self.config.timeout_seconds * 1000
            self.stats.finished(self.logical_id, source, outcome.ok)
        return outcome
