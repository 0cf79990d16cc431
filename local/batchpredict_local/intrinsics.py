"""CloudFormation intrinsic functions, resolved against the local stack's physical resources."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from batchpredict_local.errors import TemplateError

_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class NoValue:
    """AWS::NoValue: the property it stands for is removed."""


NO_VALUE = NoValue()


class Resolver:
    """Resolves Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::If and friends.

    ``ref`` and ``get_att`` answer for resources and parameters; they raise KeyError for a name
    they do not know.
    """

    def __init__(
        self,
        ref: Callable[[str], Any],
        get_att: Callable[[str, str], Any],
        conditions: Mapping[str, Any] | None = None,
        mappings: Mapping[str, Any] | None = None,
    ) -> None:
        self._ref = ref
        self._get_att = get_att
        self._conditions_raw = dict(conditions or {})
        self._conditions: dict[str, bool] = {}
        self._mappings = dict(mappings or {})

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            if name not in self._conditions_raw:
                raise TemplateError(f"unknown condition {name!r}")
            self._conditions[name] = bool(self._condition_value(self._conditions_raw[name]))
        return self._conditions[name]

    def _condition_value(self, node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Fn::Equals":
                left, right = (self.resolve(a) for a in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self._condition_value(arg[0])
            if key == "Fn::And":
                return all(self._condition_value(a) for a in arg)
            if key == "Fn::Or":
                return any(self._condition_value(a) for a in arg)
            if key == "Condition":
                return self.condition(arg)
        return self.resolve(node)

    def resolve(self, node: Any) -> Any:
        """The value with every intrinsic replaced; properties set to AWS::NoValue are removed."""
        if isinstance(node, list):
            items = [self.resolve(item) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            handler = self._FUNCTIONS.get(key)
            if handler is not None:
                return handler(self, arg)
        out = {}
        for key, value in node.items():
            resolved = self.resolve(value)
            if resolved is not NO_VALUE:
                out[key] = resolved
        return out

    def _fn_ref(self, name: Any) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        try:
            return self._ref(self.resolve(name))
        except KeyError as exc:
            raise TemplateError(f"Ref to unknown name {name!r}") from exc

    def _fn_get_att(self, arg: Any) -> Any:
        if isinstance(arg, str):
            logical_id, _, attribute = arg.partition(".")
        else:
            logical_id, attribute = self.resolve(arg[0]), self.resolve(arg[1])
        try:
            return self._get_att(logical_id, attribute)
        except KeyError as exc:
            raise TemplateError(f"Fn::GetAtt {logical_id}.{attribute} is unknown") from exc

    def _fn_sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v) for k, v in arg[1].items()}
        else:
            text, variables = arg, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, _, attribute = name.partition(".")
                return str(self._fn_get_att([logical_id, attribute]))
            return str(self._fn_ref(name))

        return _SUB_VARIABLE.sub(replace, text).replace("${!", "${")

    def _fn_join(self, arg: Any) -> str:
        delimiter, items = arg
        values = self.resolve(items)
        return str(delimiter).join(str(v) for v in values)

    def _fn_select(self, arg: Any) -> Any:
        index, items = self.resolve(arg[0]), self.resolve(arg[1])
        return items[int(index)]

    def _fn_split(self, arg: Any) -> list[str]:
        delimiter, text = arg
        return str(self.resolve(text)).split(delimiter)

    def _fn_if(self, arg: Any) -> Any:
        name, when_true, when_false = arg
        return self.resolve(when_true if self.condition(name) else when_false)

    def _fn_find_in_map(self, arg: Any) -> Any:
        name, top, second = (self.resolve(a) for a in arg[:3])
        try:
            return _lookup(_lookup(_lookup(self._mappings, name), top), second)
        except KeyError as exc:
            raise TemplateError(f"Fn::FindInMap {name}/{top}/{second} is unknown") from exc

    def _fn_base64(self, arg: Any) -> str:
        return base64.b64encode(str(self.resolve(arg)).encode()).decode()

    def _fn_to_json_string(self, arg: Any) -> str:
        return json.dumps(self.resolve(arg), separators=(",", ":"))

    def _fn_get_azs(self, arg: Any) -> list[str]:
        region = self.resolve(arg) or self._ref("AWS::Region")
        return [f"{region}a", f"{region}b", f"{region}c"]

    def _fn_import_value(self, arg: Any) -> Any:
        raise TemplateError(f"Fn::ImportValue {arg!r}: other stacks do not exist locally")

    def _fn_condition(self, arg: Any) -> bool:
        return self.condition(arg)

    _FUNCTIONS: dict[str, Callable[[Resolver, Any], Any]] = {
        "Ref": _fn_ref,
        "Fn::GetAtt": _fn_get_att,
        "Fn::Sub": _fn_sub,
        "Fn::Join": _fn_join,
        "Fn::Select": _fn_select,
        "Fn::Split": _fn_split,
        "Fn::If": _fn_if,
        "Fn::FindInMap": _fn_find_in_map,
        "Fn::Base64": _fn_base64,
        "Fn::ToJsonString": _fn_to_json_string,
        "Fn::GetAZs": _fn_get_azs,
        "Fn::ImportValue": _fn_import_value,
        "Condition": _fn_condition,
    }


def _lookup(mapping: Any, key: Any) -> Any:
    """A mapping's entry; YAML may have read a key such as 120 as a number."""
    if not isinstance(mapping, dict):
        raise KeyError(key)
    if key in mapping:
        return mapping[key]
    for candidate, value in mapping.items():
        if str(candidate) == str(key):
            return value
    raise KeyError(key)


def references(node: Any) -> set[str]:
    """The logical ids (and parameter names) a property value refers to."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= references(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                if isinstance(value, str):
                    found.add(value.partition(".")[0])
                elif isinstance(value, list) and value and isinstance(value[0], str):
                    found.add(value[0])
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                if isinstance(text, str):
                    local = set(value[1]) if isinstance(value, list) else set()
                    for name in _SUB_VARIABLE.findall(text):
                        name = name.strip().partition(".")[0]
                        if name not in local:
                            found.add(name)
                if isinstance(value, list) and len(value) > 1:
                    found |= references(value[1])
            else:
                found |= references(value)
    return found
