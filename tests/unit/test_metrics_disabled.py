"""With metrics disabled (the local stack's default), nothing is collected across invocations."""

from __future__ import annotations

from typing import Any

import pytest

from batchpredict.observability import metrics


def test_disabled_metrics_print_nothing_however_many_invocations(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")

    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> None:
        metrics.add_metric(name="ItemsSucceeded", unit="Count", value=1)

    for _ in range(250):  # Powertools alone would print at the 100th and 200th value
        handler({}, None)
    assert capsys.readouterr().out == ""
    assert metrics.metric_set == {}
