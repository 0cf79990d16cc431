"""The stack under test, from template.yaml: the same tables, queues and settings as deployed.

The template is translated once per session; each test provisions it into a fresh moto account.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from batchpredict_local.resources import FUNCTION, Provisioner
from batchpredict_local.template import LoadedTemplate, load_template
from tests.support.handlers import ROOT


@cache
def template() -> LoadedTemplate:
    return load_template(ROOT / "template.yaml")


@dataclass
class Provisioned:
    environment: dict[str, str]
    queues: dict[str, str]  # logical id -> URL
    tables: dict[str, str]  # logical id -> name


def provision(clients: dict[str, Any]) -> Provisioned:
    """Create the template's tables and queues in moto; the union of the functions' settings."""
    provisioner = Provisioner(template(), "test", clients)
    provisioner.create_all()
    environment: dict[str, str] = {}
    for resource in provisioner.active.values():
        if resource["Type"] != FUNCTION:
            continue
        variables = (resource.get("Properties", {}).get("Environment") or {}).get("Variables")
        for name, value in provisioner.resolver.resolve(variables or {}).items():
            environment[name] = value if isinstance(value, str) else str(value)
    return Provisioned(
        environment,
        {lid: q.url for lid, q in provisioner.queues.items()},
        {lid: t.name for lid, t in provisioner.tables.items()},
    )


@cache
def routes() -> dict[tuple[str, str], str]:
    """(method, path) -> function folder, for every Api event template.yaml declares."""
    found = {}
    for resource in template().sam["Resources"].values():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        folder = resource["Properties"]["CodeUri"].rstrip("/").split("/")[-1]
        for event in (resource["Properties"].get("Events") or {}).values():
            if event["Type"] == "Api":
                props = event["Properties"]
                found[(props["Method"].upper(), props["Path"])] = folder
    return found
