"""Reading template.yaml the way CloudFormation would, for the template checks.

The YAML loader understands the short intrinsic tags (!Ref, !GetAtt, !Sub, ...); the helpers
resolve the few intrinsics the checks need (Ref to a parameter default, Fn::FindInMap), list what
a Fn::Sub string refers to, and evaluate the template's Rules for given parameter values.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

from batchpredict_local.intrinsics import references as references

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
EVENTS = ROOT / "events"
FUNCTIONS = ROOT / "functions"
API_DOC = ROOT / "docs" / "API.md"

FUNCTION = "AWS::Serverless::Function"
SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")
PSEUDO_PARAMETERS = frozenset(
    {
        "AWS::AccountId",
        "AWS::NotificationARNs",
        "AWS::NoValue",
        "AWS::Partition",
        "AWS::Region",
        "AWS::StackId",
        "AWS::StackName",
        "AWS::URLSuffix",
    }
)


@cache
def _load() -> dict[str, Any]:
    return yaml_parse(TEMPLATE.read_text())


def load_template() -> dict[str, Any]:
    """template.yaml as CloudFormation's JSON form (a fresh copy: callers may change it)."""
    return copy.deepcopy(_load())


def load_samconfig() -> dict[str, Any]:
    return tomllib.loads(SAMCONFIG.read_text())


def resources(template: Mapping[str, Any], kind: str | None = None) -> dict[str, dict[str, Any]]:
    found = template.get("Resources", {})
    return {lid: r for lid, r in found.items() if kind is None or r.get("Type") == kind}


def functions(template: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return resources(template, FUNCTION)


def function_property(template: Mapping[str, Any], logical_id: str, name: str) -> Any:
    """A function's property, falling back to Globals.Function as SAM does."""
    props = template["Resources"][logical_id].get("Properties", {})
    if name in props:
        return props[name]
    return template.get("Globals", {}).get("Function", {}).get(name)


def parameter_default(template: Mapping[str, Any], name: str) -> Any:
    return template["Parameters"][name]["Default"]


def allowed_values(template: Mapping[str, Any], name: str) -> list[int]:
    return [int(v) for v in template["Parameters"][name]["AllowedValues"]]


def resolve(
    template: Mapping[str, Any], node: Any, parameters: Mapping[str, Any] | None = None
) -> Any:
    """Resolves Ref to a parameter (given value, else its default) and Fn::FindInMap."""
    parameters = parameters or {}
    if isinstance(node, dict) and len(node) == 1:
        ((key, arg),) = node.items()
        if key == "Ref" and arg in template.get("Parameters", {}):
            return parameters.get(arg, parameter_default(template, arg))
        if key == "Fn::FindInMap":
            name, top, second = (resolve(template, a, parameters) for a in arg)
            return template["Mappings"][name][str(top)][second]
    return node


def sub_text(value: Any) -> str | None:
    """The template string of a Fn::Sub, or None."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub[0] if isinstance(sub, list) else sub
    return None


def sub_names(text: str) -> set[str]:
    """Names a Fn::Sub string refers to: logical ids, parameters and pseudo parameters."""
    names = set()
    for name in SUB_VARIABLE.findall(text):
        name = name.strip()
        names.add(name if name.startswith("AWS::") else name.partition(".")[0])
    return names


def known_names(template: Mapping[str, Any]) -> set[str]:
    return (
        set(template.get("Resources", {}))
        | set(template.get("Parameters", {}))
        | set(PSEUDO_PARAMETERS)
    )


def substitute(text: str, values: Mapping[str, str]) -> str:
    """A Fn::Sub string with each ${Name} replaced by values[Name], else by Name itself."""
    return SUB_VARIABLE.sub(lambda m: values.get(m.group(1).strip(), m.group(1).strip()), text)


def dashboard_body(template: Mapping[str, Any], values: Mapping[str, str] | None = None) -> Any:
    """The dashboard's JSON, with every ${...} substituted as CloudFormation would.

    Number parameters become their defaults; everything else its own name (`${WorkQueue.QueueName}`
    becomes "WorkQueue.QueueName"), unless `values` says otherwise.
    """
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    text = sub_text(dashboard["Properties"]["DashboardBody"])
    assert text is not None, "DashboardBody must be a Fn::Sub of a JSON string"
    numbers = {
        name: str(spec["Default"])
        for name, spec in template.get("Parameters", {}).items()
        if spec.get("Type") == "Number"
    }
    return json.loads(substitute(text, numbers | dict(values or {})))


def dashboard_metrics(body: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every metric of the dashboard's metric widgets: namespace, name, dimensions, options.

    Expressions (metric math) come out as {"expression": ..., "id": ...}.
    """
    for widget in body.get("widgets", []):
        if widget.get("type") != "metric":
            continue
        previous: list[Any] = []
        for row in widget["properties"].get("metrics", []):
            options = row[-1] if row and isinstance(row[-1], dict) else {}
            spec = row[:-1] if options else row
            if "expression" in options:
                yield {
                    "expression": options["expression"],
                    "id": options.get("id"),
                    "widget": widget,
                }
                continue
            # "." repeats the previous row's value at that position
            spec = [
                previous[i] if v == "." and i < len(previous) else v for i, v in enumerate(spec)
            ]
            previous = spec
            namespace, name, *dims = spec
            yield {
                "namespace": namespace,
                "name": name,
                "dimensions": dict(zip(dims[::2], dims[1::2], strict=True)),
                "options": options,
                "widget": widget,
            }


def _rule_value(node: Any, parameters: Mapping[str, str]) -> Any:
    if isinstance(node, dict) and len(node) == 1:
        ((key, arg),) = node.items()
        if key == "Ref":
            return parameters[arg]
        if key == "Fn::Equals":
            left, right = (_rule_value(a, parameters) for a in arg)
            return str(left) == str(right)
        if key == "Fn::Contains":
            values, value = _rule_value(arg[0], parameters), _rule_value(arg[1], parameters)
            return str(value) in {str(v) for v in values}
        if key == "Fn::Not":
            return not _rule_value(arg[0], parameters)
        if key == "Fn::And":
            return all(_rule_value(a, parameters) for a in arg)
        if key == "Fn::Or":
            return any(_rule_value(a, parameters) for a in arg)
        raise NotImplementedError(f"rule function {key}")
    if isinstance(node, list):
        return [_rule_value(v, parameters) for v in node]
    return node


def failed_rules(template: Mapping[str, Any], overrides: Mapping[str, Any]) -> list[str]:
    """The Rules whose assertions fail for these parameter values (CloudFormation's check)."""
    values = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()}
    values.update({k: str(v) for k, v in overrides.items()})
    failed = []
    for name, rule in template.get("Rules", {}).items():
        condition = rule.get("RuleCondition")
        if condition is not None and not _rule_value(condition, values):
            continue
        if not all(_rule_value(a["Assert"], values) for a in rule["Assertions"]):
            failed.append(name)
    return failed


def declared_routes(template: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    """(METHOD, path) -> the logical id of the function the template routes it to."""
    routes: dict[tuple[str, str], str] = {}
    for logical_id, fn in functions(template).items():
        for event in fn["Properties"].get("Events", {}).values():
            if event["Type"] == "Api":
                props = event["Properties"]
                route = (props["Method"].upper(), props["Path"])
                assert route not in routes, f"{route} declared twice"
                routes[route] = logical_id
    return routes


def sqs_events(template: Mapping[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(function logical id, event name, event properties) of every SQS event."""
    for logical_id, fn in functions(template).items():
        for name, event in fn["Properties"].get("Events", {}).items():
            if event["Type"] == "SQS":
                yield logical_id, name, event["Properties"]


def translate(template: Mapping[str, Any]) -> dict[str, Any]:
    """The CloudFormation the SAM transform makes of the template (no AWS call)."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    sam = copy.deepcopy(dict(template))
    for resource in sam["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == FUNCTION:
            props["CodeUri"] = "s3://bucket/code.zip"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = "s3://bucket/layer.zip"
    parameters = {name: spec.get("Default") for name, spec in sam["Parameters"].items()}
    translator = Translator(None, Parser(), boto_session=boto3.Session(region_name="us-east-1"))
    return translator.translate(sam, parameter_values=parameters, get_managed_policy_map=lambda: {})


def app_routes() -> dict[tuple[str, str], str]:
    """(METHOD, path) -> function directory, from each handler's @app.<method>("...") routes."""
    decorator = re.compile(r'@app\.(get|post|put|delete|patch)\(\s*"([^"]+)"')
    routes = {}
    for app in sorted(FUNCTIONS.glob("*/app.py")):
        for method, path in decorator.findall(app.read_text()):
            routes[(method.upper(), re.sub(r"<(\w+)>", r"{\1}", path))] = app.parent.name
    return routes


def documented_routes() -> set[tuple[str, str]]:
    """Every `METHOD /v1/...` that docs/API.md names."""
    pattern = re.compile(
        r"\b((?:GET|PUT|POST|DELETE|PATCH)(?:\|(?:GET|PUT|POST|DELETE|PATCH))*) +(/v1/[^\s`?)]*)"
    )
    found = set()
    for methods, path in pattern.findall(API_DOC.read_text()):
        for method in methods.split("|"):
            found.add((method, path.rstrip(".,:")))
    return found
