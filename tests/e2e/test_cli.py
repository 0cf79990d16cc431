"""The `batchpredict` CLI against the real local stack, over HTTP."""

from __future__ import annotations

import csv
import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from batchpredict_cli.main import EXIT_ERROR, EXIT_JOB_CANCELLED, EXIT_JOB_FAILED, EXIT_OK, main
from batchpredict_local import LocalStack
from batchpredict_local.demo_data import generate_network, write_jsonl

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

ACTORS = 120


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # pytest-xdist's workers inherit COLUMNS=80 from the controller: tables would wrap.
    for name in ("BATCHPREDICT_API_URL", "BATCHPREDICT_API_KEY", "BATCHPREDICT_DEBUG", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)


class Cli:
    def __init__(self, stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
        self.base = ["--api-url", stack.url, "--api-key", stack.api_key("demo")]
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main([*self.base, *args])
        out, err = self.capsys.readouterr()
        return code, without_function_output(out), err


def without_function_output(text: str) -> str:
    """The CLI's own stdout: the stack's functions run in this process and print their JSON logs
    and EMF metric blobs to the same stdout."""
    return "".join(
        line
        for line in text.splitlines(keepends=True)
        if not line.startswith(('{"_aws"', '{"level"'))
    )


@pytest.fixture
def cli(local_stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(local_stack, capsys)


@pytest.fixture
def actors(tmp_path: Path) -> tuple[Path, list[str]]:
    """A small demo network under ids no other test uses, as a JSONL file."""
    prefix = f"cli-{uuid.uuid4().hex[:8]}-"
    entities: list[dict[str, Any]] = generate_network(ACTORS, seed=5)
    for entity in entities:
        entity["entity_id"] = prefix + entity["entity_id"]
        for neighbour in entity["neighbours"]:
            neighbour["entity_id"] = prefix + neighbour["entity_id"]
    path = tmp_path / "actors.jsonl"
    write_jsonl(entities, path)
    return path, [e["entity_id"] for e in entities]


def test_cli_import_submit_watch_results_in_every_format(
    cli: Cli, actors: tuple[Path, list[str]], tmp_path: Path
) -> None:
    path, ids = actors

    code, out, err = cli("entities", "import", str(path))
    assert (code, out) == (EXIT_OK, f"imported {ACTORS} entities\n"), err

    code, out, err = cli("submit", "ising", "--ids-file", str(path), "--param", "temperature=2.0")
    assert code == EXIT_OK, err
    job_id = out.strip()
    assert job_id.startswith("j-")

    code, out, err = cli("status", job_id, "--watch", "--interval", "0.2")
    assert code == EXIT_OK, err
    assert out.startswith(f"{job_id} ising COMPLETED: {ACTORS}/{ACTORS} done, succeeded {ACTORS}")
    assert "100.0%" in err

    code, out, _ = cli("results", job_id, "--format", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == EXIT_OK
    assert sorted(r["entity_id"] for r in rows) == sorted(ids)
    assert all(0 <= r["prediction"]["spin_flip_probability"] <= 1 for r in rows)

    target = tmp_path / "ising.csv"
    code, out, _ = cli("results", job_id, "--format", "csv", "--output", str(target))
    assert (code, out) == (EXIT_OK, f"wrote {ACTORS} results to {target}\n")
    table = list(csv.DictReader(target.open()))
    assert len(table) == ACTORS
    assert {"entity_id", "status", "spin_flip_probability", "local_field"} <= set(table[0])

    code, out, _ = cli("results", job_id, "--limit", "5")
    assert code == EXIT_OK
    assert "spin_flip_probability" in out.splitlines()[0]
    assert sum(1 for line in out.splitlines() if ids[0][:12] in line) == 5

    code, out, _ = cli("results", job_id, "--format", "jsonl", "--status", "failed")
    assert (code, out) == (EXIT_OK, "")


def test_cli_cancel_of_finished_job_is_one_409_line(
    cli: Cli, actors: tuple[Path, list[str]]
) -> None:
    path, ids = actors
    cli("entities", "import", str(path))
    code, out, err = cli(
        "submit", "ews", "--ids", ",".join(ids[:10]), "--watch", "--interval", "0.2"
    )
    assert code == EXIT_OK, err
    job_id = out.strip()

    code, out, err = cli("cancel", job_id)

    assert code == EXIT_ERROR
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: 409 job_finished: ")
    assert job_id in lines[0]


def test_cli_submit_unknown_entities_is_one_422_line(
    cli: Cli, actors: tuple[Path, list[str]]
) -> None:
    path, ids = actors
    cli("entities", "import", str(path))

    code, out, err = cli("submit", "cascade", "--ids", f"{ids[0]},{ids[0]}-ghost")

    assert code == EXIT_ERROR
    assert out == ""
    assert err.startswith("error: 422 unknown_entities: ")
    assert "entity_ids[1]" in err
    assert len(err.strip().splitlines()) == 1


def test_cli_jobs_lists_submitted_job_and_status_shows_counts(
    cli: Cli, actors: tuple[Path, list[str]]
) -> None:
    path, ids = actors
    cli("entities", "import", str(path))
    _, out, _ = cli(
        "submit", "cascade", "--ids", ",".join(ids[:30]), "--param", "max_generations=2", "--watch"
    )
    job_id = out.strip()

    code, out, _ = cli("jobs", "--type", "cascade", "--limit", "50", "--json")
    assert code == EXIT_OK
    listed = {json.loads(line)["job_id"]: json.loads(line) for line in out.splitlines()}
    assert listed[job_id]["total_items"] == 30

    code, out, _ = cli("status", job_id, "--json")
    assert code == EXIT_OK
    counts = json.loads(out)["counts"]
    assert counts["succeeded"] + counts["failed"] + counts["cancelled"] == counts["total"] == 30


def test_cli_csv_import_then_entity_get_and_delete(cli: Cli, tmp_path: Path) -> None:
    prefix = f"cli-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "actors.csv"
    path.write_text(
        "entity_id,spin,threshold,adopted,community,neighbours,time_series\n"
        f"{prefix}-a,1,0.25,false,north,{prefix}-b:0.5;ns:{prefix}-c:-0.25;{prefix}-d,0.1;0.2;0.4\n"
        f"{prefix}-b,-1,,true,south,{prefix}-a:0.5,\n"
    )

    code, out, err = cli("entities", "import", str(path))
    assert (code, out) == (EXIT_OK, "imported 2 entities\n"), err

    code, out, _ = cli("entities", "get", f"{prefix}-a")
    stored = json.loads(out)
    assert code == EXIT_OK
    assert stored["attributes"] == {
        "spin": 1, "threshold": 0.25, "adopted": False, "community": "north",
    }  # fmt: skip
    assert stored["neighbours"] == [
        {"entity_id": f"{prefix}-b", "weight": 0.5},
        {"entity_id": f"ns:{prefix}-c", "weight": -0.25},
        {"entity_id": f"{prefix}-d", "weight": 1.0},
    ]
    assert stored["time_series"] == [0.1, 0.2, 0.4]
    _, out, _ = cli("entities", "get", f"{prefix}-b")
    assert json.loads(out)["attributes"] == {"spin": -1, "adopted": True, "community": "south"}

    code, out, _ = cli("entities", "delete", f"{prefix}-a")
    assert (code, out) == (EXIT_OK, f"deleted {prefix}-a\n")
    code, out, err = cli("entities", "get", f"{prefix}-a")
    assert (code, out) == (EXIT_ERROR, "")
    assert_one_error_line(err, "error: 404 not_found: ")


def assert_one_error_line(err: str, starts: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(starts), err
    assert "Traceback" not in err


def test_cli_submit_every_option_reaches_the_job(
    cli: Cli, actors: tuple[Path, list[str]], tmp_path: Path
) -> None:
    path, ids = actors
    cli("entities", "import", str(path))
    plain = tmp_path / "ids.txt"
    plain.write_text("# twelve actors\n" + "\n".join(ids[:12]) + "\n\n")

    code, out, err = cli(
        "submit", "ising", "--ids-file", str(plain),
        "--param", "temperature=2.5", "--params-json", '{"time_horizon": 3, "temperature": 1}',
        "--priority", "high", "--client-token", f"tok-{uuid.uuid4().hex[:8]}",
        "--metadata", "team=risk", "--no-cache", "--tolerated-failure-percent", "10",
        "--chunk-size", "5", "--json",
    )  # fmt: skip
    answer = json.loads(out)
    assert code == EXIT_OK, err
    assert (answer["status"], answer["total_items"], answer["chunk_count"]) == ("QUEUED", 12, 3)

    code, out, _ = cli("status", answer["job_id"], "--json")
    job = json.loads(out)
    assert job["parameters"] == {"temperature": 2.5, "time_horizon": 3}
    assert job["priority"] == "high"
    assert job["metadata"] == {"team": "risk"}
    assert job["use_cache"] is False
    assert job["tolerated_failure_percent"] == 10


def test_cli_submit_portfolio_runs_its_entities(
    cli: Cli, api: Any, actors: tuple[Path, list[str]]
) -> None:
    path, ids = actors
    cli("entities", "import", str(path))
    portfolio = f"pf-{uuid.uuid4().hex[:8]}"
    answer = api.put(
        f"/v1/portfolios/{portfolio}",
        json={"entity_ids": ids[:7], "predictions": [{"prediction_type": "ews"}]},
    )
    assert answer.status_code in (200, 201), answer.text

    code, out, err = cli("submit", "ews", "--portfolio", portfolio, "--watch", "--interval", "0.2")

    assert code == EXIT_OK, err
    assert f"{out.strip()} ews COMPLETED: 7/7 done, succeeded 7" in err


def test_cli_status_shows_details_of_finished_job(cli: Cli, actors: tuple[Path, list[str]]) -> None:
    path, ids = actors
    cli("entities", "import", str(path))
    _, out, _ = cli("submit", "ising", "--ids", ",".join(ids[:9]), "--watch", "--interval", "0.2")

    code, out, _ = cli("status", out.strip())

    assert code == EXIT_OK
    assert "COMPLETED" in out
    assert "100.0%  (9 of 9 items)" in out
    assert "succeeded 9  failed 0  cancelled 0" in out
    assert "pending 0" in out
    assert "finished" in out


def negative_tie_actors(ids: list[str], count: int) -> list[str]:
    """Ids of actors the threshold model refuses (a negative tie), from the seed-5 network."""
    entities = generate_network(ACTORS, seed=5)
    prefix = ids[0].removesuffix(entities[0]["entity_id"])
    refused = [
        prefix + e["entity_id"]
        for e in entities
        if any(float(n["weight"]) < 0 for n in e["neighbours"])
    ]
    assert len(refused) >= count, "the seed-5 network has too few negative ties"
    return refused[:count]


def test_cli_watch_completed_with_errors_exit_0_failed_exit_3(
    cli: Cli, actors: tuple[Path, list[str]]
) -> None:
    path, ids = actors
    cli("entities", "import", str(path))
    refused = negative_tie_actors(ids, 2)
    fine = [i for i in ids if i not in refused][:8]

    code, out, err = cli("submit", "cascade", "--ids", ",".join([*fine, *refused]), "--watch",
                         "--interval", "0.2")  # fmt: skip
    assert code == EXIT_OK, err
    assert "COMPLETED_WITH_ERRORS: 10/10 done, succeeded 8, failed 2" in err
    _, out, _ = cli("results", out.strip(), "--status", "failed")
    assert sum(1 for r in refused if r in out) == 2

    code, out, err = cli("submit", "cascade", "--ids", ",".join([*fine, *refused]),
                         "--tolerated-failure-percent", "0", "--watch", "--interval", "0.2")  # fmt: skip
    assert code == EXIT_JOB_FAILED, err
    assert f"{out.strip()} cascade FAILED" in err


def test_cli_cancel_running_job_then_watch_exit_4(cli: Cli, tmp_path: Path) -> None:
    prefix = f"cli-{uuid.uuid4().hex[:8]}-"
    entities = [
        {"entity_id": f"{prefix}{i:04d}", "time_series": [float(i % 5), 1.0, 2.0, 0.5] * 10}
        for i in range(1000)
    ]
    path = tmp_path / "series.jsonl"
    write_jsonl(entities, path)
    cli("entities", "import", str(path))
    _, out, _ = cli("submit", "ews", "--ids-file", str(path), "--chunk-size", "5", "--no-cache")
    job_id = out.strip()

    code, out, err = cli("results", job_id, "--format", "jsonl")
    assert code == EXIT_OK
    assert len(out.splitlines()) < 1000
    assert f"note: job {job_id} is " in err
    assert "items have results so far" in err

    code, out, err = cli("cancel", job_id)
    assert code == EXIT_OK, err
    assert out.startswith(f"{job_id}: CANCELL")  # CANCELLING, or CANCELLED if all accounted

    code, out, err = cli("status", job_id, "--watch", "--interval", "0.2")
    assert code == EXIT_JOB_CANCELLED, err
    assert out.startswith(f"{job_id} ews CANCELLED: 1000/1000 done")
    counts = json.loads(cli("status", job_id, "--json")[1])["counts"]
    assert counts["cancelled"] > 0
    assert counts["succeeded"] + counts["failed"] + counts["cancelled"] == 1000


def test_cli_status_unknown_job_is_one_404_line(cli: Cli) -> None:
    code, out, err = cli("status", "j-doesnotexist")

    assert (code, out) == (EXIT_ERROR, "")
    assert_one_error_line(err, "error: 404 not_found: ")
    assert "j-doesnotexist" in err


def test_cli_other_tenants_job_is_404(
    cli: Cli, local_stack: LocalStack, actors: tuple[Path, list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    path, ids = actors
    cli("entities", "import", str(path))
    _, out, _ = cli("submit", "ews", "--ids", ids[0])

    code = main(["--api-url", local_stack.url, "--api-key", local_stack.api_key("other"),
                 "results", out.strip()])  # fmt: skip

    assert code == EXIT_ERROR
    assert_one_error_line(capsys.readouterr().err, "error: 404 not_found: ")


def test_cli_jobs_table_newest_first(cli: Cli, actors: tuple[Path, list[str]]) -> None:
    path, ids = actors
    cli("entities", "import", str(path))
    submitted = [cli("submit", t, "--ids", ids[0])[1].strip() for t in ("ising", "cascade", "ews")]

    code, out, _ = cli("jobs", "--limit", "3")

    assert code == EXIT_OK
    rows = [
        [cell.strip() for cell in line.split("│")]
        for line in out.splitlines()
        if line.strip().startswith("j-")
    ]
    assert [row[:2] for row in rows] == [
        [submitted[2], "ews"], [submitted[1], "cascade"], [submitted[0], "ising"],
    ]  # fmt: skip


def test_cli_api_url_and_key_from_environment(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHPREDICT_API_URL", local_stack.url)
    monkeypatch.setenv("BATCHPREDICT_API_KEY", local_stack.api_key("demo"))

    assert main(["jobs", "--limit", "1", "--json"]) == EXIT_OK
    out = without_function_output(capsys.readouterr().out)
    assert json.loads(out.splitlines()[0])["job_id"].startswith("j-")


def test_cli_unknown_api_key_is_one_401_line(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--api-url", local_stack.url, "--api-key", "not-a-key", "jobs"])

    err = capsys.readouterr().err
    assert code == EXIT_ERROR
    # docs/API.md says 401; API Gateway itself answers 403 to a request it cannot authorise
    assert err.startswith(("error: 401 ", "error: 403 "))
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_cli_results_table_reads_from_stdout_width(
    cli: Cli, actors: tuple[Path, list[str]]
) -> None:
    path, ids = actors
    cli("entities", "import", str(path))
    _, out, _ = cli("submit", "ews", "--ids", ",".join(ids[:3]), "--watch", "--interval", "0.2")

    code, out, _ = cli("results", out.strip())

    assert code == EXIT_OK
    header = out.splitlines()[0]
    for column in ("entity", "status", "critical_distance", "autocorrelation", "quality", "cached"):
        assert column in header
    assert len(io.StringIO(out).readlines()) == 2 + 3
