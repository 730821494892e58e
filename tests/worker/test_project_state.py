"""ProjectState: what a warm dbt process checks before reusing the project it parsed (no dbt)."""

from __future__ import annotations

import os
from pathlib import Path

from manifest_dag.worker.in_venv.project_state import ProjectState, option, read_paths


def _project(root: Path) -> Path:
    (root / "models" / "logs").mkdir(parents=True)
    (root / "dbt_project.yml").write_text("name: p\nprofile: p\nmodel-paths: [models]\n")
    (root / "models" / "a.sql").write_text("select 1 as id\n")
    (root / "models" / "logs" / "b.sql").write_text("select 2 as id\n")
    (root / "profiles.yml").write_text("p:\n  target: dev\n  outputs:\n    dev: {type: duckdb}\n")
    return root


def _args(root: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--select",
        "a",
        "--project-dir",
        str(root),
        "--profiles-dir",
        str(root),
        "--target-path",
        str(root / "target"),
        "--log-path",
        str(root / "logs"),
        *extra,
    ]


def _state(root: Path, *extra: str, env: dict[str, str] | None = None, names: tuple[str, ...] = ()) -> ProjectState:
    return ProjectState.read(_args(root, *extra), "/", env or {}, names)


def test_an_unchanged_project_is_the_same_state_whatever_the_selection_and_outputs(tmp_path: Path) -> None:
    root = _project(tmp_path)
    first = _state(root)
    (root / "target").mkdir()
    (root / "target" / "run_results.json").write_text("{}")
    (root / "logs").mkdir()
    (root / "logs" / "dbt.log").write_text("x")
    (root / "w.duckdb").write_bytes(b"db")  # not a folder dbt reads
    (root / "data").mkdir()
    (root / "data" / "big.csv").write_text("1")
    again = ProjectState.read([*_args(root)[:2], "other", *_args(root)[3:], "--full-refresh"], "/", {})
    assert again.change_from(first) is None
    assert "models/logs/b.sql" in first.files  # a model folder named logs is the project's


def test_any_edit_to_a_file_dbt_reads_is_a_change_naming_it(tmp_path: Path) -> None:
    root = _project(tmp_path)
    first = _state(root)
    path = root / "models" / "a.sql"
    st = path.stat()
    path.write_text("select 9 as id\n")  # same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime: the ctime still moves
    why = _state(root).change_from(first)
    assert why is not None and "changed models/a.sql" in why
    (root / "models" / "c.sql").write_text("select 3\n")
    (root / "models" / "logs" / "b.sql").unlink()
    why = _state(root).change_from(first)
    assert why is not None and "added models/c.sql" in why and "removed models/logs/b.sql" in why


def test_vars_target_profile_and_profiles_yml_are_part_of_the_state(tmp_path: Path) -> None:
    root = _project(tmp_path)
    first = _state(root, "--vars", '{"a": 1}')
    assert "--vars" in str(_state(root, "--vars", '{"a": 2}').change_from(first))
    assert "--target" in str(_state(root, "--vars", '{"a": 1}', "-t", "prod").change_from(first))
    (root / "profiles.yml").write_text("p:\n  target: prod\n  outputs:\n    prod: {type: duckdb}\n")
    assert "profiles.yml" in str(_state(root, "--vars", '{"a": 1}').change_from(first))


def test_env_vars_the_parse_read_and_dbt_settings_count_but_not_secrets_or_run_flags(tmp_path: Path) -> None:
    root = _project(tmp_path)
    env = {"SCHEMA_SUFFIX": "x", "DBT_STATIC_PARSER": "true", "DBT_ENV_SECRET_PW": "s1", "AIRFLOW_CTX_TASK_ID": "t1"}
    first = _state(root, env=env).with_env_names(env, ["SCHEMA_SUFFIX"])
    names = first.env_names()
    assert "SCHEMA_SUFFIX" in names and "DBT_STATIC_PARSER" in names
    assert "DBT_ENV_SECRET_PW" not in names and "AIRFLOW_CTX_TASK_ID" not in names
    same = {**env, "DBT_ENV_SECRET_PW": "rotated", "AIRFLOW_CTX_TASK_ID": "t2", "DBT_WRITE_JSON": "true"}
    assert _state(root, env=same, names=tuple(names)).change_from(first) is None
    why = _state(root, env={**env, "SCHEMA_SUFFIX": "y"}, names=tuple(names)).change_from(first)
    assert why is not None and "SCHEMA_SUFFIX" in why and "x" not in why.replace("SCHEMA_SUFFIX", "")
    assert _state(root, env={**env, "DBT_STATIC_PARSER": "false"}, names=tuple(names)).change_from(first)


def test_folders_come_from_dbt_project_yml_and_installed_packages_are_walked_through_their_link(
    tmp_path: Path,
) -> None:
    root = _project(tmp_path / "p")
    (root / "dbt_project.yml").write_text("name: p\nmodel-paths: [transform]\npackages-install-path: deps\n")
    (root / "transform").mkdir()
    (root / "transform" / "x.sql").write_text("select 1\n")
    installed = tmp_path / "installed" / "pkg" / "macros"
    installed.mkdir(parents=True)
    (installed / "m.sql").write_text("{% macro m() %}1{% endmacro %}")
    (root / "deps").symlink_to(tmp_path / "installed")
    paths = read_paths(str(root))
    assert paths is not None and "transform" in paths and "models" not in paths
    first = _state(root)
    assert "transform/x.sql" in first.files and "deps/pkg/macros/m.sql" in first.files
    assert "models/a.sql" not in first.files
    (installed / "m.sql").write_text("{% macro m() %}2{% endmacro %}")
    assert "deps/pkg/macros/m.sql" in str(_state(root).change_from(first))


def test_jinja_in_a_path_or_an_unreadable_project_file_walks_everything(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "dbt_project.yml").write_text("name: p\nmodel-paths: [\"{{ env_var('M') }}\"]\n")
    assert read_paths(str(root)) is None
    assert "models/a.sql" in _state(root).files
    (root / "dbt_project.yml").write_text(":\n  - [unbalanced")
    assert read_paths(str(root)) is None


def test_a_symlink_loop_is_walked_once(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "models" / "loop").symlink_to(root / "models")
    (root / "models" / "dangling.sql").symlink_to(root / "nowhere.sql")
    state = _state(root)
    assert "models/a.sql" in state.files
    assert state.files["models/dangling.sql"][0] == -1


def test_option_reads_both_spellings_and_the_last_wins() -> None:
    assert option(["run", "--vars", "a", "--vars=b"], "--vars") == "b"
    assert option(["run", "-t", "prod"], "--target", "-t") == "prod"
    assert option(["run", "--vars"], "--vars") is None


def test_with_the_syncs_fingerprint_the_copy_is_not_walked_but_what_it_does_not_cover_is(tmp_path: Path) -> None:
    """The workspace sync has just checked every file it copied; the server trusts its digest
    instead of a second walk (issue 18), and still walks the entries it names (the packages link)."""
    root = _project(tmp_path / "p")
    deps = tmp_path / "deps" / "dbt_packages"
    (deps / "pkg" / "macros").mkdir(parents=True)
    (deps / "pkg" / "macros" / "x.sql").write_text("{% macro x() %}1{% endmacro %}")
    os.symlink(deps, root / "dbt_packages")

    def read(fingerprint: str, changed: tuple[tuple[str, str], ...] = ()) -> ProjectState:
        synced = {"fingerprint": fingerprint, "walk": ["dbt_packages"], "changed": list(changed)}
        return ProjectState.read(_args(root), "/", {}, (), synced=synced)

    first = read("f1")
    assert "models/a.sql" not in first.files  # not walked
    assert "dbt_packages/pkg/macros/x.sql" in first.files
    os.utime(root / "models" / "a.sql", ns=(1, 1))  # the sync's digest vouches for the copy
    assert read("f1").change_from(first) is None
    why = read("f2").change_from(first)
    assert why is not None and "the files the workspace sync copied" in why
    why = read("f2", (("changed", "models/a.sql"), ("removed", "models/b.sql"))).change_from(first)
    assert why == "project files changed models/a.sql, removed models/b.sql"  # as the walk says it
    (deps / "pkg" / "macros" / "x.sql").write_text("{% macro x() %}2{% endmacro %}")
    why = read("f1").change_from(first)
    assert why is not None and "dbt_packages/pkg/macros/x.sql" in why
    walked = _state(root)  # without a fingerprint: the walk, as before
    assert "models/a.sql" in walked.files and walked.change_from(first) is not None
