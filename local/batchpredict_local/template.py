"""Reads template.yaml: the SAM translator turns it into CloudFormation, as `sam deploy` would.

Everything the local stack wires comes from the translated template: the tables and queues
it creates, each function's environment, its API routes (the translated REST API's OpenAPI
body), its SQS event source mappings and its schedule rules.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml

from batchpredict_local.errors import TemplateError

REGION = "us-east-1"
ACCOUNT_ID = "000000000000"
PARTITION = "aws"

_CODE_BUCKET = "batchpredict-local-code"


class _CfnLoader(yaml.SafeLoader):
    """A YAML loader for CloudFormation's short forms (!Ref, !GetAtt, !Sub, ...).

    A subclass, so the process-wide SafeLoader keeps no constructor of ours.
    """


def _construct_intrinsic(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = tag_suffix
    key = name if name in ("Ref", "Condition") else f"Fn::{name}"
    value: Any
    if name == "GetAtt" and isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node).split(".", 1)
    elif isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {key: value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def parse_yaml(text: str) -> dict[str, Any]:
    data = yaml.load(text, Loader=_CfnLoader)  # a SafeLoader subclass
    if not isinstance(data, dict):
        raise TemplateError("the template is not a YAML mapping")
    return data


@dataclass(frozen=True)
class FunctionCode:
    """Where a function's handler lives on disk (its CodeUri and Handler)."""

    code_dir: Path
    handler: str

    @property
    def module_path(self) -> Path:
        module, _, _ = self.handler.rpartition(".")
        if not module:
            raise TemplateError(f"Handler {self.handler!r} is not of the form module.function")
        return self.code_dir / (module.replace(".", "/") + ".py")

    @property
    def attribute(self) -> str:
        return self.handler.rpartition(".")[2]


@dataclass
class LoadedTemplate:
    path: Path
    sam: dict[str, Any]
    cfn: dict[str, Any]
    parameters: dict[str, Any]
    code: dict[str, FunctionCode] = field(default_factory=dict)
    layer_dirs: list[Path] = field(default_factory=list)

    def resources(self, *types: str) -> dict[str, dict[str, Any]]:
        found = self.cfn.get("Resources", {})
        return {lid: res for lid, res in found.items() if not types or res.get("Type") in types}


def _local_uri(value: Any, what: str, logical_id: str) -> str:
    if not isinstance(value, str) or value.startswith("s3://"):
        raise TemplateError(
            f"{logical_id}: {what} {value!r} is not a local path; the local stack runs code "
            "from the working tree"
        )
    return value


def _rewrite_code_uris(
    sam: dict[str, Any], root: Path
) -> tuple[dict[str, FunctionCode], list[Path]]:
    """Swaps local CodeUri/ContentUri for S3 placeholders the translator accepts."""
    globals_fn = sam.get("Globals", {}).get("Function", {}) or {}
    code: dict[str, FunctionCode] = {}
    layers: list[Path] = []
    for logical_id, resource in sam.get("Resources", {}).items():
        kind = resource.get("Type")
        props = resource.setdefault("Properties", {}) or {}
        resource["Properties"] = props
        if kind == "AWS::Serverless::Function":
            if "InlineCode" in props or "ImageUri" in props:
                raise TemplateError(f"{logical_id}: only CodeUri functions run locally")
            uri = _local_uri(props.get("CodeUri", globals_fn.get("CodeUri")), "CodeUri", logical_id)
            handler = props.get("Handler", globals_fn.get("Handler"))
            if not isinstance(handler, str):
                raise TemplateError(f"{logical_id}: no Handler")
            code[logical_id] = FunctionCode((root / uri).resolve(), handler)
            props["CodeUri"] = f"s3://{_CODE_BUCKET}/{logical_id}"
        elif kind == "AWS::Serverless::LayerVersion":
            uri = _local_uri(props.get("ContentUri"), "ContentUri", logical_id)
            layers.append((root / uri).resolve())
            props["ContentUri"] = f"s3://{_CODE_BUCKET}/{logical_id}"
    if "CodeUri" in globals_fn:
        globals_fn = dict(globals_fn)
        globals_fn["CodeUri"] = f"s3://{_CODE_BUCKET}/globals"
        sam["Globals"]["Function"] = globals_fn
    return code, layers


def _check_shape(template: dict[str, Any], path: Path) -> None:
    resources = template.get("Resources")
    if not isinstance(resources, dict) or not resources:
        raise TemplateError(f"{path}: Resources must be a mapping of logical ids to resources")
    for logical_id, resource in resources.items():
        if not isinstance(resource, dict) or not isinstance(resource.get("Type"), str):
            raise TemplateError(f"{path}: resource {logical_id} has no Type")
        if not isinstance(resource.get("Properties", {}) or {}, dict):
            raise TemplateError(f"{path}: {logical_id}.Properties must be a mapping")
    for section in ("Parameters", "Globals", "Conditions", "Mappings"):
        if not isinstance(template.get(section, {}) or {}, dict):
            raise TemplateError(f"{path}: {section} must be a mapping")


def parameter_values(template: dict[str, Any], overrides: dict[str, str]) -> dict[str, Any]:
    declared = template.get("Parameters", {}) or {}
    unknown = set(overrides) - set(declared)
    if unknown:
        raise TemplateError(f"parameter overrides for undeclared parameters: {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in overrides:
            value = overrides[name]
        elif isinstance(spec, dict) and "Default" in spec:
            value = spec["Default"]
        else:
            raise TemplateError(f"parameter {name} has no Default and no override")
        kind = str(spec.get("Type", "String")) if isinstance(spec, dict) else "String"
        values[name] = _parameter_value(value, kind)
        allowed = spec.get("AllowedValues") if isinstance(spec, dict) else None
        if allowed and values[name] not in [_parameter_value(a, "String") for a in allowed]:
            raise TemplateError(f"parameter {name}={values[name]!r} is not one of {allowed}")
    return values


def _parameter_value(value: Any, kind: str) -> Any:
    """CloudFormation passes parameters as strings (lists for the list types)."""
    if kind.startswith("List<") or kind == "CommaDelimitedList":
        items = value if isinstance(value, list) else str(value).split(",")
        return [_parameter_value(item, "String") for item in items]
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def load_template(path: Path, parameter_overrides: dict[str, str] | None = None) -> LoadedTemplate:
    """Parses and translates a SAM template, with no AWS call (an empty managed-policy map)."""
    from samtranslator.metrics.metrics import DummyMetricsPublisher, Metrics
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise TemplateError(f"cannot read {path}: {exc}") from exc
    sam = parse_yaml(text)
    _check_shape(sam, path)
    original = copy.deepcopy(sam)
    code, layers = _rewrite_code_uris(sam, path.parent.resolve())
    params = parameter_values(sam, parameter_overrides or {})
    if "Transform" in sam:
        metrics = Metrics("batchpredict-local", DummyMetricsPublisher())
        # The translator warns about feature toggles that only its service configures.
        toggle_log = logging.getLogger("samtranslator.feature_toggle.feature_toggle")
        toggle_level = toggle_log.level
        toggle_log.setLevel(logging.ERROR)
        translator = Translator(
            None, Parser(), boto_session=boto3.Session(region_name=REGION), metrics=metrics
        )
        try:
            cfn = translator.translate(
                sam,
                parameter_values=dict(params),
                get_managed_policy_map=lambda: {},
            )
        except InvalidDocumentException as exc:
            causes = "; ".join(str(c) for c in exc.causes)
            raise TemplateError(f"{path}: the SAM translator rejected it: {causes}") from exc
        finally:
            metrics.publish()
            toggle_log.setLevel(toggle_level)
    else:
        cfn = sam
    return LoadedTemplate(path, original, cfn, params, code, layers)
