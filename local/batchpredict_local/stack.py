"""The local stack: the whole system on one machine, wired by template.yaml.

moto (a child process) holds the tables and queues that the template declares; an HTTP front
turns requests into API Gateway proxy events for the functions the template routes; pollers
feed SQS messages to the functions with the template's event source settings; a timer fires
the template's schedules. See docs/LOCAL.md.
"""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from botocore.config import Config

from batchpredict_local.errors import LocalStackError, TemplateError
from batchpredict_local.front import (
    ApiFront,
    GatewayResponses,
    HttpServer,
    Route,
    function_arn_in_uri,
    load_tenants,
    routes_from_template,
)
from batchpredict_local.pollers import SqsPoller, SqsSource
from batchpredict_local.resources import FUNCTION, Provisioner
from batchpredict_local.runtime import FunctionConfig, FunctionRuntime, Outcome, Stats
from batchpredict_local.schedules import Schedule, Scheduler
from batchpredict_local.template import ACCOUNT_ID, REGION, LoadedTemplate, load_template

log = logging.getLogger("batchpredict_local.stack")

DEFAULT_STACK_NAME = "batchpredict-local"
DEFAULT_TENANTS_FILE = Path(__file__).resolve().parents[1] / "tenants.json"
DEFAULT_TENANTS = {"local-demo-key": "demo", "local-other-key": "other"}
_HOST = "127.0.0.1"

# Set for every function, whatever the template says: the functions talk to moto.
FORCED_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
    # Powertools' Logger otherwise filters, from the root logger's handlers, every record of a
    # logger whose name contains the service name: the local stack's own logs included.
    "POWERTOOLS_LOG_DEDUPLICATION_DISABLED": "true",
}
# Defaults the template (or overrides) may replace.
DEFAULT_ENV = {
    "POWERTOOLS_SERVICE_NAME": "batchpredict",
    "POWERTOOLS_METRICS_NAMESPACE": "BatchPredict",
}
# Variables that may differ between functions without harm: the first function's value is used.
COSMETIC_ENV = frozenset(
    {
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_FUNCTION_NAME",
        "POWERTOOLS_LOG_LEVEL",
        "LOG_LEVEL",
    }
)
# Unset while the stack runs: they would send boto3 elsewhere than moto.
REMOVED_ENV = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_SNS",
    "AWS_ENDPOINT_URL_EVENTBRIDGE",
    "AWS_ENDPOINT_URL_STS",
)


class _SharedMoto:
    """One moto child process per Python process, shared by its live stacks.

    Shared because boto3 reads AWS_ENDPOINT_URL from the process environment: the functions of
    two stacks in one process cannot talk to two endpoints.
    """

    _lock = threading.Lock()
    _process: subprocess.Popen[bytes] | None = None
    _port = 0
    _users = 0

    @classmethod
    def acquire(cls, port: int) -> str:
        with cls._lock:
            if cls._process is None:
                cls._process, cls._port = cls._spawn(port)
            elif port and port != cls._port:
                raise LocalStackError(
                    f"moto already runs on port {cls._port} in this process; cannot use {port}"
                )
            cls._users += 1
            return f"http://{_HOST}:{cls._port}"

    @classmethod
    def shared(cls) -> bool:
        """Whether another live stack of this process uses moto too."""
        with cls._lock:
            return cls._users > 1

    @classmethod
    def release(cls) -> None:
        with cls._lock:
            cls._users -= 1
            if cls._users > 0 or cls._process is None:
                return
            process, cls._process = cls._process, None
        _terminate(process)

    @staticmethod
    def _spawn(port: int) -> tuple[subprocess.Popen[bytes], int]:
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        env["MOTO_ACCOUNT_ID"] = ACCOUNT_ID
        for key in list(env):
            if key.startswith("AWS_ENDPOINT_URL"):
                del env[key]
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "batchpredict_local.moto_server",
                "--host",
                _HOST,
                "--port",
                str(port),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        line = process.stdout.readline().decode() if ready else ""
        if not line.startswith("READY "):
            _terminate(process)
            raise LocalStackError(f"moto did not start (said {line!r})")
        return process, int(line.split()[1])


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """Closing stdin asks the child to stop; signals only if it does not."""
    for stream in (process.stdin, process.stdout):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _ProcessEnvironment:
    """os.environ changes of the live stacks of this process, undone when the last one stops."""

    _lock = threading.Lock()
    _owners: dict[str, set[int]] = {}
    _values: dict[str, str | None] = {}
    _saved: dict[str, str | None] = {}

    @classmethod
    def apply(cls, token: int, values: dict[str, str | None], soft: frozenset[str]) -> None:
        """Sets ``values``; a ``soft`` key (a local default) yields to another stack's value."""
        with cls._lock:
            values = {
                key: (cls._values[key] if key in soft and cls._owners.get(key) else value)
                for key, value in values.items()
            }
            clashes = {
                key: (cls._values[key], value)
                for key, value in values.items()
                if cls._owners.get(key) and cls._values[key] != value
            }
            if clashes:
                raise LocalStackError(
                    "another local stack in this process set these environment variables to "
                    f"other values (theirs, ours): {clashes}"
                )
            for key, value in values.items():
                if not cls._owners.get(key):
                    cls._saved[key] = os.environ.get(key)
                    cls._values[key] = value
                cls._owners.setdefault(key, set()).add(token)
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    @classmethod
    def release(cls, token: int) -> None:
        with cls._lock:
            for key, owners in list(cls._owners.items()):
                owners.discard(token)
                if owners:
                    continue
                del cls._owners[key]
                cls._values.pop(key, None)
                saved = cls._saved.pop(key, None)
                if saved is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = saved


class _StackNames:
    _lock = threading.Lock()
    _live: set[str] = set()

    @classmethod
    def claim(cls, base: str) -> str:
        with cls._lock:
            name, n = base, 1
            while name in cls._live:
                n += 1
                name = f"{base}-{n}"
            cls._live.add(name)
            return name

    @classmethod
    def release(cls, name: str) -> None:
        with cls._lock:
            cls._live.discard(name)


class LocalStack:
    """The system on 127.0.0.1, wired from a SAM template.

    ``overrides``: a key naming a template Parameter sets it (like ``--parameter-overrides``);
    any other key is an environment variable set for every function after the template's.
    """

    def __init__(
        self,
        template_path: Path = Path("template.yaml"),
        *,
        api_port: int = 0,
        moto_port: int = 0,
        tenants_file: Path | None = None,
        schedules: bool = True,
        overrides: dict[str, str] | None = None,
        stack_name: str = DEFAULT_STACK_NAME,
    ) -> None:
        self.template_path = Path(template_path)
        self.api_port = api_port
        self.moto_port = moto_port
        self.tenants_file = Path(tenants_file) if tenants_file else DEFAULT_TENANTS_FILE
        self.schedules_enabled = schedules
        self.overrides = dict(overrides or {})
        self.base_stack_name = stack_name
        self.stack_name = stack_name
        self.url = ""
        self.moto_url = ""
        self.stats = Stats()
        self.template: LoadedTemplate | None = None
        self.functions: dict[str, FunctionRuntime] = {}
        self.routes: list[Route] = []
        self.sources: list[SqsSource] = []
        self.schedules: list[Schedule] = []
        self.tables: dict[str, str] = {}  # logical id -> physical name
        self.queues: dict[str, str] = {}  # logical id -> URL
        self.environment: dict[str, str] = {}
        self._provisioner: Provisioner | None = None
        self._pollers: list[SqsPoller] = []
        self._stopping = threading.Event()
        self._http: HttpServer | None = None
        self._scheduler: Scheduler | None = None
        self._sqs: Any = None
        self._moto_acquired = False
        self._name_claimed = False
        self._env_token = id(self)
        self._added_paths: list[str] = []
        self._defaulted: set[str] = set()
        self._tenant_cache: tuple[float, dict[str, str]] | None = None
        self._gateway_responses: dict[str, GatewayResponses] = {}
        self._state = "new"
        self._state_lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> LocalStack:
        with self._state_lock:
            if self._state != "new":
                raise LocalStackError(f"this stack is {self._state}; make a new one")
            self._state = "starting"
        try:
            self._start()
        except BaseException:
            self._state = "started"
            self.stop()
            raise
        self._state = "started"
        return self

    def _start(self) -> None:
        began = time.perf_counter()
        parameters = {k: v for k, v in self.overrides.items() if self._is_parameter(k)}
        self.template = load_template(self.template_path, parameters)
        self._tenants()  # a broken tenants file fails the start, not the first request
        self.moto_url = _SharedMoto.acquire(self.moto_port)
        self._moto_acquired = True
        self.stack_name = _StackNames.claim(self.base_stack_name)
        self._name_claimed = True
        clients = {name: self._client(name) for name in ("dynamodb", "sqs", "sns", "s3", "events")}
        self._sqs = clients["sqs"]
        provisioner = Provisioner(self.template, self.stack_name, clients)
        self._provisioner = provisioner
        provisioner.create_all()
        self.tables = {lid: t.name for lid, t in provisioner.tables.items()}
        self.queues = {lid: q.url for lid, q in provisioner.queues.items()}

        configs = self._function_configs(provisioner)
        self.environment = self._environment(configs)
        _ProcessEnvironment.apply(
            self._env_token,
            {**dict.fromkeys(REMOVED_ENV), **self.environment},
            soft=frozenset(self._defaulted),
        )
        for layer_dir in self.template.layer_dirs:
            if str(layer_dir) not in sys.path:
                sys.path.append(str(layer_dir))
                self._added_paths.append(str(layer_dir))
        for config in configs:
            runtime = FunctionRuntime(config, self.stats)
            runtime.load(namespace=self.stack_name.replace("-", "_"))
            self.functions[config.logical_id] = runtime

        self.routes = self._routes(provisioner)
        self.sources = self._sqs_sources(provisioner)
        self.schedules = self._schedule_specs(provisioner)

        front = ApiFront(self.routes, self.functions, self._tenants, self._gateway_responses)
        self._http = HttpServer(front, _HOST, self.api_port)
        self._http.start()
        self.url = f"http://{_HOST}:{self._http.port}"
        for source in self.sources:
            poller = SqsPoller(source, self.functions[source.function], self._sqs, self._stopping)
            poller.start()
            self._pollers.append(poller)
        self._scheduler = Scheduler(self.schedules, self.functions)
        if self.schedules_enabled:
            self._scheduler.start()
        log.info(
            "local stack %s up in %.1fs: %s (moto %s), %d functions, %d routes, %d queues "
            "polled, %d schedules%s",
            self.stack_name,
            time.perf_counter() - began,
            self.url,
            self.moto_url,
            len(self.functions),
            len(self.routes),
            len(self.sources),
            len(self.schedules),
            "" if self.schedules_enabled else " (off)",
        )

    def stop(self) -> None:
        """Stops the front, the timer and the pollers (in-flight invocations finish), then moto."""
        with self._state_lock:
            if self._state in ("new", "stopped", "stopping"):
                self._state = "stopped" if self._state == "new" else self._state
                return
            self._state = "stopping"
        self._stopping.set()
        errors: list[BaseException] = []

        def attempt(step: Any) -> None:
            try:
                step()
            except Exception as exc:  # keep stopping the rest
                errors.append(exc)
                log.exception("while stopping")

        if self._http is not None:
            attempt(self._http.stop)
        if self._scheduler is not None:
            attempt(self._scheduler.stop)
        for poller in self._pollers:
            attempt(poller.join)
        self._pollers.clear()
        for runtime in self.functions.values():
            runtime.unload()
        for path in self._added_paths:
            if path in sys.path:
                sys.path.remove(path)
        self._added_paths.clear()
        _ProcessEnvironment.release(self._env_token)
        if self._provisioner is not None and _SharedMoto.shared():
            attempt(self._provisioner.delete_all)
        if self._moto_acquired:
            self._moto_acquired = False
            attempt(_SharedMoto.release)
        if self._name_claimed:
            self._name_claimed = False
            _StackNames.release(self.stack_name)
        self._state = "stopped"
        log.info("local stack %s stopped", self.stack_name)

    # -- what tests and tools use --------------------------------------------------------------
    def api_key(self, tenant: str = "demo") -> str:
        for key, name in self._tenants().items():
            if name == tenant:
                return key
        raise LocalStackError(f"no API key for tenant {tenant!r} in {self.tenants_file}")

    def wait_idle(self, timeout: float = 60) -> bool:
        """True once the polled queues are empty and nothing runs (seen twice in a row)."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while time.monotonic() < deadline:
            quiet = quiet + 1 if self._idle_now() else 0
            if quiet >= 2:
                return True
            time.sleep(0.1)
        return False

    def fire_schedule(self, name: str) -> Outcome:
        """Fires a schedule now (by its function's or its rule's logical id) and waits."""
        if self._scheduler is None:
            raise LocalStackError("the stack is not started")
        return self._scheduler.fire(self._scheduler.find(name), retries=False)

    def client(self, service: str) -> Any:
        """A boto3 client for this stack's moto."""
        return self._client(service)

    def queue_depth(self, logical_id: str) -> dict[str, int]:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self.queues[logical_id],
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return {
            "visible": int(attributes["ApproximateNumberOfMessages"]),
            "in_flight": int(attributes["ApproximateNumberOfMessagesNotVisible"]),
            "delayed": int(attributes["ApproximateNumberOfMessagesDelayed"]),
        }

    def describe(self) -> dict[str, Any]:
        """What the serve banner prints: URLs, keys, tables, queues, wiring."""
        return {
            "url": self.url,
            "moto_url": self.moto_url,
            "api_keys": self._tenants(),
            "tables": dict(self.tables),
            "queues": dict(self.queues),
            "routes": [f"{r.method} {r.resource} -> {r.function or 'mock'}" for r in self.routes],
            "pollers": [
                f"{s.queue.name} -> {s.function} (batch {s.batch_size}, window "
                f"{s.batching_window_seconds:g}s, concurrency {s.concurrency}"
                f"{', partial failures' if s.report_batch_item_failures else ''})"
                for s in self.sources
            ],
            "schedules": [
                f"{s.expression} -> {s.function}{'' if s.enabled else ' (disabled)'}"
                for s in self.schedules
            ],
        }

    # -- internals -----------------------------------------------------------------------------
    def _is_parameter(self, key: str) -> bool:
        if self.template is None:
            from batchpredict_local.template import parse_yaml

            try:
                declared = parse_yaml(self.template_path.read_text()).get("Parameters") or {}
            except OSError as exc:
                raise TemplateError(f"cannot read {self.template_path}: {exc}") from exc
            return key in declared
        return key in self.template.parameters

    def _client(self, service: str) -> Any:
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.moto_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=64),
        )

    def _tenants(self) -> dict[str, str]:
        path = self.tenants_file
        try:
            mtime = path.stat().st_mtime
        except OSError:
            if path == DEFAULT_TENANTS_FILE:
                return dict(DEFAULT_TENANTS)
            raise LocalStackError(f"tenants file {path} does not exist") from None
        if self._tenant_cache is None or self._tenant_cache[0] != mtime:
            try:
                tenants = load_tenants(json.loads(path.read_text()))
            except (ValueError, OSError) as exc:
                raise LocalStackError(f"{path}: {exc}") from exc
            self._tenant_cache = (mtime, tenants)
        return dict(self._tenant_cache[1])

    def _function_configs(self, provisioner: Provisioner) -> list[FunctionConfig]:
        assert self.template is not None
        resolve = provisioner.resolver.resolve
        configs = []
        for logical_id, resource in provisioner.active.items():
            if resource["Type"] != FUNCTION:
                continue
            code = self.template.code.get(logical_id)
            if code is None:
                log.warning("%s has no local code (not a SAM function); not run", logical_id)
                continue
            props = resource.get("Properties", {}) or {}
            variables = resolve((props.get("Environment") or {}).get("Variables") or {})
            reserved = props.get("ReservedConcurrentExecutions")
            configs.append(
                FunctionConfig(
                    logical_id=logical_id,
                    name=provisioner.resolver.resolve({"Ref": logical_id}),
                    arn=provisioner.resolver.resolve({"Fn::GetAtt": [logical_id, "Arn"]}),
                    code=code,
                    timeout_seconds=int(resolve(props.get("Timeout", 3))),
                    memory_mb=int(resolve(props.get("MemorySize", 128))),
                    reserved_concurrency=None if reserved is None else int(resolve(reserved)),
                    environment={k: _env_value(v) for k, v in variables.items()},
                )
            )
        return configs

    def _environment(self, configs: list[FunctionConfig]) -> dict[str, str]:
        """The union of the functions' variables; they share one process (docs/LOCAL.md)."""
        merged: dict[str, str] = dict(DEFAULT_ENV)
        owner: dict[str, str] = {}
        self._defaulted = set(DEFAULT_ENV)
        conflicts: dict[str, dict[str, str]] = {}
        for config in configs:
            for key, value in config.environment.items():
                if key in owner and merged[key] != value:
                    if key in COSMETIC_ENV:
                        log.warning(
                            "%s differs between functions; %s's value is used", key, owner[key]
                        )
                        continue
                    conflicts.setdefault(key, {owner[key]: merged[key]})[config.logical_id] = value
                    continue
                merged[key] = value
                owner[key] = config.logical_id
                self._defaulted.discard(key)
        if conflicts:
            raise TemplateError(
                "functions run in one process locally and share one environment, but these "
                f"variables differ between functions: {conflicts}"
            )
        env_overrides = {k: v for k, v in self.overrides.items() if not self._is_parameter(k)}
        merged.update(env_overrides)
        self._defaulted -= set(env_overrides)
        merged.update(FORCED_ENV)
        merged["AWS_ENDPOINT_URL"] = self.moto_url
        return merged

    def _function_for_uri(self, provisioner: Provisioner) -> Any:
        by_arn = {runtime.config.arn: lid for lid, runtime in self.functions.items()}

        def function_for(uri: Any) -> str | None:
            arn = function_arn_in_uri(uri)
            return by_arn.get(arn) if arn else None

        return function_for

    def _routes(self, provisioner: Provisioner) -> list[Route]:
        resolve = provisioner.resolver.resolve
        bodies: dict[str, dict[str, Any]] = {}
        api_ids: dict[str, str] = {}
        stages: dict[str, str] = {}
        for logical_id, resource in provisioner.active.items():
            props = resource.get("Properties", {}) or {}
            if resource["Type"] == "AWS::ApiGateway::RestApi":
                if "Body" not in props:
                    log.warning("%s has no inline Body (BodyS3Location?); not served", logical_id)
                    continue
                bodies[logical_id] = resolve(props["Body"])
                api_ids[logical_id] = resolve({"Ref": logical_id})
                self._gateway_responses[logical_id] = GatewayResponses(
                    bodies[logical_id].get("x-amazon-apigateway-gateway-responses")
                )
            elif resource["Type"] == "AWS::ApiGateway::Stage":
                api = props.get("RestApiId", {})
                if isinstance(api, dict) and "Ref" in api:
                    stages[api["Ref"]] = str(resolve(props.get("StageName")))
        routes = routes_from_template(bodies, stages, api_ids, self._function_for_uri(provisioner))
        seen: set[tuple[str, str]] = set()
        unique = []
        for route in routes:
            key = (route.method, route.resource)
            if key in seen:
                log.warning("%s %s is declared twice; the first one answers", *key)
                continue
            seen.add(key)
            unique.append(route)
        return unique

    def _sqs_sources(self, provisioner: Provisioner) -> list[SqsSource]:
        resolve = provisioner.resolver.resolve
        by_arn = {q.arn: q for q in provisioner.queues.values()}
        fn_by_name = {r.config.name: lid for lid, r in self.functions.items()}
        fn_by_name.update({r.config.arn: lid for lid, r in self.functions.items()})
        sources = []
        for logical_id, resource in provisioner.active.items():
            if resource["Type"] != "AWS::Lambda::EventSourceMapping":
                continue
            props = resolve(resource.get("Properties", {}) or {})
            queue = by_arn.get(str(props.get("EventSourceArn")))
            function = fn_by_name.get(str(props.get("FunctionName")))
            if queue is None or function is None:
                log.warning(
                    "%s: not an SQS queue of this template, or no local function", logical_id
                )
                continue
            scaling = props.get("ScalingConfig") or {}
            window = float(props.get("MaximumBatchingWindowInSeconds", 0) or 0)
            batch_size = int(props.get("BatchSize", 10))
            if batch_size > 10 and window < 1 and not queue.name.endswith(".fifo"):
                raise TemplateError(
                    f"{logical_id}: BatchSize {batch_size} needs MaximumBatchingWindowInSeconds "
                    ">= 1 (Lambda rejects this mapping)"
                )
            concurrency = scaling.get("MaximumConcurrency")
            sources.append(
                SqsSource(
                    logical_id=logical_id,
                    function=function,
                    queue=queue,
                    batch_size=batch_size,
                    batching_window_seconds=window,
                    report_batch_item_failures="ReportBatchItemFailures"
                    in (props.get("FunctionResponseTypes") or []),
                    maximum_concurrency=int(concurrency) if concurrency else None,
                    enabled=str(props.get("Enabled", True)).lower() != "false",
                )
            )
        return sources

    def _schedule_specs(self, provisioner: Provisioner) -> list[Schedule]:
        resolve = provisioner.resolver.resolve
        fn_by_arn = {r.config.arn: lid for lid, r in self.functions.items()}
        fn_by_name = {r.config.name: lid for lid, r in self.functions.items()}
        invoke_configs: dict[str, dict[str, Any]] = {}
        for resource in provisioner.active.values():
            if resource["Type"] == "AWS::Lambda::EventInvokeConfig":
                props = resolve(resource.get("Properties", {}) or {})
                function = fn_by_name.get(str(props.get("FunctionName")))
                if function is not None:
                    invoke_configs[function] = props
        schedules = []
        for logical_id, resource in provisioner.active.items():
            kind = resource["Type"]
            if kind not in ("AWS::Events::Rule", "AWS::Scheduler::Schedule"):
                continue
            props = resolve(resource.get("Properties", {}) or {})
            expression = props.get("ScheduleExpression")
            if not expression:
                continue  # an event-pattern rule: nothing local sends it events
            targets = props.get("Targets") if kind == "AWS::Events::Rule" else [props.get("Target")]
            arn = resolve({"Fn::GetAtt": [logical_id, "Arn"]})
            for target in targets or []:
                function = fn_by_arn.get(str((target or {}).get("Arn")))
                if function is None:
                    log.warning("%s: target %s is not a local function", logical_id, target)
                    continue
                if "InputPath" in target or "InputTransformer" in target:
                    log.warning("%s: InputPath/InputTransformer not emulated", logical_id)
                schedules.append(
                    Schedule(
                        logical_id=logical_id,
                        function=function,
                        expression=str(expression),
                        rule_arn=str(arn),
                        payload=target.get("Input"),
                        enabled=str(props.get("State", "ENABLED")).upper() == "ENABLED",
                        scheduler=kind == "AWS::Scheduler::Schedule",
                        maximum_retry_attempts=int(
                            invoke_configs.get(function, {}).get("MaximumRetryAttempts", 2)
                        ),
                        maximum_event_age_seconds=int(
                            invoke_configs.get(function, {}).get("MaximumEventAgeInSeconds", 21600)
                        ),
                    )
                )
        return schedules

    def _idle_now(self) -> bool:
        if self.stats.busy() or any(p.held for p in self._pollers):
            return False
        polled = {s.queue.logical_id for s in self.sources if s.enabled}
        return all(not any(self.queue_depth(lid).values()) for lid in polled)


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)
