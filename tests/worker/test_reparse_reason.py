"""The partial-parse miss message names what differs from the msgpack (issue 23 item 6).

dbt says only "config vars, config profile, or config target have changed" or "profile has
changed"; the msgpack records dbt's hashes of them. The vars hash is reproduced exactly from real
msgpacks of dbt 1.4-1.11, so the message can name which of this task's ``--vars``, ``--profile`` and
``--target`` the ``dbt parse`` that wrote it did not have.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from manifest_dag.core.specs import DbtInvocation, VenvSpec
from manifest_dag.worker import run as run_module
from manifest_dag.worker.partial_parse import (
    ParseState,
    PlacedMsgpack,
    dbt_vars_checksum,
    explain_reparse,
    msgpack_dbt_version,
    msgpack_state_check,
)
from manifest_dag.worker.run import run_dbt
from tests.conftest import SHARED
from tests.worker.test_run import FakeCache, FakeDbt, _node

VERSIONS = SHARED / "versions"
MSGPACK_1_11 = VERSIONS / "partial_parse_dbt-1.11.16.msgpack"  # `dbt parse` with no --vars, --profile, --target
VARS_MISS = "Unable to do partial parsing because config vars, config profile, or config target have changed"


def state(vars_json: str = "", version: str = "1.11.16") -> ParseState:
    return ParseState(dbt_version=version, profile_name="jaffle_shop", target_name="dev", vars_json=vars_json)


@pytest.mark.parametrize("version", ["1.5.12", "1.6.19", "1.7.20", "1.8.10", "1.9.11", "1.10.23", "1.11.16"])
def test_the_vars_hash_is_dbts_own(version: str) -> None:
    path = VERSIONS / f"partial_parse_dbt-{version}.msgpack"
    recorded = msgpack_state_check(path)["vars_hash"]["checksum"]  # type: ignore[index]
    assert msgpack_dbt_version(path) == version
    assert dbt_vars_checksum(None, None, None, version) == recorded
    assert dbt_vars_checksum('{"day":"x"}', None, None, version) != recorded


@pytest.mark.parametrize(
    ("vars_json", "flags", "named"),
    [
        ('{"day":"2024-01-01"}', [], ["no --vars (this task passes dbt_vars: ParseState.vars_json)"]),
        ("", ["--target", "prod"], ["no --target (this task passes --target prod: ParseState.target_name)"]),
        (
            '{"day":"x"}',
            ["--profile", "other", "--target", "prod"],
            [
                "no --vars (this task passes dbt_vars: ParseState.vars_json)",
                "no --profile (this task passes --profile other: ParseState.profile_name)",
                "no --target (this task passes --target prod: ParseState.target_name)",
            ],
        ),
    ],
)
def test_a_vars_miss_names_the_fields_the_parse_did_not_have(
    vars_json: str, flags: list[str], named: list[str]
) -> None:
    placed = PlacedMsgpack("/deploy/target/partial_parse.msgpack", MSGPACK_1_11, kept=False)
    text = explain_reparse(VARS_MISS, state=state(vars_json), placed=placed, profile_args=flags)
    assert (
        text
        == f"the msgpack from {placed.label} was written with {', '.join(named)}; run the `dbt parse` that writes it with the same"
    )


def test_a_vars_miss_it_cannot_explain_says_what_dbt_compares() -> None:
    placed = PlacedMsgpack("x", MSGPACK_1_11, kept=False)
    # same absence of vars and flags as the parse, yet a miss: another version's hash, say
    text = explain_reparse(VARS_MISS, state=state('{"a":1}', version="9.9.9"), placed=placed)
    assert (
        text
        == "the msgpack from x differs in --vars, --profile and --target: keep it the same as when the msgpack was written"
    )


def test_a_profile_miss_names_the_targets_fields_but_never_a_secret_one() -> None:
    placed = PlacedMsgpack("/deploy/partial_parse.msgpack", MSGPACK_1_11, kept=False)
    fields = {"type": "duckdb", "path": "/data/prod.duckdb", "password": "hunter2", "threads": 4}
    text = explain_reparse(
        "Unable to do partial parsing because profile has changed", state=state(), placed=placed, target_fields=fields
    )
    assert "dbt hashes the target's resolved fields (path, threads, type), such as a DuckDB path" in text
    assert "password" not in text and "hunter2" not in text and "/data/prod.duckdb" not in text


def test_a_miss_on_a_copy_kept_for_the_same_state_says_so() -> None:
    placed = PlacedMsgpack("this worker's newest good copy", MSGPACK_1_11, kept=True)
    text = explain_reparse("Unable to do partial parsing because profile has changed", state=state(), placed=placed)
    assert text.startswith("the msgpack from this worker's newest good copy was kept for the same parse state")
    assert "the target's connection fields (ParseState.connection)" in text


def test_run_dbt_logs_which_field_the_given_msgpack_lacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A task with dbt_vars, given the msgpack of a `dbt parse` without them: dbt's miss line is
    followed by the field (a fake dbt prints dbt 1.11's line; the msgpack is a real one)."""
    monkeypatch.setattr(run_module, "venv_dbt_version", lambda venv: "1.11.16")
    project = tmp_path / "jaffle"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text("name: jaffle_shop\nprofile: jaffle_shop\n")
    given = tmp_path / "deploy" / "partial_parse.msgpack"
    given.parent.mkdir()
    shutil.copy(MSGPACK_1_11, given)
    logged: list[str] = []
    dbt = FakeDbt([_node("model.jaffle_shop.orders")], lines=[f"12:00:00  {VARS_MISS}"])
    inv = DbtInvocation(
        command_args=("run", "--select", "orders"),
        project_dir=project,
        venv_spec=VenvSpec(requirements=("dbt-core",)),
        cache_dir=tmp_path / "cache",
        dbt_vars={"day": "2024-01-01"},
        partial_parse_path=given,
    )
    run_dbt(inv, log=logged.append, invoker=dbt, venv_cache=FakeCache(tmp_path / "cache"))  # type: ignore[arg-type]
    assert any(line.startswith(f"partial parse: reusing {given}") for line in logged), logged
    (miss,) = [line for line in logged if line.startswith("partial parse was not reused")]
    assert miss == (
        f"partial parse was not reused: {VARS_MISS} — the msgpack from {given} was written with no --vars "
        "(this task passes dbt_vars: ParseState.vars_json); run the `dbt parse` that writes it with the same"
    )
