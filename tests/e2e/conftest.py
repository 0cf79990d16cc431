"""Fixtures that run the local stack: on the real template.yaml, and on the toy template."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from batchpredict import aws, store
from batchpredict_local import LocalStack
from batchpredict_local.template import parse_yaml
from tests.support.limits import enforce_aws_limits

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
TOY_DIR = Path(__file__).resolve().parent / "fixtures" / "toy"
TOY_TEMPLATE = TOY_DIR / "template.yaml"


class ApiSession(requests.Session):
    """A requests session bound to a base URL and an API key: ``api.get("/v1/jobs")``."""

    def __init__(self, base_url: str, api_key: str, timeout: float = 30) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.headers["x-api-key"] = api_key

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        if isinstance(url, str) and url.startswith("/"):
            url = self.base_url + url
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    """The whole system on the real template.yaml (any free ports; schedules off)."""
    if not TEMPLATE.exists():
        pytest.skip("template.yaml does not exist yet")
    stack = LocalStack(
        TEMPLATE,
        schedules=False,
        overrides={"POWERTOOLS_LOG_LEVEL": "WARNING"},
    )
    with stack:
        # The handlers share this process: forget settings and clients that earlier tests
        # cached, and hold the clients they will now create to AWS's limits.
        store.reset()
        enforce_aws_limits(aws.client("dynamodb"))
        enforce_aws_limits(aws.client("sqs"))
        try:
            yield stack
        finally:
            store.reset()


@pytest.fixture
def api(local_stack: LocalStack) -> Iterator[ApiSession]:
    """A session on the real stack with the demo tenant's key."""
    with ApiSession(local_stack.url, local_stack.api_key("demo")) as session:
        yield session


@pytest.fixture
def other_api(local_stack: LocalStack) -> Iterator[ApiSession]:
    """A session on the real stack as the tenant "other"."""
    with ApiSession(local_stack.url, local_stack.api_key("other")) as session:
        yield session


@pytest.fixture
def make_toy_template(tmp_path: Path) -> Callable[[Callable[[dict[str, Any]], None]], Path]:
    """Copies the toy template and its functions, applies ``edit`` to the template's YAML."""

    def make(edit: Callable[[dict[str, Any]], None]) -> Path:
        destination = tmp_path / f"toy-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(TOY_DIR, destination, ignore=shutil.ignore_patterns("__pycache__"))
        template = parse_yaml(TOY_TEMPLATE.read_text())
        edit(template)
        path = destination / "template.yaml"
        path.write_text(yaml.safe_dump(template, sort_keys=False))
        return path

    return make


@pytest.fixture(scope="module")
def toy_stack() -> Iterator[LocalStack]:
    """The toy template's stack, shared by a module's tests (see ``toy``)."""
    with LocalStack(TOY_TEMPLATE, schedules=False) as stack:
        yield stack


def recorder() -> Any:
    """The toy layer's toy_recorder module (importable while a toy stack runs)."""
    import toy_recorder

    return toy_recorder


@pytest.fixture
def toy(toy_stack: LocalStack) -> Iterator[LocalStack]:
    """The shared toy stack, its recordings cleared, left idle after the test."""
    assert toy_stack.wait_idle(30), "the toy stack was still busy before the test"
    toy_stack.stats.reset()
    recorder().reset()
    yield toy_stack
    toy_stack.wait_idle(30)
