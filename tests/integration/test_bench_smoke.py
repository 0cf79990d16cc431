"""A fast smoke run of the benchmark code (bench/): tiny sizes, counted outcomes, no timings."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import __main__ as cli
from bench import awscount, data, part_cost, part_predictors
from bench.common import PartResult, TreeRss, percentile, template_settings


def test_bench_cost_tiny_jobs_counted_and_cached_resubmission_hits_everything() -> None:
    chunked, cached, naive = part_cost.measure(30)

    for run in (chunked, cached, naive):
        assert run.counts["succeeded"] == 30, run.counts
    assert cached.counts["cached"] == 30
    assert cached.predictor_calls == 0
    assert chunked.predictor_calls > 0
    # one message per item costs more requests and write units than chunks do
    assert naive.requests > chunked.requests
    assert naive.functions.total_wru > chunked.functions.total_wru
    assert chunked.functions.calls[("dynamodb", "TransactWriteItems")] >= 1
    assert chunked.per_million() > chunked.per_million(cache_writes=False) > 0


def test_bench_predictors_per_item_cost_measured_for_every_chunk_size() -> None:
    everything = part_predictors.entities(120)
    for chunk_size in part_predictors.CHUNK_SIZES:
        assert part_predictors.per_item_seconds("ising", chunk_size, everything, 100, 1) > 0


def test_bench_data_same_seed_same_entities_and_symmetric_ring() -> None:
    first = next(data.pages(50))
    assert first == next(data.pages(50))
    assert len(first) == 50
    ids = {e["entity_id"] for e in first}
    assert all(n["entity_id"] in ids for e in first for n in e["neighbours"])


def test_bench_awscount_item_size_and_units_follow_dynamodb_rules() -> None:
    item = {"pk": {"S": "abc"}, "n": {"N": "12345"}}
    assert awscount.item_size(item) == len("pk") + 3 + len("n") + 4
    assert awscount.write_units(1024) == 1
    assert awscount.write_units(1025) == 2
    assert awscount.read_units(5000, consistent=False) == 1.0


def test_bench_template_settings_read_from_template() -> None:
    settings = template_settings()
    assert settings.batch_size >= 1
    assert 1 <= settings.chunk_size <= 100
    assert settings.concurrency <= settings.reserved_concurrency


def test_bench_report_renders_every_row_and_error(tmp_path: Path) -> None:
    ok = PartResult("cost", "Cost")
    ok.row("AWS requests per item", "0.05", "<= 0.1", True)
    ok.row("informative", "42")
    failed = PartResult("scale", "Scale", error="RuntimeError: boom")
    text = cli.table([ok, failed])
    assert "AWS requests per item" in text
    assert "FAILED" in text
    markdown = cli.markdown([ok, failed], quick=True, seconds=1.0, before={"load": "0 0 0"})
    assert "| cost | AWS requests per item | 0.05 | <= 0.1 | met |" in markdown
    assert "RuntimeError: boom" in markdown
    assert "https://aws.amazon.com/dynamodb/pricing" in markdown


def test_bench_cli_unknown_part_rejected() -> None:
    with pytest.raises(SystemExit):
        cli.parse_args(["--only", "nonsense"])
    assert cli.parse_args(["--only", "cost,scale"]).parts == ["cost", "scale"]


def test_bench_tree_rss_samples_this_process() -> None:
    with TreeRss(interval=0.01) as rss:
        pass
    assert rss.peak_kb > 0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
