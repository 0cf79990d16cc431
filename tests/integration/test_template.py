"""template.yaml, samconfig.toml and events/: what the validators check, and what they cannot.

`sam validate`, `sam validate --lint` and cfn-lint check that the template is well formed. The
structural checks below hold it to the design: the queue/concurrency arithmetic that keeps
messages from being dead-lettered unprocessed, partial-batch failures, log retention, least
privilege, encryption, every metric and resource the dashboard names, and every API route.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import (
    APIGatewayProxyEvent,
    EventBridgeEvent,
    SQSEvent,
)
from pydantic import BaseModel

from batchpredict.api import tenant_of
from batchpredict.constants import ErrorCode, Metric
from batchpredict.models import ChunkMessage, PutEntitiesRequest, SubmitJobRequest
from batchpredict.settings import Settings
from tests.integration.template_helpers import (
    EVENTS,
    ROOT,
    TEMPLATE,
    allowed_values,
    app_routes,
    dashboard_body,
    dashboard_metrics,
    declared_routes,
    documented_routes,
    failed_rules,
    function_property,
    functions,
    known_names,
    load_samconfig,
    load_template,
    parameter_default,
    references,
    resolve,
    resources,
    sqs_events,
    sub_names,
    sub_text,
    translate,
)

BIN = Path(sys.executable).parent
TENANT = "arn:aws:iam::123456789012:user/alice"

# The public API (docs/API.md and DESIGN.md): every route, and the function that serves it.
ROUTES = {
    ("POST", "/v1/jobs"): "SubmitFunction",
    ("POST", "/v1/predict/batch/{prediction_type}"): "SubmitFunction",
    ("POST", "/v1/jobs/{job_id}/cancel"): "SubmitFunction",
    ("GET", "/v1/jobs"): "StatusFunction",
    ("GET", "/v1/jobs/{job_id}"): "StatusFunction",
    ("GET", "/v1/jobs/{job_id}/results"): "StatusFunction",
    ("GET", "/v1/jobs/{job_id}/events"): "StatusFunction",
    ("GET", "/v1/jobs/{job_id}/report"): "StatusFunction",
    ("GET", "/v1/stats"): "StatusFunction",
    ("PUT", "/v1/entities"): "EntitiesFunction",
    ("GET", "/v1/entities/{entity_id}"): "EntitiesFunction",
    ("DELETE", "/v1/entities/{entity_id}"): "EntitiesFunction",
    ("GET", "/v1/portfolios"): "EntitiesFunction",
    ("PUT", "/v1/portfolios/{portfolio_id}"): "EntitiesFunction",
    ("GET", "/v1/portfolios/{portfolio_id}"): "EntitiesFunction",
    ("DELETE", "/v1/portfolios/{portfolio_id}"): "EntitiesFunction",
    ("GET", "/v1/predictions/{prediction_type}/{entity_id}"): "EntitiesFunction",
    ("DELETE", "/v1/cache"): "EntitiesFunction",
}

# Least privilege: (policy template, the one resource it names) per function.
POLICIES = {
    "SubmitFunction": {
        ("DynamoDBCrudPolicy", "JobsTable"),
        ("DynamoDBReadPolicy", "EntitiesTable"),
        ("SQSSendMessagePolicy", "WorkQueue"),
        ("EventBridgePutEventsPolicy", "default"),  # a cancel can finish and announce a job
        ("S3ReadPolicy", "InputBucket"),  # input_uri
    },
    "StatusFunction": {("DynamoDBReadPolicy", "JobsTable")},
    "EntitiesFunction": {
        ("DynamoDBCrudPolicy", "EntitiesTable"),
        ("DynamoDBCrudPolicy", "JobsTable"),
        ("DynamoDBCrudPolicy", "CacheTable"),
    },
    "WorkerFunction": {
        ("DynamoDBReadPolicy", "EntitiesTable"),
        ("DynamoDBCrudPolicy", "JobsTable"),
        ("DynamoDBCrudPolicy", "CacheTable"),
        ("SQSSendMessagePolicy", "WorkQueue"),
        ("EventBridgePutEventsPolicy", "default"),
    },
    "DlqFunction": {
        ("DynamoDBCrudPolicy", "JobsTable"),
        ("EventBridgePutEventsPolicy", "default"),
        ("SQSSendMessagePolicy", "ParkingQueue"),  # it parks letters it cannot parse
    },
    "RefreshFunction": {
        ("DynamoDBCrudPolicy", "JobsTable"),
        ("DynamoDBReadPolicy", "EntitiesTable"),
        ("SQSSendMessagePolicy", "WorkQueue"),
        ("EventBridgePutEventsPolicy", "default"),
    },
}

# Error codes API Gateway's own answers use that are not (yet) ErrorCode members.
GATEWAY_ONLY_CODES: set[str] = set()


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def translated(template: dict[str, Any]) -> dict[str, Any]:
    return translate(template)


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"AWS_DEFAULT_REGION": "us-east-1", "SAM_CLI_TELEMETRY": "0"}
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )


# ------------------------------------------------------------------ the validators


@pytest.mark.xdist_group("template")
def test_sam_validate_template_translates(tmp_path: Path) -> None:
    # an empty config, or samconfig.toml's `lint = true` would make this the --lint run
    config = tmp_path / "samconfig.toml"
    config.write_text("version = 0.1\n")
    result = _run(
        [
            str(BIN / "sam"),
            "validate",
            "--template",
            str(TEMPLATE),
            "--region",
            "us-east-1",
            "--config-file",
            str(config),
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


@pytest.mark.xdist_group("template")
def test_sam_validate_lint_template_passes(tmp_path: Path) -> None:
    result = _run(
        [
            str(BIN / "sam"),
            "validate",
            "--lint",
            "--template",
            str(TEMPLATE),
            "--region",
            "us-east-1",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


@pytest.mark.xdist_group("template")
def test_cfn_lint_template_reports_nothing(tmp_path: Path) -> None:
    result = _run([str(BIN / "cfn-lint"), str(TEMPLATE)], tmp_path)
    # cfn-lint exits non-zero for errors, warnings and informational findings alike
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


# ------------------------------------------------------------------ worker concurrency


def test_worker_max_concurrency_default_within_reserved_concurrency(
    template: dict[str, Any],
) -> None:
    (worker_event,) = [p for fn, _, p in sqs_events(template) if fn == "WorkerFunction"]
    maximum = resolve(template, worker_event["ScalingConfig"]["MaximumConcurrency"])
    reserved = resolve(
        template, function_property(template, "WorkerFunction", "ReservedConcurrentExecutions")
    )
    assert 2 <= int(maximum) <= int(reserved)


def test_worker_concurrency_rules_reject_exactly_max_above_reserved(
    template: dict[str, Any],
) -> None:
    """CloudFormation refuses every pair of parameter values with maximum > reserved."""
    reserved_values = allowed_values(template, "WorkerReservedConcurrency")
    maximum_values = allowed_values(template, "WorkerMaxConcurrency")
    for reserved in reserved_values:
        for maximum in maximum_values:
            overrides = {"WorkerReservedConcurrency": reserved, "WorkerMaxConcurrency": maximum}
            refused = bool(failed_rules(template, overrides))
            assert refused == (maximum > reserved), overrides


def test_worker_reserved_concurrency_parameter_is_the_functions(
    template: dict[str, Any],
) -> None:
    reserved = function_property(template, "WorkerFunction", "ReservedConcurrentExecutions")
    (worker_event,) = [p for fn, _, p in sqs_events(template) if fn == "WorkerFunction"]
    assert reserved == {"Ref": "WorkerReservedConcurrency"}
    assert worker_event["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "WorkerMaxConcurrency"}


# ------------------------------------------------------------------ queues


def _queue_of(event: dict[str, Any]) -> str:
    queue = event["Queue"]
    assert "Fn::GetAtt" in queue, "an SQS event names a queue of this stack"
    return queue["Fn::GetAtt"][0]


@pytest.mark.parametrize(
    "worker_timeout", [None, 30, 60, 120, 180, 300, 600, 900], ids=lambda v: f"timeout-{v}"
)
def test_consumed_queue_visibility_timeout_at_least_six_function_timeouts(
    template: dict[str, Any], worker_timeout: int | None
) -> None:
    params = {} if worker_timeout is None else {"WorkerTimeout": worker_timeout}
    if worker_timeout is not None:
        assert worker_timeout in allowed_values(template, "WorkerTimeout")
    queues = resources(template, "AWS::SQS::Queue")
    for function, _, event in sqs_events(template):
        timeout = int(resolve(template, function_property(template, function, "Timeout"), params))
        visibility = queues[_queue_of(event)]["Properties"]["VisibilityTimeout"]
        assert int(resolve(template, visibility, params)) >= 6 * timeout, function


def test_worker_timeout_allowed_values_all_have_a_visibility_timeout(
    template: dict[str, Any],
) -> None:
    mapping = template["Mappings"]["WorkerTimeouts"]
    assert {int(k) for k in mapping} == set(allowed_values(template, "WorkerTimeout"))
    assert str(parameter_default(template, "WorkerTimeout")) in mapping
    for timeout, values in mapping.items():
        assert 6 * int(timeout) <= values["QueueVisibilityTimeout"] <= 43_200  # SQS maximum


def test_work_queue_redrive_max_receive_count_at_least_five(template: dict[str, Any]) -> None:
    queues = resources(template, "AWS::SQS::Queue")
    policy = queues["WorkQueue"]["Properties"]["RedrivePolicy"]
    assert int(policy["maxReceiveCount"]) >= 5
    assert policy["deadLetterTargetArn"]["Fn::GetAtt"][0] == "DeadLetterQueue"


def test_dead_letters_are_parked_by_the_dlq_function_never_dropped(
    template: dict[str, Any],
) -> None:
    queues = resources(template, "AWS::SQS::Queue")
    # No redrive past the DLQ: its consumer parks what it cannot parse, explicitly.
    assert "RedrivePolicy" not in queues["DeadLetterQueue"]["Properties"]
    assert "RedrivePolicy" not in queues["ParkingQueue"]["Properties"]
    dlq_env = template["Resources"]["DlqFunction"]["Properties"]["Environment"]["Variables"]
    assert dlq_env["PARKING_QUEUE_URL"] == {"Ref": "ParkingQueue"}
    consumed = {_queue_of(e) for _, _, e in sqs_events(template)}
    assert consumed == {"WorkQueue", "DeadLetterQueue"}  # parked letters wait for a human


def test_input_bucket_is_private_encrypted_tls_only_and_expires_inputs(
    template: dict[str, Any],
) -> None:
    bucket = template["Resources"]["InputBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] == {"Ref": "JobRetentionDays"}
    (statement,) = template["Resources"]["InputBucketPolicy"]["Properties"]["PolicyDocument"][
        "Statement"
    ]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["INPUT_BUCKET"] == {"Ref": "InputBucket"}


def test_dead_letter_retention_longer_than_source_queue_retention(
    template: dict[str, Any],
) -> None:
    """SQS keeps a dead letter's original enqueue time: a DLQ must keep messages longer."""
    queues = resources(template, "AWS::SQS::Queue")

    def retention(name: str) -> int:
        return int(queues[name]["Properties"].get("MessageRetentionPeriod", 345_600))

    assert retention("DeadLetterQueue") == 1_209_600
    assert retention("ParkingQueue") == 1_209_600
    assert retention("WorkQueue") < retention("DeadLetterQueue")


def test_sqs_events_report_batch_item_failures(template: dict[str, Any]) -> None:
    events = list(sqs_events(template))
    assert {fn for fn, _, _ in events} == {"WorkerFunction", "DlqFunction"}
    for function, name, event in events:
        assert event.get("FunctionResponseTypes") == ["ReportBatchItemFailures"], (function, name)
        # over 10 records needs a batching window; the worker's batch shares its reads
        assert event["BatchSize"] == (40 if function == "WorkerFunction" else 10)
        assert event["BatchSize"] <= 10 or event["MaximumBatchingWindowInSeconds"] >= 1


def test_worker_sqs_event_batches_as_designed(template: dict[str, Any]) -> None:
    (event,) = [p for fn, _, p in sqs_events(template) if fn == "WorkerFunction"]
    assert event["MaximumBatchingWindowInSeconds"] == 1
    assert _queue_of(event) == "WorkQueue"


# ------------------------------------------------------------------ functions


def test_functions_each_log_to_own_log_group_with_retention(template: dict[str, Any]) -> None:
    groups = resources(template, "AWS::Logs::LogGroup")
    used = set()
    for logical_id, fn in functions(template).items():
        ref = fn["Properties"].get("LoggingConfig", {}).get("LogGroup", {}).get("Ref")
        assert ref in groups, f"{logical_id} has no log group of its own"
        group = groups[ref]["Properties"]
        assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        # the log group is the one Lambda would use by default: /aws/lambda/<function name>
        function_name = sub_text(fn["Properties"]["FunctionName"])
        assert function_name
        assert sub_text(group["LogGroupName"]) == f"/aws/lambda/{function_name}"
        used.add(ref)
    assert used == set(groups), "a log group no function writes to"


def test_functions_code_and_handler_point_at_existing_files(template: dict[str, Any]) -> None:
    for logical_id in functions(template):
        code_uri = function_property(template, logical_id, "CodeUri")
        module, _, attribute = function_property(template, logical_id, "Handler").rpartition(".")
        source = ROOT / code_uri / f"{module}.py"
        assert source.is_file(), logical_id
        assert f"def {attribute}(" in source.read_text(), logical_id


def test_common_layer_builds_for_the_functions_runtime_and_architecture(
    template: dict[str, Any],
) -> None:
    layer = template["Resources"]["CommonLayer"]
    globals_fn = template["Globals"]["Function"]
    assert (ROOT / layer["Properties"]["ContentUri"] / "batchpredict" / "__init__.py").is_file()
    assert (ROOT / layer["Properties"]["ContentUri"] / "requirements.txt").is_file()
    assert layer["Properties"]["CompatibleRuntimes"] == [globals_fn["Runtime"]] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == globals_fn["Architectures"]
    assert layer["Metadata"] == {"BuildMethod": "python3.13", "BuildArchitecture": "arm64"}
    assert globals_fn["Layers"] == [{"Ref": "CommonLayer"}]


def test_environment_variables_are_settings_fields_or_powertools(
    template: dict[str, Any],
) -> None:
    fields = {name.upper() for name in Settings.model_fields}
    scopes = [template["Globals"]["Function"]] + [
        fn["Properties"] for fn in functions(template).values()
    ]
    names = set()
    for scope in scopes:
        names |= set(scope.get("Environment", {}).get("Variables", {}))
    unknown = {n for n in names if n not in fields and not n.startswith("POWERTOOLS_")}
    assert not unknown, f"no Settings field reads {sorted(unknown)}"
    wiring = {"JOBS_TABLE", "ENTITIES_TABLE", "CACHE_TABLE", "WORK_QUEUE_URL", "EVENT_BUS_NAME"}
    assert wiring <= names


def test_environment_wiring_refers_to_this_stacks_resources(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["JOBS_TABLE"] == {"Ref": "JobsTable"}
    assert variables["ENTITIES_TABLE"] == {"Ref": "EntitiesTable"}
    assert variables["CACHE_TABLE"] == {"Ref": "CacheTable"}
    assert variables["WORK_QUEUE_URL"] == {"Ref": "WorkQueue"}
    assert variables["POWERTOOLS_SERVICE_NAME"] == "batchpredict"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "BatchPredict"


def _bounds(field: str) -> tuple[int | None, int | None]:
    low = high = None
    for item in Settings.model_fields[field].metadata:
        low = getattr(item, "ge", low)
        high = getattr(item, "le", high)
    return low, high


@pytest.mark.parametrize(
    ("parameter", "field"),
    [
        ("ChunkSize", "chunk_size"),
        ("JobRetentionDays", "job_retention_days"),
        ("MaxAttempts", "max_attempts"),
    ],
)
def test_parameter_range_within_settings_constraints(
    template: dict[str, Any], parameter: str, field: str
) -> None:
    """No parameter value CloudFormation accepts makes the functions' settings invalid."""
    spec = template["Parameters"][parameter]
    low, high = _bounds(field)
    assert low is not None
    assert high is not None
    assert low <= int(spec["MinValue"]) <= int(spec["Default"]) <= int(spec["MaxValue"]) <= high
    assert int(spec["Default"]) == Settings.model_fields[field].default


def test_function_policies_least_privilege_per_function(template: dict[str, Any]) -> None:
    for logical_id, fn in functions(template).items():
        granted = set()
        for policy in fn["Properties"].get("Policies", []):
            assert isinstance(policy, dict), f"{logical_id}: managed policy {policy!r}"
            ((name, args),) = policy.items()
            (value,) = args.values()
            target = value if isinstance(value, str) else next(iter(references(value)))
            granted.add((name, target))
        assert granted == POLICIES[logical_id], logical_id


def test_function_roles_inline_statements_name_exact_resources(
    translated: dict[str, Any],
) -> None:
    roles = resources(translated, "AWS::IAM::Role")
    assert len(roles) == 6
    for logical_id, role in roles.items():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"]
                actions = [actions] if isinstance(actions, str) else actions
                assert all(not a.endswith(":*") and a != "*" for a in actions), logical_id
                targets = statement["Resource"]
                targets = targets if isinstance(targets, list) else [targets]
                assert "*" not in targets, (logical_id, statement)


# ------------------------------------------------------------------ API


def test_api_routes_every_documented_route_declared(template: dict[str, Any]) -> None:
    assert declared_routes(template) == ROUTES


def test_api_doc_routes_all_in_route_list() -> None:
    """docs/API.md names no route the template (ROUTES above) lacks."""
    assert documented_routes() <= set(ROUTES), documented_routes() - set(ROUTES)


def test_api_routes_each_handled_by_the_function_they_reach(template: dict[str, Any]) -> None:
    """Every route reaches a resolver that serves it; every resolver route is reachable."""
    code_dirs = {
        lid: Path(function_property(template, lid, "CodeUri")).name for lid in functions(template)
    }
    expected = {route: code_dirs[fn] for route, fn in declared_routes(template).items()}
    assert app_routes() == expected


def test_api_iam_auth_invokes_through_resource_policies(translated: dict[str, Any]) -> None:
    (api,) = resources(translated, "AWS::ApiGateway::RestApi").values()
    body = api["Properties"]["Body"]
    operations = [op for path in body["paths"].values() for op in path.values()]
    assert len(operations) == len(ROUTES)
    for operation in operations:
        assert operation["security"] == [{"AWS_IAM": []}]
        # no "credentials": API Gateway does not invoke with the caller's identity
        assert "credentials" not in operation["x-amazon-apigateway-integration"]
    permissions = resources(translated, "AWS::Lambda::Permission")
    api_permissions = [
        p
        for p in permissions.values()
        if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    assert len(api_permissions) == len(ROUTES)


def test_api_stage_throttles_and_records_metrics(template: dict[str, Any]) -> None:
    api = template["Resources"]["Api"]["Properties"]
    assert api["StageName"] == {"Ref": "Stage"}
    assert api["TracingEnabled"] is True
    assert api["Auth"]["DefaultAuthorizer"] == "AWS_IAM"
    (settings,) = api["MethodSettings"]
    assert settings["MetricsEnabled"] is True
    assert int(resolve(template, settings["ThrottlingRateLimit"])) > 0
    assert int(resolve(template, settings["ThrottlingBurstLimit"])) >= int(
        resolve(template, settings["ThrottlingRateLimit"])
    )


def test_api_gateway_responses_use_the_error_shape(template: dict[str, Any]) -> None:
    responses = template["Resources"]["Api"]["Properties"]["GatewayResponses"]
    known = {code.value for code in ErrorCode} | GATEWAY_ONLY_CODES
    assert {
        "MISSING_AUTHENTICATION_TOKEN",
        "ACCESS_DENIED",
        "THROTTLED",
        "DEFAULT_4XX",
        "DEFAULT_5XX",
    } <= set(responses)
    for kind, response in responses.items():
        text = response["ResponseTemplates"]["application/json"]
        # $context.error.messageString is already a quoted JSON string
        body = json.loads(text.replace("$context.error.messageString", '"message"'))
        assert set(body["error"]) == {"code", "message", "fields"}, kind
        assert body["error"]["code"] in known, kind


# ------------------------------------------------------------------ data and encryption


def test_jobs_table_indexes_match_the_stores_queries(template: dict[str, Any]) -> None:
    props = template["Resources"]["JobsTable"]["Properties"]
    indexes = {i["IndexName"]: i for i in props["GlobalSecondaryIndexes"]}
    assert [k["AttributeName"] for k in indexes["by-tenant"]["KeySchema"]] == ["gsi1pk", "gsi1sk"]
    assert indexes["by-tenant"]["Projection"] == {"ProjectionType": "ALL"}
    assert [k["AttributeName"] for k in indexes["sweep"]["KeySchema"]] == ["sweep_pk", "sweep_sk"]
    defined = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert defined == dict.fromkeys(["pk", "sk", "gsi1pk", "gsi1sk", "sweep_pk", "sweep_sk"], "S")


@pytest.mark.parametrize(
    ("table", "ttl"), [("JobsTable", True), ("EntitiesTable", False), ("CacheTable", True)]
)
def test_tables_on_demand_keyed_pk_sk_with_expected_ttl(
    template: dict[str, Any], table: str, ttl: bool
) -> None:
    props = template["Resources"][table]["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert [(k["AttributeName"], k["KeyType"]) for k in props["KeySchema"]] == [
        ("pk", "HASH"),
        ("sk", "RANGE"),
    ]
    expected = {"AttributeName": "expires_at", "Enabled": True} if ttl else None
    assert props.get("TimeToLiveSpecification") == expected
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_storage_every_table_queue_and_topic_encrypted(template: dict[str, Any]) -> None:
    tables = resources(template, "AWS::DynamoDB::Table")
    queues = resources(template, "AWS::SQS::Queue")
    topics = resources(template, "AWS::SNS::Topic")
    assert len(tables) == 3
    assert len(queues) == 3
    assert len(topics) == 1
    for name, table in tables.items():
        assert table["Properties"].get("SSESpecification", {}).get("SSEEnabled") is True, name
    for name, queue in queues.items():
        props = queue["Properties"]
        assert props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props, name
    for name, topic in topics.items():
        assert topic["Properties"].get("KmsMasterKeyId"), name


def test_alarm_topic_key_lets_cloudwatch_alarms_publish(template: dict[str, Any]) -> None:
    """A topic under alias/aws/sns silently drops alarm notifications."""
    key_ref = template["Resources"]["AlarmTopic"]["Properties"]["KmsMasterKeyId"]
    assert key_ref != "alias/aws/sns"
    key = template["Resources"][key_ref["Ref"]]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    grants = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert grants
    assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(grants[0]["Action"])


def test_alarm_email_subscription_only_with_an_address(template: dict[str, Any]) -> None:
    subscription = template["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert parameter_default(template, "AlarmEmail") == ""
    assert template["Conditions"]["HasAlarmEmail"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]
    }


# ------------------------------------------------------------------ alarms and dashboard


ALARMS = {
    ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "DeadLetterQueue", 0),
    ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "ParkingQueue", 0),
    ("AWS/SQS", "ApproximateAgeOfOldestMessage", "WorkQueue", 900),
    ("AWS/Lambda", "Errors", "WorkerFunction", 0),
    ("AWS/Lambda", "Throttles", "WorkerFunction", 0),
    ("AWS/ApiGateway", "5XXError", "Api", 0),
}


def test_alarms_cover_dead_letters_backlog_worker_and_api(template: dict[str, Any]) -> None:
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    found = set()
    for name, alarm in alarms.items():
        props = alarm["Properties"]
        assert props["TreatMissingData"] == "notBreaching", name
        assert props["ComparisonOperator"] == "GreaterThanThreshold", name
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        subject = sorted(references(props["Dimensions"]) - {"Stage", "AWS::StackName"})
        if props["Namespace"] == "AWS/ApiGateway":
            subject = ["Api"]  # named by its Name, "${AWS::StackName}-api"
        (resource,) = subject
        found.add((props["Namespace"], props["MetricName"], resource, props["Threshold"]))
    assert found == ALARMS


def test_api_alarm_and_dashboard_name_the_api_by_its_name(template: dict[str, Any]) -> None:
    api_name = sub_text(template["Resources"]["Api"]["Properties"]["Name"])
    assert api_name
    dims = {
        d["Name"]: d["Value"]
        for d in template["Resources"]["Api5xxAlarm"]["Properties"]["Dimensions"]
    }
    assert sub_text(dims["ApiName"]) == api_name
    body = dashboard_body(template, {"AWS::StackName": "stack"})
    api_dims = {
        m["dimensions"]["ApiName"]
        for m in dashboard_metrics(body)
        if m.get("namespace") == "AWS/ApiGateway"
    }
    assert api_dims == {api_name.replace("${AWS::StackName}", "stack")}


def test_dashboard_and_alarms_reference_only_existing_resources(
    template: dict[str, Any],
) -> None:
    known = known_names(template)
    dashboard = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]
    assert sub_names(sub_text(dashboard) or "") <= known
    for name, alarm in resources(template, "AWS::CloudWatch::Alarm").items():
        assert references(alarm["Properties"]) <= known, name
    assert references(template["Outputs"]) <= known


def test_dashboard_custom_metrics_are_metric_constants(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    namespace = variables["POWERTOOLS_METRICS_NAMESPACE"]
    service = variables["POWERTOOLS_SERVICE_NAME"]
    custom = [
        m for m in dashboard_metrics(dashboard_body(template)) if m.get("namespace") == namespace
    ]
    names = {m["name"] for m in custom}
    assert names <= {m.value for m in Metric}, names - {m.value for m in Metric}
    assert names == {m.value for m in Metric}, "a Metric the dashboard does not show"
    for metric in custom:
        assert metric["dimensions"] == {"service": service}, metric["name"]
    alarm_metrics = {
        a["Properties"]["MetricName"]
        for a in resources(template, "AWS::CloudWatch::Alarm").values()
        if a["Properties"]["Namespace"] == namespace
    }
    assert alarm_metrics <= {m.value for m in Metric}


def test_dashboard_cache_hit_rate_is_hits_over_lookups(template: dict[str, Any]) -> None:
    metrics = list(dashboard_metrics(dashboard_body(template)))
    ids = {m["name"]: m["options"].get("id") for m in metrics if "name" in m}
    (rate,) = [m for m in metrics if "expression" in m]
    hits, misses = ids[Metric.CACHE_HITS], ids[Metric.CACHE_MISSES]
    assert rate["expression"].replace(" ", "") == f"100*{hits}/({hits}+{misses})"


def test_dashboard_shows_api_queue_and_worker_health(template: dict[str, Any]) -> None:
    body = dashboard_body(template)
    shown = set()
    for metric in dashboard_metrics(body):
        if "namespace" in metric:
            stat = metric["options"].get("stat") or metric["widget"]["properties"].get("stat")
            (subject,) = (
                metric["dimensions"].values()
                if metric["namespace"] != "AWS/ApiGateway"
                else ["Api"]
            )
            shown.add((metric["namespace"], metric["name"], stat, subject))
    for stat in ("p50", "p95", "p99"):
        assert ("AWS/ApiGateway", "Latency", stat, "Api") in shown
        assert ("AWS/Lambda", "Duration", stat, "WorkerFunction") in shown
    for name in ("Count", "4XXError", "5XXError"):
        assert ("AWS/ApiGateway", name, "Sum", "Api") in shown
    for name in ("Invocations", "Errors", "Throttles"):
        assert ("AWS/Lambda", name, "Sum", "WorkerFunction") in shown
    assert ("AWS/Lambda", "ConcurrentExecutions", "Maximum", "WorkerFunction") in shown
    for queue in ("WorkQueue", "DeadLetterQueue", "ParkingQueue"):
        for name in ("ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"):
            assert ("AWS/SQS", name, "Maximum", f"{queue}.QueueName") in shown
    (alarm_widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    assert sorted(alarm_widget["properties"]["alarms"]) == sorted(f"{a}.Arn" for a in alarms)


def test_outputs_name_the_api_tables_queues_topic_and_dashboard(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert set(outputs) >= {
        "ApiUrl",
        "JobsTableName",
        "EntitiesTableName",
        "CacheTableName",
        "WorkQueueUrl",
        "DeadLetterQueueUrl",
        "ParkingQueueUrl",
        "AlarmTopicArn",
        "DashboardUrl",
    }
    assert sub_text(outputs["ApiUrl"]["Value"]) == (
        "https://${Api}.execute-api.${AWS::Region}.amazonaws.com/${Stage}"
    )
    assert "#dashboards:name=${Dashboard}" in (sub_text(outputs["DashboardUrl"]["Value"]) or "")


# ------------------------------------------------------------------ samconfig.toml


def _overrides(text: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in text.split())


@pytest.mark.parametrize(
    ("env", "stack", "stage"),
    [
        ("default", "batchpredict-dev", "dev"),
        ("dev", "batchpredict-dev", "dev"),
        ("prod", "batchpredict-prod", "prod"),
    ],
)
def test_samconfig_environment_deploys_its_stage(
    template: dict[str, Any], env: str, stack: str, stage: str
) -> None:
    config = load_samconfig()
    assert config["version"] == 0.1
    section = config[env]
    assert section["global"]["parameters"]["stack_name"] == stack
    deploy = section["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["resolve_s3"] is True
    assert deploy["confirm_changeset"] is (env == "prod")
    assert section["build"]["parameters"] == {"cached": True, "parallel": True}
    assert section["validate"]["parameters"]["lint"] is True
    overrides = _overrides(deploy["parameter_overrides"])
    assert overrides["Stage"] == stage
    for name, value in overrides.items():
        spec = template["Parameters"][name]
        if "AllowedValues" in spec:
            assert value in {str(v) for v in spec["AllowedValues"]}, name
        if "MinValue" in spec:
            assert int(spec["MinValue"]) <= int(value) <= int(spec.get("MaxValue", value)), name
    assert not failed_rules(template, overrides)


# ------------------------------------------------------------------ events/


API_EVENTS = {
    "submit_job.json": ("POST", "/v1/jobs"),
    "predict_batch.json": ("POST", "/v1/predict/batch/{prediction_type}"),
    "get_job.json": ("GET", "/v1/jobs/{job_id}"),
    "get_results.json": ("GET", "/v1/jobs/{job_id}/results"),
    "cancel_job.json": ("POST", "/v1/jobs/{job_id}/cancel"),
    "list_jobs.json": ("GET", "/v1/jobs"),
    "put_entities.json": ("PUT", "/v1/entities"),
    "get_entity.json": ("GET", "/v1/entities/{entity_id}"),
    "delete_entity.json": ("DELETE", "/v1/entities/{entity_id}"),
}
SQS_EVENTS = {"worker_sqs.json": "WorkerFunction", "dlq_sqs.json": "DlqFunction"}
SCHEDULE_EVENTS = {"refresh_schedule.json": "RefreshFunction"}
BODY_MODELS: dict[str, type[BaseModel]] = {
    "submit_job.json": SubmitJobRequest,
    "predict_batch.json": SubmitJobRequest,
    "put_entities.json": PutEntitiesRequest,
}


def _event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def test_events_every_file_is_a_known_sample() -> None:
    names = {p.name for p in EVENTS.glob("*.json")}
    assert names == set(API_EVENTS) | set(SQS_EVENTS) | set(SCHEDULE_EVENTS)


@pytest.mark.parametrize("name", sorted(API_EVENTS))
def test_api_event_route_declared_and_shape_valid(template: dict[str, Any], name: str) -> None:
    event = _event(name)
    route = (event["httpMethod"], event["resource"])
    assert route == API_EVENTS[name]
    assert route in declared_routes(template)
    # the path is the resource with the path parameters filled in
    params = event["pathParameters"] or {}
    assert set(params) == set(re.findall(r"\{(\w+)\}", event["resource"]))
    assert event["resource"].format(**params) == event["path"]
    parsed = APIGatewayProxyEvent(event)
    assert parsed.request_context.resource_path == event["resource"]
    assert parsed.request_context.http_method == event["httpMethod"]
    assert parsed.request_context.account_id == "123456789012"
    assert tenant_of(parsed) == TENANT
    if name in BODY_MODELS:
        BODY_MODELS[name].model_validate_json(event["body"])
    else:
        assert event["body"] is None


def test_submit_job_event_asks_ising_for_three_entities() -> None:
    body = SubmitJobRequest.model_validate_json(_event("submit_job.json")["body"])
    assert body.prediction_type == "ising"
    assert body.entity_ids == ["entity-1", "entity-2", "entity-3"]
    entities = PutEntitiesRequest.model_validate_json(_event("put_entities.json")["body"])
    assert [e.entity_id for e in entities.entities] == body.entity_ids
    for entity in entities.entities:
        assert {"spin", "threshold", "adopted"} <= set(entity.attributes)
        assert entity.neighbours
        assert entity.time_series


@pytest.mark.parametrize("name", sorted(SQS_EVENTS))
def test_sqs_event_carries_a_chunk_from_the_consumed_queue(
    template: dict[str, Any], name: str
) -> None:
    event = _event(name)
    (queue,) = [_queue_of(e) for fn, _, e in sqs_events(template) if fn == SQS_EVENTS[name]]
    parsed = SQSEvent(event)
    records = list(parsed.records)
    assert records
    for record in records:
        assert record.event_source == "aws:sqs"
        # CloudFormation names a queue <stack>-<logical id>-<suffix>
        assert record.event_source_arn.split(":")[-1].split("-")[-2] == queue
        assert int(record.attributes.approximate_receive_count) >= 1
        message = ChunkMessage.model_validate_json(record.body)
        assert message.tenant == TENANT
        assert (message.job_id, message.chunk_id, message.attempt) == ("j-example", "000000", 1)
        assert message.entity_ids == ["entity-1", "entity-2", "entity-3"]


def test_schedule_event_is_a_scheduled_event_for_the_refresh_rule(
    template: dict[str, Any],
) -> None:
    event = EventBridgeEvent(_event("refresh_schedule.json"))
    assert event.detail_type == "Scheduled Event"
    assert event.source == "aws.events"
    assert event.detail == {}
    schedules = [
        e["Properties"]["Schedule"]
        for e in template["Resources"]["RefreshFunction"]["Properties"]["Events"].values()
        if e["Type"] == "Schedule"
    ]
    assert schedules == ["rate(1 minute)"]
    assert "RefreshFunction" in event.resources[0]
