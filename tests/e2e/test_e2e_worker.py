"""The worker path with real dbt in a real venv: partial-parse reuse and secrets."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from manifest_dag import DbtRunError, ProfileConfig
from manifest_dag.core.specs import DbtInvocation
from manifest_dag.worker.run import run_dbt
from manifest_dag.worker.venv import VenvCache, VenvSpec
from tests.support.airflow_run import E2E_VENV_CACHE, VENV_REQUIREMENTS
from tests.conftest import REPO

pytestmark = pytest.mark.e2e

SHOP = REPO / "fixtures" / "shop"
SHOP_MANIFEST = REPO / "fixtures" / "manifests" / "shop" / "manifest.json"


def copy_shop(dest: Path) -> Path:
    shutil.copytree(SHOP, dest, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", "*.duckdb"))
    return dest


def invoke(project: Path, args: tuple[str, ...], db: Path | None, **kw) -> tuple[list[str], dict]:
    """Run dbt through the runner; return the log lines and dbt's perf_info.json."""
    lines: list[str] = []
    perf: dict = {}

    def keep(target: Path) -> None:
        info = target / "perf_info.json"
        if info.exists():
            perf.update(json.loads(info.read_text()))

    run_dbt(
        DbtInvocation(
            command_args=args,
            project_dir=project,
            venv_spec=VenvSpec(requirements=tuple(VENV_REQUIREMENTS)),
            profile_config=ProfileConfig(profile_name="shop", profiles_yml_path=project / "profiles.yml"),
            cache_dir=E2E_VENV_CACHE,
            env={"SHOP_DUCKDB_PATH": str(db)} if db else {},
            install_deps=True,
            **kw,
        ),
        log=lines.append,
        artifacts_callback=keep,
    )
    return lines, perf


def test_partial_parse_is_reused_and_parse_is_shorter(tmp_path: Path) -> None:
    project = copy_shop(tmp_path / "shop")
    db = tmp_path / "shop.duckdb"
    full_log, full = invoke(project, ("parse", "--no-partial-parse"), db)
    assert full["is_partial_parse_enabled"] is False
    reuse_log, reuse = invoke(project, ("parse",), db)
    text = "\n".join(reuse_log)
    assert "Unable to do partial parsing" not in text
    assert "dbt parse: Partial parsing enabled, no changes found, skipping parsing" in text, text[-2000:]
    assert "partial parse: reusing this slot's copy" in text
    assert reuse["is_partial_parse_enabled"] is True
    assert reuse["load_all_elapsed"] < 0.6 * full["load_all_elapsed"], (full["load_all_elapsed"], reuse["load_all_elapsed"])


def test_manifest_side_msgpack_is_relocated_and_reused(tmp_path: Path) -> None:
    """A fresh project path (new worker) reuses the msgpack beside the manifest, paths moved."""
    project = copy_shop(tmp_path / "elsewhere" / "shop")
    # the profile as `make golden` parsed it (its default DuckDB path, relative to the project)
    log, perf = invoke(project, ("seed", "--select", "raw_country_regions"), None, manifest_path=SHOP_MANIFEST)
    text = "\n".join(log)
    assert f"reusing {SHOP_MANIFEST.parent / 'partial_parse.msgpack'}" in text
    assert "paths moved from" in text
    assert "Unable to do partial parsing" not in text
    # the seed was read from this workspace, not from where the msgpack was written
    assert "1 of 1 OK loaded seed file" in text or "PASS=1" in text, text[-2000:]


def test_postgres_password_reaches_no_log_and_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid

    password = f"pw-{uuid.uuid4().hex}"  # made at run time: appears in no file unless leaked
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAREHOUSE",
        json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": 1, "login": "dbt",
                    "password": password, "schema": "analytics"}),
    )
    project = copy_shop(tmp_path / "shop")
    lines: list[str] = []
    cache = VenvCache(E2E_VENV_CACHE, log=lines.append)
    with pytest.raises(DbtRunError) as err:
        run_dbt(
            DbtInvocation(
                command_args=("run", "--select", "stg_orders"),
                project_dir=project,
                venv_spec=VenvSpec(requirements=("dbt-core~=1.11.0", "dbt-postgres~=1.10.0")),
                profile_config=ProfileConfig(profile_name="shop", conn_id="warehouse", profile_args={"schema": "public", "connect_timeout": 2}),
                cache_dir=E2E_VENV_CACHE,
                install_deps=True,
            ),
            log=lines.append,
            venv_cache=cache,
        )
    assert "127.0.0.1" in str(err.value) or any("127.0.0.1" in line or "connect" in line.lower() for line in lines)
    assert password not in str(err.value)
    assert not [line for line in lines if password in line]
    leaked = []
    roots = [E2E_VENV_CACHE / ".state", tmp_path, *Path(tempfile.gettempdir()).glob("manifest-dag-*")]
    for root in roots:
        for path in root.rglob("*"):
            try:
                if path.is_file() and path.stat().st_size < 5_000_000 and password.encode() in path.read_bytes():
                    leaked.append(path)
            except OSError:
                continue
    assert not leaked, f"password found in {leaked}"


def test_parallel_tasks_on_one_duckdb_file_take_turns(tmp_path: Path) -> None:
    """Two dbt runs at once on one DuckDB file: without the lock one fails with DuckDB's lock error."""
    import threading

    project = copy_shop(tmp_path / "shop")
    db = tmp_path / "shared.duckdb"
    invoke(project, ("parse",), db)  # warm the venv, deps and partial parse first
    results: dict[str, object] = {}

    def seed(name: str) -> None:
        try:
            results[name] = invoke(project, ("seed", "--select", name), db)[0]
        except Exception as exc:  # noqa: BLE001 - reported below
            results[name] = exc

    threads = [threading.Thread(target=seed, args=(n,)) for n in ("raw_orders", "raw_order_items")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    errors = {k: v for k, v in results.items() if isinstance(v, Exception)}
    assert not errors, errors
    logs = ["\n".join(v) for v in results.values()]
    waiter = [text for text in logs if "waiting for another task's dbt run on the same DuckDB target" in text]
    assert waiter, logs
    waited = re.search(r"DuckDB target free after ([0-9.]+) s of waiting", waiter[0])
    assert waited and float(waited.group(1)) > 0, waiter[0]
    assert all("Could not set lock" not in text for text in logs)


def test_a_failing_model_raises_dbt_run_error_with_its_facts(tmp_path: Path) -> None:
    """``DbtRunError`` carries the command, dbt's exit code and the failing node, not only a message."""
    project = copy_shop(tmp_path / "shop")
    (project / "models" / "staging" / "stg_products.sql").write_text("select * from no_such_table_anywhere\n")
    with pytest.raises(DbtRunError) as err:
        invoke(project, ("run", "--select", "stg_products"), tmp_path / "shop.duckdb")
    assert err.value.command == "run --select stg_products"
    assert err.value.exit_code == 1
    assert err.value.failed_nodes == ("model.shop.stg_products",)
    assert "model.shop.stg_products" in str(err.value)


def _set_modes(tree: Path, *, read_only: bool) -> None:
    for path in [tree, *tree.rglob("*")]:
        if path.is_symlink():
            continue
        if path.is_dir():
            path.chmod(0o555 if read_only else 0o755)
        else:
            path.chmod(0o444 if read_only else 0o644)


def test_the_slots_copy_is_synced_with_a_read_only_source_between_fresh_dbt_runs(tmp_path: Path) -> None:
    """Issue 18 items 2, 4 and 7 with real dbt: the slot's copy is kept and synced, not copied
    again. A read-only project with a model in ``models/logs/`` and a relative symlink out of it
    builds every model; an edited model (and an edited file behind the symlink) runs its new SQL
    in the same slot; a deleted model is no longer built. Fresh dbt processes (no warm pool), so
    the cold path is the one checked, with the slot's msgpack used in place."""
    src = tmp_path / "synced"
    files = {
        "dbt_project.yml": "name: synced\nprofile: synced\nconfig-version: 2\n",
        "profiles.yml": "synced:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        "      path: \"{{ env_var('SYNCED_DB') }}\"\n",
        "models/a.sql": "select 1 as v\n",
        "models/b.sql": "select v + 10 as v from {{ ref('a') }}\n",
        "models/logs/in_logs.sql": "select 'in a folder named logs' as v\n",
        "data/big.bin": "never copied\n",
    }
    for rel, text in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "shared.sql").write_text("select 'shared' as v\n")
    (src / "models" / "shared.sql").symlink_to(Path("..") / ".." / "shared" / "shared.sql")
    db = tmp_path / "synced.duckdb"

    def run(*args: str) -> tuple[list[str], object]:
        lines: list[str] = []
        outcome = run_dbt(
            DbtInvocation(
                command_args=args,
                project_dir=src,
                venv_spec=VenvSpec(requirements=tuple(VENV_REQUIREMENTS)),
                profile_config=ProfileConfig(profile_name="synced", profiles_yml_path=src / "profiles.yml"),
                cache_dir=E2E_VENV_CACHE,
                env={"SYNCED_DB": str(db)},
                warm_processes=0,
            ),
            log=lines.append,
        )
        return lines, outcome

    def rows(table: str) -> list:
        """The table's rows, read with the venv's own duckdb once dbt's process has ended."""
        import subprocess

        venv = VenvCache(E2E_VENV_CACHE, log=lambda s: None).ensure(VenvSpec(requirements=tuple(VENV_REQUIREMENTS)))
        script = (
            "import duckdb, json, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
            "print(json.dumps(c.execute(sys.argv[2]).fetchall()))"
        )
        sql = f"select v from main.{table}"
        out = subprocess.run(  # noqa: S603 - our own venv's python
            [str(venv.python), "-c", script, str(db), sql], capture_output=True, text=True, check=True
        )
        return json.loads(out.stdout)

    def synced_line(lines: list[str]) -> str:
        (line,) = [x for x in lines if x.startswith("workspace: ") and " from " in x and "copied" in x]
        return line

    _set_modes(src, read_only=True)
    try:
        lines, outcome = run("run")
        built = sorted(r.unique_id for r in outcome.summary.results)
        assert built == ["model.synced.a", "model.synced.b", "model.synced.in_logs", "model.synced.shared"], built
        assert rows("a") == [[1]] and rows("b") == [[11]] and rows("shared") == [["shared"]]
        assert rows("in_logs") == [["in a folder named logs"]]
        first = synced_line(lines)
        assert "copied afresh" in first
        slot = first.split(" ")[1]
        copy = Path(slot)
        assert not (copy / "data").exists() and not (copy / "profiles.yml").exists()
        assert not (copy / "models" / "shared.sql").is_symlink()  # the content, not a dangling link

        model = src / "models" / "a.sql"  # writable just for the edit (a chmod is a change too)
        model.chmod(0o644)
        model.write_text("select 2 as v\n")
        model.chmod(0o444)
        (shared / "shared.sql").write_text("select 'shared, edited' as v\n")
        lines, outcome = run("run", "--select", "a", "shared")
        second = synced_line(lines)
        assert second.startswith(f"workspace: {slot} brought up to date") and "2 copied, 0 removed" in second, second
        assert any(x.startswith("partial parse: reusing this slot's copy (dbt ") and x.endswith(", in place)") for x in lines), lines
        assert not [x for x in lines if "partial parse was not reused" in x], lines  # dbt took it
        assert sorted(r.unique_id for r in outcome.summary.results) == ["model.synced.a", "model.synced.shared"]
        assert rows("a") == [[2]] and rows("shared") == [["shared, edited"]]

        (src / "models").chmod(0o755)
        (src / "models" / "b.sql").unlink()
        (src / "models").chmod(0o555)
        lines, outcome = run("run")
        third = synced_line(lines)
        assert third.startswith(f"workspace: {slot} brought up to date") and "0 copied, 1 removed" in third, third
        built = sorted(r.unique_id for r in outcome.summary.results)
        assert built == ["model.synced.a", "model.synced.in_logs", "model.synced.shared"], built
        assert not (copy / "models" / "b.sql").exists()
    finally:
        _set_modes(src, read_only=False)
