"""Secret dbt vars with real dbt (issue 19 item 9), cold and warm: dbt gets the value, nothing shows it.

The real operator runs a tiny DuckDB project whose model reads ``var("api_key")``: its compiled
SQL holds the value's md5 (computed by dbt's ``local_md5``), so dbt provably rendered the secret
while the SQL holds no copy of it. Then the places a secret in ``dbt_vars`` used to reach are
searched: dbt's command line as ``/proc/<pid>/cmdline`` shows it while dbt runs (the cold child;
the warm server's), the task log, Airflow's rendered fields, the XCom value, ``run_results.json``
and ``manifest.json``, and the error of a model whose failure quotes the value.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from manifest_dag import DbtRunError, ProfileConfig, VenvConfig
from manifest_dag import SecretVar
from manifest_dag.operators import DbtRunOperator
from manifest_dag.worker import processes
from tests.support.airflow_run import E2E_VENV_CACHE, VENV_REQUIREMENTS
from tests.support.secret_scan import scan_text

pytestmark = pytest.mark.e2e

SECRET = "sk-live-7Hq2Zx9Wv4"


def _project(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "dbt_project.yml").write_text(
        "name: secretvars\nversion: '1.0'\nconfig-version: 2\nprofile: secretvars\nmodel-paths: [models]\n"
    )
    (root / "profiles.yml").write_text(
        "secretvars:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        "      path: \"{{ env_var('SECRET_VARS_DB') }}\"\n      threads: 1\n"
    )
    models = root / "models"
    models.mkdir()
    (models / "key_check.sql").write_text(
        "select '{{ local_md5(var(\"api_key\")) }}' as key_md5, {{ var('api_key') | length }} as key_len,"
        " '{{ var(\"day\") }}' as day\n"
    )
    # DuckDB's conversion error quotes the string: dbt's message then holds the secret
    (models / "key_fail.sql").write_text(
        "{{ config(materialized='table') }}\nselect cast('{{ var(\"api_key\") }}' as integer) as n\n"
    )
    return root


class _TaskLog:
    """Stands in for the operator's structlog logger: keeps every line the task logs."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str, *args: Any) -> None:
        self.lines.append(msg % args if args else msg)

    warning = error = debug = exception = info


def _operator(project: Path, db: Path, select: str, warm: int, artifacts: dict[str, str]) -> DbtRunOperator:
    def keep(target: Path, context: Any) -> None:
        for path in target.rglob("*"):
            if path.is_file() and path.name != "partial_parse.msgpack":  # see the docs: env var values, 0600
                artifacts[str(path.relative_to(target))] = path.read_text(errors="replace")

    op = DbtRunOperator(
        task_id=f"{select}_{warm}",
        project_dir=str(project),
        select=[select],
        venv_config=VenvConfig(py_requirements=VENV_REQUIREMENTS, cache_dir=E2E_VENV_CACHE, warm_processes=warm),
        profile_config=ProfileConfig(profile_name="secretvars", profiles_yml_path=project / "profiles.yml"),
        dbt_vars={"day": "{{ ds }}"},
        secret_vars={"api_key": SecretVar(airflow_variable="e2e_shop_api_key")},
        env={"SECRET_VARS_DB": str(db)},
        artifacts_callback=keep,
    )
    return op


@pytest.mark.parametrize("warm", [0, 1], ids=["cold", "warm"])
def test_dbt_gets_a_secret_var_that_no_command_line_log_field_or_error_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warm: int
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_E2E_SHOP_API_KEY", SECRET)  # an Airflow Variable, as a worker reads it
    secrets = {"api_key": SECRET}
    cmdlines: list[str] = []
    environ_modes: list[int] = []
    original = processes.ChildProcess.stream

    def stream(self: processes.ChildProcess, on_line: Any, **kw: Any) -> int:
        # dbt is running (Popen returns after exec): what any local user can read of it
        cmdlines.append(Path(f"/proc/{self.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        environ_modes.append(os.stat(f"/proc/{self.pid}/environ").st_mode & 0o777)
        return original(self, on_line, **kw)

    monkeypatch.setattr(processes.ChildProcess, "stream", stream)
    task_log = _TaskLog()
    monkeypatch.setattr(DbtRunOperator, "log", property(lambda self: task_log))
    project = _project(tmp_path / "project")
    db = tmp_path / "secret.duckdb"
    context = {"ds": "2024-05-01", "logical_date": datetime(2024, 5, 1, tzinfo=timezone.utc)}

    artifacts: dict[str, str] = {}
    op = _operator(project, db, "key_check", warm, artifacts)
    op.render_template_fields(context)
    rendered = json.dumps({name: getattr(op, name) for name in op.template_fields}, default=str)
    xcom = op.execute(context)
    log = list(task_log.lines)
    assert any("running: dbt run --select key_check" in line for line in log), log[-10:]

    compiled = artifacts["compiled/secretvars/models/key_check.sql"]
    assert hashlib.md5(SECRET.encode()).hexdigest() in compiled and f"{len(SECRET)} as key_len" in compiled
    assert "'2024-05-01' as day" in compiled  # the templated vars still render
    if warm:
        assert any("running in warm process" in line for line in log), log[-10:]
        pid = int(next(line for line in log if "running in warm process" in line).split("process ")[1].split()[0])
        cmdlines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
    else:
        assert cmdlines and "--vars" in cmdlines[-1] and "MANIFEST_DAG_SECRET_VAR_API_KEY" in cmdlines[-1]
        assert environ_modes and all(mode == 0o400 for mode in environ_modes)  # the value's home: owner-only
    assert cmdlines and not [c for c in cmdlines if SECRET in c]
    assert not scan_text("rendered fields", rendered, secrets)
    assert not scan_text("xcom", json.dumps(xcom), secrets)
    assert not [line for line in log if SECRET in line]
    assert {"run_results.json", "manifest.json"} <= set(artifacts)
    assert not [name for name, text in artifacts.items() if name.endswith(".json") and SECRET in text]
    assert "MANIFEST_DAG_SECRET_VAR_API_KEY" in artifacts["run_results.json"]  # args.vars: the reference

    failing = _operator(project, db, "key_fail", warm, {})
    failing.render_template_fields(context)
    with pytest.raises(DbtRunError) as info:
        failing.execute(context)
    text = f"{info.value}\n{info.value.args!r}\n{info.value.command}"
    assert "Could not convert string" in text and "***" in text, text  # dbt had the value; it is masked
    assert SECRET not in text
    assert len(task_log.lines) > len(log) and not [line for line in task_log.lines if SECRET in line]
    assert not [c for c in cmdlines if SECRET in c]
