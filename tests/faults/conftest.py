"""Fault-injection suite: the `flaky` predictor, the seeds to run, hypothesis settings.

Seeds: `--fault-seeds N` (declared in tests/conftest.py: pytest only takes options from the
root conftest) or the FAULT_SEEDS environment variable run seeds 0..N-1; the default is the CI
share. FAULT_SEED=17 (or 17,40) runs exactly those seeds.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests.faults.flaky import register_flaky
from tests.faults.plan import COUNT_FIELDS, RATE_FIELDS

CI_SEEDS = 12

register_flaky()


def fault_seed_count(config: pytest.Config) -> int:
    try:
        count = config.getoption("--fault-seeds")
    except ValueError:  # the option is not declared: fall back on the environment
        count = None
    return int(count or os.environ.get("FAULT_SEEDS") or CI_SEEDS)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "fault_seed" in metafunc.fixturenames:
        only = os.environ.get("FAULT_SEED")
        if only:
            seeds = [int(s) for s in only.split(",") if s.strip()]
        else:
            seeds = list(range(fault_seed_count(metafunc.config)))
        metafunc.parametrize("fault_seed", seeds, ids=[f"seed{s}" for s in seeds])


@pytest.fixture(scope="session")
def fault_tally() -> dict[str, Any]:
    """Which fault kinds fired across this session's seeded mixes (one process)."""
    return {"runs": 0, "fired": Counter()}


# What the seeded mixes fired, gathered from every test report (xdist sends each worker's
# reports and their user_properties to the controller, so this sees all seeds).
SESSION_TALLY: dict[str, Counter[str]] = {"runs": Counter(), "events": Counter()}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call":
        return
    for name, fired in report.user_properties:
        if name == "fault_fired" and isinstance(fired, dict):
            SESSION_TALLY["runs"]["seeds"] += 1
            SESSION_TALLY["runs"].update(fired.keys())
            SESSION_TALLY["events"].update(fired)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    runs, events = SESSION_TALLY["runs"], SESSION_TALLY["events"]
    seeds = runs.pop("seeds", 0)
    if not seeds:
        return
    terminalreporter.section("fault kinds fired")
    terminalreporter.write_line(f"{seeds} seeded runs; kind: runs in which it fired (times)")
    for kind in sorted({*RATE_FIELDS, *COUNT_FIELDS, "shuffle"}):
        terminalreporter.write_line(f"  {kind:<20} {runs[kind]:>5} ({events[kind]})")


def hypothesis_settings(config: pytest.Config) -> settings:
    """Derandomized (the same examples on every CI run); more examples with more seeds."""
    count = fault_seed_count(config)
    return settings(
        max_examples=max(4, count // 10),
        derandomize=True,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )
