"""A fresh moto account per hypothesis example.

Hypothesis runs many examples inside one test call, so the function-scoped `aws_env` fixture
would be shared by all of them. `fresh_aws()` runs that same fixture function (from
tests/conftest.py, not a copy of it, with the fixture it depends on) once per example, with
its own MonkeyPatch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests import conftest


def _fixture_function(fixture: Any) -> Callable[..., Iterator[dict[str, Any]]]:
    """The undecorated function behind a pytest fixture (its location moved across versions)."""
    for unwrap in (
        lambda f: f._get_wrapped_function(),  # pytest >= 8.4
        lambda f: f.__pytest_wrapped__.obj,  # pytest < 8.4
        lambda f: f.__wrapped__,
    ):
        try:
            function = unwrap(fixture)
        except AttributeError:
            continue
        return function
    raise RuntimeError("cannot find the function behind the aws_env fixture")


@contextmanager
def fresh_aws() -> Iterator[tuple[dict[str, Any], pytest.MonkeyPatch]]:
    """What `aws_env` gives a test, plus the MonkeyPatch that set it up."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        _fixture_function(conftest.plain_moto_env)(monkeypatch)
        steps = _fixture_function(conftest.aws_env)(None, monkeypatch)
        env = next(steps)
        try:
            yield env, monkeypatch
        finally:
            next(steps, None)  # the fixture's teardown
