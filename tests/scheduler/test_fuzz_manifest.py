"""Bad input, fuzzed: mutated real manifests either work or fail with a ManifestDagError.

Never another exception (a KeyError or TypeError from deep inside is a bug: the user cannot tell
which node is at fault), and never a shell: dbt is not involved at all on this side.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pendulum
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from manifest_dag import DbtDag, ManifestDagError, ProjectConfig, RenderConfig, VenvConfig, load_manifest
from manifest_dag.scheduler.project import plan_project
from tests.support.edit import jaffle_raw

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False, width=16) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
nasty_names = st.sampled_from(
    ["orders; rm -rf /", "../../etc/passwd", "$(reboot)", "a`b`", "x" * 5000, "名前", "a.b.c", "", " ", "-rf"]
)
FIELDS = [
    "depends_on", "config", "tags", "fqn", "name", "resource_type", "package_name", "original_file_path",
    "path", "test_metadata", "version", "latest_version", "access", "group", "description", "alias",
    "schema", "database", "patch_path", "unique_id", "attached_node", "column_name",
]
NODES = sorted(jaffle_raw()["nodes"])


def _check(tmp_path: Path, data: object, name: str, render: bool) -> None:
    path = tmp_path / f"{name}.json"
    path.write_bytes(data if isinstance(data, bytes) else orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS))
    try:
        load_manifest(path)
        plan_project(path, RenderConfig())
        plan_project(path, RenderConfig(select=["+orders", "tag:x", "config.materialized:table"], test_behavior="build"))
        if render:
            DbtDag(
                dag_id="fuzz",
                project_config=ProjectConfig(manifest_path=path, plan_cache_dir=False),
                venv_config=VenvConfig(py_requirements=["dbt-core"]),
                render_config=RenderConfig(allow_empty=True),
                schedule=None,
                start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
            )
    except ManifestDagError:
        pass


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(node=st.sampled_from(NODES), field=st.sampled_from(FIELDS), value=json_values)
def test_a_field_with_any_value(tmp_path: Path, node: str, field: str, value: object) -> None:
    data = jaffle_raw()
    data["nodes"][node][field] = value
    _check(tmp_path, data, "field", render=True)


@FUZZ
@given(node=st.sampled_from(NODES), key=st.sampled_from(["materialized", "enabled", "meta", "tags", "access", "group", "freshness"]), value=json_values)
def test_a_config_key_with_any_value(tmp_path: Path, node: str, key: str, value: object) -> None:
    data = jaffle_raw()
    data["nodes"][node]["config"][key] = value
    _check(tmp_path, data, "config", render=True)


@FUZZ
@given(node=st.sampled_from(NODES), name=nasty_names)
def test_names_with_shell_characters_and_separators(tmp_path: Path, node: str, name: str) -> None:
    data = jaffle_raw()
    data["nodes"][node]["name"] = name
    data["nodes"][node]["alias"] = name
    _check(tmp_path, data, "names", render=True)


@FUZZ
@given(edges=st.lists(st.tuples(st.sampled_from(NODES), st.sampled_from([*NODES, "model.jaffle_shop.ghost"])), min_size=1, max_size=4))
def test_extra_dependencies_missing_nodes_and_cycles(tmp_path: Path, edges: list[tuple[str, str]]) -> None:
    data = jaffle_raw()
    for child, parent in edges:
        data["nodes"][child].setdefault("depends_on", {}).setdefault("nodes", []).append(parent)
    _check(tmp_path, data, "edges", render=False)


@FUZZ
@given(cut=st.integers(min_value=0, max_value=400_000))
def test_truncated_json(tmp_path: Path, cut: int) -> None:
    raw = orjson.dumps(jaffle_raw())
    _check(tmp_path, raw[: cut % len(raw)], "cut", render=False)


@FUZZ
@given(key=st.sampled_from(["metadata", "nodes", "sources", "exposures", "selectors", "disabled", "unit_tests"]), value=json_values)
def test_a_top_level_key_with_any_value(tmp_path: Path, key: str, value: object) -> None:
    data = jaffle_raw()
    data[key] = value
    _check(tmp_path, data, "top", render=False)


@FUZZ
@given(kind=st.text(min_size=1, max_size=12))
def test_unknown_resource_types(tmp_path: Path, kind: str) -> None:
    data = jaffle_raw()
    node = dict(data["nodes"]["model.jaffle_shop.orders"])
    node["resource_type"] = kind
    node["unique_id"] = f"{kind}.jaffle_shop.mystery"
    data["nodes"][node["unique_id"]] = node
    _check(tmp_path, data, "kind", render=True)


def test_huge_string_fields(tmp_path: Path) -> None:
    data = jaffle_raw()
    data["nodes"]["model.jaffle_shop.orders"]["description"] = "x" * 5_000_000
    data["nodes"]["model.jaffle_shop.orders"]["raw_code"] = "y" * 5_000_000
    _check(tmp_path, data, "huge", render=True)


def test_vars_that_are_not_json_serialisable_fail_clearly() -> None:
    from manifest_dag import ConfigError

    with pytest.raises(ManifestDagError):
        from manifest_dag.worker.partial_parse import canonical_vars

        canonical_vars({"when": object()})
    assert issubclass(ConfigError, ManifestDagError)
