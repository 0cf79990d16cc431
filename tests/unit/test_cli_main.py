"""`batchpredict` without a server: argument parsing, file errors, error lines, exit codes.

The commands against the real API are in tests/e2e/test_cli.py.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from batchpredict_cli import main as cli
from batchpredict_cli.main import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_JOB_CANCELLED,
    EXIT_JOB_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    LOCAL_API_KEY,
    CliError,
    build_parser,
    exit_code_for,
    main,
    parse_pairs,
    resolve_api_key,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BATCHPREDICT_API_URL", "BATCHPREDICT_API_KEY", "BATCHPREDICT_DEBUG", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Any:
    """main() against a port nothing listens on: a test that reached the network would fail
    with 'cannot reach', not with the error it expects."""
    url = f"http://127.0.0.1:{free_port()}"

    def call(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["--api-url", url, *args])
        out, err = capsys.readouterr()
        return code, out, err

    return call


def assert_one_error_line(err: str, starts: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(starts), err
    assert "Traceback" not in err


# ---------------------------------------------------------------- parsing


def test_submit_needs_exactly_one_source(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["submit", "ising", "--ids", "a", "--portfolio", "p"])

    assert caught.value.code == EXIT_USAGE
    assert "not allowed with argument" in capsys.readouterr().err


def test_submit_without_source_is_usage_error() -> None:
    with pytest.raises(SystemExit) as caught:
        main(["submit", "ising"])

    assert caught.value.code == EXIT_USAGE


@pytest.mark.parametrize("limit", ["0", "-3", "many"])
def test_results_limit_must_be_positive_integer(limit: str) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["results", "j-1", "--limit", limit])

    assert caught.value.code == EXIT_USAGE


def test_global_options_accepted_before_and_after_command() -> None:
    parser = build_parser()

    before = parser.parse_args(["--api-url", "http://h:1", "--timeout", "5", "jobs"])
    after = parser.parse_args(["jobs", "--api-url", "http://h:1", "--api-key", "k"])

    assert (before.api_url, before.timeout, before.api_key) == ("http://h:1", 5.0, None)
    assert (after.api_url, after.api_key, after.timeout) == ("http://h:1", "k", 30.0)


def test_parse_pairs_reads_json_values_when_they_parse() -> None:
    pairs = parse_pairs(
        ["temperature=2.5", "label=hot", "flag=true", 'd={"a": 1}', "eq=a=b"],
        "--param",
        json_values=True,
    )

    assert pairs == {"temperature": 2.5, "label": "hot", "flag": True, "d": {"a": 1}, "eq": "a=b"}


def test_parse_pairs_metadata_values_stay_strings() -> None:
    assert parse_pairs(["run=7"], "--metadata", json_values=False) == {"run": "7"}


@pytest.mark.parametrize("pair", ["temperature", "=2", " =2"])
def test_parse_pairs_without_key_raises(pair: str) -> None:
    with pytest.raises(CliError, match="--param takes KEY=VALUE"):
        parse_pairs([pair], "--param", json_values=True)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("COMPLETED", EXIT_OK),
        ("COMPLETED_WITH_ERRORS", EXIT_OK),
        ("FAILED", EXIT_JOB_FAILED),
        ("CANCELLED", EXIT_JOB_CANCELLED),
    ],
)
def test_exit_code_for_final_status(status: str, code: int) -> None:
    assert exit_code_for(status) == code


@pytest.mark.parametrize(
    ("url", "explicit", "env", "expected"),
    [
        ("http://127.0.0.1:8080", None, None, LOCAL_API_KEY),
        ("http://localhost:9000", None, None, LOCAL_API_KEY),
        ("http://127.0.0.1:8080", "k1", "k2", "k1"),
        ("http://127.0.0.1:8080", None, "k2", "k2"),
        ("https://abc.execute-api.us-east-1.amazonaws.com/dev", None, None, None),
        ("https://abc.execute-api.us-east-1.amazonaws.com/dev", None, "k2", "k2"),
    ],
)
def test_resolve_api_key_local_default_else_sigv4(
    monkeypatch: pytest.MonkeyPatch, url: str, explicit: str | None, env: str | None,
    expected: str | None,
) -> None:  # fmt: skip
    if env:
        monkeypatch.setenv("BATCHPREDICT_API_KEY", env)

    assert resolve_api_key(url, explicit) == expected


# ---------------------------------------------------------------- one error line


def test_submit_bad_param_is_one_error_line(run: Any) -> None:
    code, _, err = run("submit", "ising", "--ids", "a", "--param", "temperature")

    assert code == EXIT_ERROR
    assert_one_error_line(err, "error: --param takes KEY=VALUE, not 'temperature'")


@pytest.mark.parametrize(
    ("value", "message"),
    [("{oops", "error: --params-json is not JSON"), ("[1, 2]", "error: --params-json must be")],
)
def test_submit_bad_params_json_is_one_error_line(run: Any, value: str, message: str) -> None:
    code, _, err = run("submit", "ising", "--ids", "a", "--params-json", value)

    assert code == EXIT_ERROR
    assert_one_error_line(err, message)


def test_submit_empty_ids_is_one_error_line(run: Any) -> None:
    code, _, err = run("submit", "ising", "--ids", " , ,")

    assert code == EXIT_ERROR
    assert_one_error_line(err, "error: --ids names no entity ids")


def test_submit_ids_file_without_ids_is_one_error_line(run: Any, tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("# nothing here\n\n")

    code, _, err = run("submit", "ising", "--ids-file", str(path))

    assert code == EXIT_ERROR
    assert_one_error_line(err, f"error: {path}: no entity ids in the file")


def test_entities_import_bad_jsonl_line_is_one_error_line(run: Any, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"entity_id": "a-1"}\n{"entity_id": \n')

    code, _, err = run("entities", "import", str(path))

    assert code == EXIT_ERROR
    assert_one_error_line(err, f"error: {path} line 2: not JSON")


def test_entities_import_missing_file_is_one_error_line(run: Any, tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"

    code, _, err = run("entities", "import", str(path))

    assert code == EXIT_ERROR
    assert err == f"error: {path}: No such file or directory\n"


def test_entities_import_csv_bad_series_names_line(run: Any, tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("entity_id,time_series\na-1,1;2\na-2,1;x;3\n")

    code, _, err = run("entities", "import", str(path))

    assert code == EXIT_ERROR
    assert_one_error_line(err, f"error: {path} line 3: time_series[1] is 'x'")


def test_entities_import_csv_without_id_column_is_one_error_line(run: Any, tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id,spin\na-1,1\n")

    code, _, err = run("entities", "import", str(path))

    assert code == EXIT_ERROR
    assert_one_error_line(err, f"error: {path} line 1: the header has no 'entity_id' column")


def test_results_unwritable_output_is_one_error_line(
    run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli.Client, "get_job", lambda self, job_id: {"status": "COMPLETED"})
    monkeypatch.setattr(cli.Client, "iter_results", lambda self, *a, **k: iter(()))
    target = tmp_path / "missing-dir" / "out.csv"

    code, _, err = run("results", "j-1", "--format", "csv", "--output", str(target))

    assert code == EXIT_ERROR
    assert_one_error_line(err, f"error: cannot write {target}: No such file or directory")


def test_connection_refused_local_says_start_the_stack(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    code = main(["--api-url", url, "--timeout", "2", "jobs"])

    assert code == EXIT_ERROR
    assert capsys.readouterr().err == (
        f"error: cannot reach {url}: is the local stack running? (make serve)\n"
    )


def test_remote_url_without_credentials_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        monkeypatch.delenv(name, raising=False)

    code = main(["--api-url", "https://abc.execute-api.eu-west-1.amazonaws.com/dev", "jobs"])

    assert code == EXIT_ERROR
    assert_one_error_line(capsys.readouterr().err, "error: no AWS credentials to sign requests")


def test_unknown_aws_profile_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")

    code = main(["--api-url", "https://abc.execute-api.eu-west-1.amazonaws.com/dev", "jobs"])

    assert code == EXIT_ERROR
    assert_one_error_line(
        capsys.readouterr().err,
        "error: cannot load AWS credentials: The config profile (no-such-profile) could not be found",
    )


def test_unexpected_exception_is_one_line(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli.Client, "get_job", boom)

    code, _, err = run("status", "j-1")

    assert code == EXIT_ERROR
    assert_one_error_line(err, "error: unexpected RuntimeError: boom")
    assert "BATCHPREDICT_DEBUG=1" in err


def test_unexpected_exception_with_debug_raises(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHPREDICT_DEBUG", "1")
    monkeypatch.setattr(cli.Client, "get_job", lambda *a, **k: 1 / 0)

    with pytest.raises(ZeroDivisionError):
        run("status", "j-1")


def test_status_watch_ctrl_c_exit_130_says_job_keeps_running(
    run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "watch_jobs", interrupted)

    code, _, err = run("status", "j-1", "--watch")

    assert code == EXIT_INTERRUPTED
    assert "job j-1 keeps running" in err
    assert "Traceback" not in err


# ---------------------------------------------------------------- demo-data (no API)


def test_demo_data_writes_jsonl_network(run: Any, tmp_path: Path) -> None:
    target = tmp_path / "actors.jsonl"

    code, out, _ = run("demo-data", "--entities", "120", "--seed", "3", "--output", str(target))

    assert code == EXIT_OK
    assert out == f"wrote 120 entities to {target}\n"
    lines = target.read_text().splitlines()
    assert len(lines) == 120
    assert json.loads(lines[0])["entity_id"] == "actor-00001"


def test_demo_data_same_seed_same_bytes(run: Any, tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"

    run("demo-data", "--entities", "80", "--seed", "9", "--output", str(first))
    run("demo-data", "--entities", "80", "--seed", "9", "--output", str(second))

    assert first.read_bytes() == second.read_bytes()
