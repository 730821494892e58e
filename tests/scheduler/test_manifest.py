from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import pytest

from manifest_dag import DbtNode, ManifestError, load_manifest
from manifest_dag.scheduler.manifest import SUPPORTED_SCHEMA_VERSIONS
from tests.conftest import ALL_MANIFESTS, JAFFLE, SHARED, VERSION_MANIFESTS, manifest_id
from tests.support.edit import edited, uid, write


@pytest.mark.parametrize("path", VERSION_MANIFESTS, ids=manifest_id)
def test_every_supported_dbt_version_loads(path: Path) -> None:
    manifest = load_manifest(path)
    version = path.stem.split("-")[1]
    assert manifest.dbt_version == version
    assert manifest.schema_version in SUPPORTED_SCHEMA_VERSIONS
    assert manifest.project_name == "jaffle_shop"  # derived from project_id before v10
    counts = {t: len(manifest.by_type(t)) for t in ("model", "seed", "test")}
    assert counts == {"model": 5, "seed": 3, "test": 20}
    orders = manifest.nodes["model.jaffle_shop.orders"]
    assert orders.depends_on == ("model.jaffle_shop.stg_orders", "model.jaffle_shop.stg_payments")
    assert orders.materialized == "table"
    assert orders.fqn == ("jaffle_shop", "orders")


def test_versions_cover_dbt_1_5_to_1_12() -> None:
    versions = {p.stem.split("-")[1].rsplit(".", 1)[0] for p in VERSION_MANIFESTS}
    assert {"1.5", "1.6", "1.7", "1.8", "1.9", "1.10", "1.11", "1.12"} <= versions


@pytest.mark.parametrize("path", ALL_MANIFESTS, ids=manifest_id)
def test_real_manifests_load_with_slim_nodes(path: Path) -> None:
    manifest = load_manifest(path)
    assert manifest.nodes
    node = next(iter(manifest.nodes.values()))
    assert isinstance(node, DbtNode)
    assert not hasattr(node, "__dict__"), "nodes must be slotted"
    assert not hasattr(node, "raw_code")
    with pytest.raises(AttributeError):
        node.name = "x"  # type: ignore[misc]


def test_disabled_nodes_are_absent() -> None:
    # Tuva keeps 16 disabled tests in `nodes` (config.enabled false): dbt ignores them, so do we.
    manifest = load_manifest(SHARED / "large" / "tuva" / "manifest.json.gz")
    assert manifest.disabled
    assert not (manifest.disabled & set(manifest.nodes))
    assert all(n.config.get("enabled", True) is not False for n in manifest.nodes.values())


def test_memory_stays_well_below_the_raw_json() -> None:
    """The slim nodes keep a fraction of what the parsed JSON holds (Tuva: ~7 of ~41 MB)."""
    import gzip

    import orjson

    path = SHARED / "large" / "tuva" / "manifest.json.gz"
    raw = gzip.decompress(path.read_bytes())
    gc.collect()
    tracemalloc.start()
    parsed = orjson.loads(raw)
    parsed_size, _ = tracemalloc.get_traced_memory()
    del parsed
    gc.collect()
    tracemalloc.stop()
    tracemalloc.start()
    manifest = load_manifest(path)
    gc.collect()
    retained, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(manifest.nodes) > 1500
    assert retained < parsed_size / 4, f"manifest keeps {retained:,} B; the parsed JSON {parsed_size:,} B"
    assert retained < len(raw) / 2


def test_equal_configs_are_shared_between_nodes() -> None:
    manifest = load_manifest(JAFFLE)
    tests = manifest.by_type("test")
    assert len({id(t.config) for t in tests}) < len(tests)


def test_gzipped_manifest_loads() -> None:
    assert load_manifest(SHARED / "large" / "tuva" / "manifest.json.gz").adapter_type == "duckdb"


# -- bad input -------------------------------------------------------------------------------------
def test_missing_file_names_the_path_and_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "manifest.json"
    with pytest.raises(ManifestError, match="manifest not found") as err:
        load_manifest(missing)
    assert str(missing) in str(err.value)
    assert "dbt parse" in str(err.value)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="directory"):
        load_manifest(tmp_path)


def test_truncated_json_names_the_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_bytes(JAFFLE.read_bytes()[:5000])
    with pytest.raises(ManifestError, match="not valid JSON") as err:
        load_manifest(path)
    assert str(path) in str(err.value)
    assert "line" in str(err.value)


def test_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text("[1, 2]")
    with pytest.raises(ManifestError, match="JSON object"):
        load_manifest(path)


def test_dbt_1_4_schema_v8_is_refused_with_the_versions_we_read() -> None:
    path = SHARED / "versions" / "manifest_dbt-1.4.10.json"
    with pytest.raises(ManifestError, match="schema v8") as err:
        load_manifest(path)
    assert "1.4.10" in str(err.value) and "v9-v12" in str(err.value)


def test_future_schema_is_refused(tmp_path: Path) -> None:
    def bump(m: dict) -> None:
        m["metadata"]["dbt_schema_version"] = "https://schemas.getdbt.com/dbt/manifest/v13.json"
        m["metadata"]["dbt_version"] = "2.0.0"

    with pytest.raises(ManifestError, match="v13") as err:
        load_manifest(edited(tmp_path, bump))
    assert "dbt 2.0.0" in str(err.value)


def test_missing_schema_version(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="dbt_schema_version"):
        load_manifest(edited(tmp_path, lambda m: m["metadata"].pop("dbt_schema_version")))


def test_dependency_on_a_missing_node_names_both(tmp_path: Path) -> None:
    def dangle(m: dict) -> None:
        m["nodes"][uid("orders")]["depends_on"]["nodes"].append("model.jaffle_shop.ghost")

    with pytest.raises(ManifestError) as err:
        load_manifest(edited(tmp_path, dangle))
    assert uid("orders") in str(err.value) and "model.jaffle_shop.ghost" in str(err.value)
    assert "dbt parse" in str(err.value)


def test_dependency_on_a_disabled_node_says_so(tmp_path: Path) -> None:
    def disable(m: dict) -> None:
        m["nodes"][uid("stg_orders")]["config"]["enabled"] = False

    with pytest.raises(ManifestError, match="which is disabled") as err:
        load_manifest(edited(tmp_path, disable))
    assert uid("stg_orders") in str(err.value)


def test_wrong_field_type_names_the_node(tmp_path: Path) -> None:
    def break_tags(m: dict) -> None:
        m["nodes"][uid("customers")]["tags"] = {"not": "a list"}

    with pytest.raises(ManifestError) as err:
        load_manifest(edited(tmp_path, break_tags))
    assert uid("customers") in str(err.value) and "tags" in str(err.value)


def test_node_that_is_not_an_object(tmp_path: Path) -> None:
    def break_node(m: dict) -> None:
        m["nodes"][uid("customers")] = "oops"

    with pytest.raises(ManifestError, match=uid("customers")):
        load_manifest(edited(tmp_path, break_node))


def test_unknown_values_newer_than_the_schema_are_tolerated(tmp_path: Path) -> None:
    def future(m: dict) -> None:
        node = m["nodes"][uid("customers")]
        node["brand_new_field"] = {"x": 1}
        node["config"]["materialized"] = "dynamic_table_v9"
        m["macros"]["macro.x.js"] = {"language": "javascript"}
        m["some_new_top_level"] = {}

    manifest = load_manifest(edited(tmp_path, future))
    assert manifest.nodes[uid("customers")].materialized == "dynamic_table_v9"


def test_gzip_garbage(tmp_path: Path) -> None:
    path = write(tmp_path, {}, "manifest.json.gz")
    path.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(ManifestError, match="gzip"):
        load_manifest(path)
