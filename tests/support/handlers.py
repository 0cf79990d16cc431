"""Load each function's handler by file path (every Lambda's module is called `app`)."""

from __future__ import annotations

import importlib.util
import uuid
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@cache
def load(function: str) -> ModuleType:
    path = ROOT / "functions" / function / "app.py"
    spec = importlib.util.spec_from_file_location(f"functions_{function}_app", path)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class FakeContext:
    """The parts of Lambda's context object that handlers and Powertools read."""

    function_name: str = "test-function"
    memory_limit_in_mb: int = 512
    remaining_ms: int = 120_000
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def invoke(function: str, event: dict[str, Any], context: FakeContext | None = None) -> Any:
    return load(function).lambda_handler(event, context or FakeContext(function_name=function))
