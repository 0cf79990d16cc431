"""The main job (`make demo`) at a small size, on its own real local stack."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from batchpredict_local import demo

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

REPO = Path(__file__).resolve().parents[2]
ACTORS = 300


@dataclass
class DemoRun:
    result: subprocess.CompletedProcess[str]
    out: Path
    left_behind: list[str]  # processes of the demo's session still alive after it exited


def session_processes(session_id: int) -> list[str]:
    """Command lines of the live processes in a session (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if int(fields[3]) == session_id and fields[0] != "Z":
            found.append(cmdline.strip())
    return found


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """`python -m batchpredict_local.demo --entities 300`, as `make demo` runs it.

    In its own process: the demo starts and stops a whole local stack, which must not share a
    process with the e2e session's stack (both set the functions' environment). In its own
    session too, so that any process it leaves behind (moto) can be found.
    """
    if not (REPO / "template.yaml").exists():
        pytest.skip("template.yaml does not exist yet")
    out = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "COLUMNS": "160"}
    env.pop("BATCHPREDICT_DEBUG", None)
    with subprocess.Popen(
        [sys.executable, "-m", "batchpredict_local.demo", "--entities", str(ACTORS),
         "--output-dir", str(out), "--interval", "0.2"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:  # fmt: skip
        try:
            stdout, stderr = process.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    time.sleep(0.5)  # a child that outlived the demo would still be here
    left = session_processes(process.pid) if Path("/proc").is_dir() else []
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    return DemoRun(result, out, left)


def test_demo_small_exits_0_with_exact_counts(
    demo_run: DemoRun,
) -> None:
    result = demo_run.result

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "every job completed with exact counts" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert "local stack stopped" in result.stdout


def test_demo_leaves_no_process_behind(demo_run: DemoRun) -> None:
    assert demo_run.result.returncode == 0
    assert demo_run.left_behind == []


def test_demo_functions_output_goes_to_log_not_console(demo_run: DemoRun) -> None:
    # Powertools' JSON logs and EMF blobs from the in-process functions
    assert '{"_aws"' not in demo_run.result.stdout
    assert (demo_run.out / "functions.log").is_file()


def test_demo_writes_jsonl_and_csv_per_type(
    demo_run: DemoRun,
) -> None:
    out = demo_run.out
    expected = {"ising": ACTORS, "cascade": ACTORS // 2, "ews": ACTORS}
    main_field = {
        "ising": "spin_flip_probability",
        "cascade": "adoption_generation",
        "ews": "critical_distance",
    }

    for prediction_type, count in expected.items():
        rows = [
            json.loads(line) for line in (out / f"{prediction_type}.jsonl").read_text().splitlines()
        ]
        assert len(rows) == count
        assert len({r["entity_id"] for r in rows}) == count
        assert all(r["status"] == "succeeded" for r in rows)
        assert all(main_field[prediction_type] in r["prediction"] for r in rows)
        with (out / f"{prediction_type}.csv").open() as handle:
            table = list(csv.DictReader(handle))
        assert len(table) == count
        assert main_field[prediction_type] in table[0]


def test_demo_resubmission_fully_cached(
    demo_run: DemoRun,
) -> None:
    result = demo_run.result

    assert f"{ACTORS:,} of {ACTORS:,} items from the cache (100%)" in result.stdout


def test_demo_ews_ranks_near_transition_actors_first(
    demo_run: DemoRun,
) -> None:
    out = demo_run.out
    rows = [json.loads(line) for line in (out / "ews.jsonl").read_text().splitlines()]
    near = {
        e["entity_id"]
        for e in demo.generate_network(ACTORS, 42)
        if e["attributes"]["near_transition"]
    }
    ranked = sorted(rows, key=lambda r: r["prediction"]["critical_distance"])

    hits = sum(1 for r in ranked[: len(near)] if r["entity_id"] in near)
    assert hits >= 0.6 * len(near)  # chance would give about 10%


def test_demo_bad_template_is_one_error_line_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = demo.main(["--template", str(tmp_path / "missing.yaml"), "--entities", "10",
                      "--output-dir", str(tmp_path)])  # fmt: skip

    out = capsys.readouterr().out
    assert code == 1
    assert "error:" in out
    assert "Traceback" not in out
    assert not list(tmp_path.glob("*.jsonl"))
