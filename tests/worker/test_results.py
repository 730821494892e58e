"""results.py against real run_results.json files written by dbt (see tests/worker/run_results/README.md)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import orjson
import pytest

from manifest_dag.core.errors import DbtRunError
from manifest_dag.worker.results import (
    NodeResult,
    RunSummary,
    parse_freshness_results,
    parse_run_results,
    read_freshness_results,
    read_run_results,
)

HERE = Path(__file__).resolve().parent / "run_results"
JAFFLE_RESULTS = (
    Path(__file__).resolve().parents[3] / "shared" / "manifests" / "jaffle_shop_duckdb" / "run_results.json"
)


def test_no_airflow_or_dbt_import() -> None:
    import subprocess

    code = (
        "import sys, manifest_dag.worker.results; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('airflow', 'dbt')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.skipif(not JAFFLE_RESULTS.is_file(), reason="../shared/manifests is missing")
def test_real_successful_build() -> None:
    summary = read_run_results(JAFFLE_RESULTS)
    assert summary.command == "build"
    assert summary.success
    assert summary.dbt_version == "1.12.0"
    assert summary.elapsed == pytest.approx(4.78485631942749)
    assert len(summary.results) == 28
    assert len(summary.passed) == 28
    assert not (summary.errors or summary.failures or summary.warnings or summary.skipped)
    assert summary.failure_message() == ""
    seed = next(r for r in summary.results if r.unique_id == "seed.jaffle_shop.raw_orders")
    assert seed.status == "success" and seed.message == "INSERT 99"
    assert seed.adapter_response["rows_affected"] == 99
    assert seed.failures is None
    lines = summary.log_lines()
    assert lines == ["dbt build: 28 nodes in 4.78s; PASS=28 WARN=0 ERROR=0 FAIL=0 SKIP=0 NO-OP=0 TOTAL=28"]
    raw = orjson.loads(JAFFLE_RESULTS.read_bytes())
    assert summary.node_seconds == pytest.approx(sum(r["execution_time"] for r in raw["results"]))
    # dbt ran these 28 nodes on several threads: their sum exceeds the run's wall time
    assert summary.node_seconds > summary.elapsed


def test_build_with_failing_test_warning_and_skips() -> None:
    summary = read_run_results(HERE / "build_fail_warn_skip.json")
    assert summary.command == "build"
    assert not summary.success
    assert [r.unique_id for r in summary.failures] == ["test.rr.assert_no_negative_amounts"]
    assert summary.failures[0].failures == 1
    assert [r.unique_id for r in summary.warnings] == [
        "test.rr.accepted_values_stg_payments_amount__False__10__7.3f0be05df6"
    ]
    assert [r.unique_id for r in summary.skipped] == [
        "model.rr.broken",
        "test.rr.not_null_broken_id.259308ea2b",
        "model.rr.downstream",
    ]
    assert len(summary.passed) == 4
    assert summary.counts() == {"PASS": 4, "WARN": 1, "ERROR": 0, "FAIL": 1, "SKIP": 3, "NO-OP": 0, "TOTAL": 9}

    message = summary.failure_message()
    lines = message.splitlines()
    assert lines[0].startswith("dbt build failed")
    assert "test.rr.assert_no_negative_amounts [FAIL]: Got 1 result, configured to fail if != 0" in lines[1]
    # skips are named too, as dbt counts them as failures of the invocation
    assert any("model.rr.downstream [SKIPPED]" in ln and "upstream" in ln for ln in lines)
    # a warning does not fail the run, so it is not in the failure message...
    assert "accepted_values" not in message
    # ...but the log shows it with dbt's message
    log = summary.log_lines()
    assert log[0] == "dbt build: 9 nodes in 1.78s; PASS=4 WARN=1 ERROR=0 FAIL=1 SKIP=3 NO-OP=0 TOTAL=9"
    assert (
        "warning: test.rr.accepted_values_stg_payments_amount__False__10__7.3f0be05df6 [WARN]: "
        "Got 1 result, configured to warn if != 0"
    ) in log
    assert "skipped: model.rr.broken [SKIPPED]" in log


def test_run_with_sql_error() -> None:
    summary = read_run_results(HERE / "run_error_skip.json")
    assert summary.command == "run"
    assert not summary.success
    [error] = summary.errors
    assert error.unique_id == "model.rr.broken"
    assert error.message is not None and "\n" in error.message  # dbt's message spans lines
    message = summary.failure_message()
    broken_lines = [ln for ln in message.splitlines() if "model.rr.broken" in ln]
    assert len(broken_lines) == 1, "one line per failing node"
    assert "Runtime Error in model broken (models/broken.sql)" in broken_lines[0]
    assert 'Referenced column "no_such_column" not found' in broken_lines[0]
    assert "^^^" not in message
    assert any("model.rr.downstream [SKIPPED]" in ln for ln in message.splitlines())
    assert any(ln.startswith("error: model.rr.broken [ERROR]: Runtime Error") for ln in summary.log_lines())


def test_warnings_alone_are_a_success() -> None:
    summary = read_run_results(HERE / "test_warn.json")
    assert summary.command == "test"
    assert summary.success
    assert summary.failure_message() == ""
    assert len(summary.warnings) == 1 and len(summary.passed) == 2
    assert any(ln.startswith("warning: test.rr.accepted_values") for ln in summary.log_lines())


def test_warned_nodes_as_plain_data() -> None:
    summary = read_run_results(HERE / "build_fail_warn_skip.json")
    assert summary.warned() == [
        {
            "unique_id": "test.rr.accepted_values_stg_payments_amount__False__10__7.3f0be05df6",
            "message": "Got 1 result, configured to warn if != 0",
            "failures": 1,
        }
    ]
    assert read_run_results(HERE / "run_error_skip.json").warned() == []
    masked = summary.masked(lambda text: text.replace("warn", "***"))
    assert masked.warned()[0]["message"] == "Got 1 result, configured to *** if != 0"


def test_source_freshness_results_name_the_stale_sources() -> None:
    """dbt 1.11's sources.json: one fresh source, one past warn_after, one past error_after (the
    fourth source, whose table is missing, is left out of the file by dbt)."""
    summary = read_freshness_results(HERE / "freshness_pass_warn_error.json")
    assert summary.command == "source freshness" and summary.dbt_version == "1.11.16"
    assert not summary.success  # past error_after: dbt exits 1
    assert summary.counts() == {"PASS": 1, "WARN": 1, "ERROR": 1, "FAIL": 0, "SKIP": 0, "NO-OP": 0, "TOTAL": 3}
    [warned] = summary.warned()
    assert warned["unique_id"] == "source.warnproj.raw.stale_warn" and warned["failures"] is None
    assert re.fullmatch(
        r"newest row loaded \d+ s ago \(max_loaded_at 2020-01-02T00:00:00\+00:00\); warn after 1 day", warned["message"]
    ), warned
    assert "source.warnproj.raw.stale_error [ERROR]: newest row loaded" in summary.failure_message()
    assert "error after 2 day" in summary.failure_message()
    assert [r.message for r in summary.passed] == [None]
    assert any(line.startswith("warning: source.warnproj.raw.stale_warn [WARN]") for line in summary.log_lines())


def test_freshness_runtime_error_and_warnings_alone() -> None:
    data = orjson.loads((HERE / "freshness_pass_warn_error.json").read_bytes())
    data["results"] = [r for r in data["results"] if r["status"] != "error"] + [
        {"unique_id": "source.p.raw.gone", "status": "runtime error", "error": "Catalog Error: no such table"}
    ]
    summary = parse_freshness_results(data, "t/sources.json")
    assert "source.p.raw.gone [RUNTIME ERROR]: Catalog Error: no such table" in summary.failure_message()
    data["results"] = data["results"][:-1]
    assert parse_freshness_results(data).success  # warnings alone are no failure
    with pytest.raises(DbtRunError, match="has no 'results' list; is this dbt's sources.json"):
        parse_freshness_results({"metadata": {}}, "t/sources.json")


def _synthetic(results: list[dict]) -> dict:
    """The real file's shape with other results: for statuses a DuckDB run cannot easily produce."""
    data = orjson.loads((HERE / "test_warn.json").read_bytes())
    template = data["results"][0]
    data["results"] = [{**template, **r} for r in results]
    return data


def test_partial_success_runtime_error_and_skipped_exposure() -> None:
    data = _synthetic(
        [
            {"unique_id": "model.p.batched", "status": "partial success", "message": "2 of 3 batches failed"},
            {"unique_id": "source.p.raw.orders", "status": "runtime error", "message": "Could not connect"},
            {"unique_id": "model.p.nothing", "status": "no-op", "message": None},
        ]
    )
    summary = parse_run_results(data, "x/run_results.json")
    assert not summary.success
    assert [r.unique_id for r in summary.partial_successes] == ["model.p.batched"]
    assert [r.unique_id for r in summary.errors] == ["source.p.raw.orders"]
    assert len(summary.no_ops) == 1
    message = summary.failure_message()
    assert "model.p.batched [PARTIAL SUCCESS]: 2 of 3 batches failed" in message
    assert "source.p.raw.orders [RUNTIME ERROR]: Could not connect" in message

    exposure_only = parse_run_results(
        _synthetic([{"unique_id": "exposure.p.dash", "status": "skipped", "message": None}])
    )
    assert exposure_only.success, "dbt does not fail a run over a skipped exposure"


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "target" / "run_results.json"
    with pytest.raises(DbtRunError, match=str(missing)):
        read_run_results(missing)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[]", "no 'results' list"),
        (b'{"results": [{"status": "pass"}]}', r"results\[0\] has no unique_id"),
        (b'{"results": [3]}', r"results\[0\] is not an object"),
    ],
)
def test_invalid_file_names_the_path(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "run_results.json"
    path.write_bytes(content)
    with pytest.raises(DbtRunError, match=match) as info:
        read_run_results(path)
    assert str(path) in str(info.value)


def test_objects_are_frozen_and_slotted() -> None:
    summary = read_run_results(HERE / "test_warn.json")
    assert isinstance(summary, RunSummary) and isinstance(summary.results[0], NodeResult)
    with pytest.raises(AttributeError):
        summary.success = False  # type: ignore[misc]
    assert not hasattr(summary, "__dict__") and not hasattr(summary.results[0], "__dict__")
