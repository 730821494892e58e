"""The benchmark's synthetic manifest generator: deterministic and a valid, realistic manifest.

Fast (a few hundred models); no timing here: speed is measured by ``make bench``, not asserted.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from benchmarks import synth
from manifest_dag.scheduler.graph import DbtGraph
from manifest_dag.scheduler.manifest import load_manifest

N = 300


@pytest.fixture(scope="module")
def manifest_file(tmp_path_factory) -> Path:
    return synth.write(N, 7, tmp_path_factory.mktemp("synth") / "manifest.json")


@pytest.fixture(scope="module")
def manifest(manifest_file):
    return load_manifest(manifest_file)


def test_same_seed_same_bytes(tmp_path, manifest_file):
    again = synth.write(N, 7, tmp_path / "again.json")
    assert again.read_bytes() == manifest_file.read_bytes()


def test_other_seed_other_manifest(tmp_path, manifest_file):
    other = synth.write(N, 8, tmp_path / "other.json")
    assert other.read_bytes() != manifest_file.read_bytes()


def test_schema_and_metadata(manifest_file, manifest):
    raw = json.loads(manifest_file.read_text())
    assert raw["metadata"]["dbt_schema_version"].endswith("/manifest/v12.json")
    assert manifest.schema_version == 12
    assert manifest.dbt_version.startswith("1.11.")
    assert manifest.adapter_type == "duckdb"
    assert manifest.project_name == "synth"


def test_counts_by_type(manifest):
    counts = Counter(n.resource_type for n in manifest.nodes.values())
    assert counts["model"] == N
    assert counts["source"] >= N // 10
    assert counts["seed"] >= 1
    assert counts["snapshot"] >= 1
    # about two generic tests per model, plus relationships and source tests
    assert 2 * N <= counts["test"] <= 3 * N


def test_layers_and_parents(manifest):
    models = [n for n in manifest.nodes.values() if n.resource_type == "model"]
    layers = Counter(n.fqn[1] for n in models)
    assert set(layers) == {"staging", "intermediate", "marts"}
    for node in models:
        assert 1 <= len(node.depends_on) <= 4, node.unique_id
        parent_types = {manifest.nodes[p].resource_type for p in node.depends_on}
        if node.fqn[1] == "staging":
            assert parent_types <= {"source", "seed"}
        else:
            assert parent_types <= {"model"}
    assert Counter(len(n.depends_on) for n in models).keys() >= {1, 2, 3, 4}


def test_relationship_tests_have_two_parents(manifest):
    rel = [n for n in manifest.nodes.values() if n.test_name == "relationships"]
    assert rel
    for node in rel:
        assert len(node.depends_on) == 2
        assert node.attached_node in node.depends_on
    others = [n for n in manifest.nodes.values() if n.resource_type == "test" and n.test_name != "relationships"]
    assert all(len(n.depends_on) == 1 for n in others)


def test_raw_sql_columns_and_tags(manifest_file):
    raw = json.loads(manifest_file.read_text())
    models = [v for v in raw["nodes"].values() if v["resource_type"] == "model"]
    sizes = [len(m["raw_code"]) for m in models]
    assert min(sizes) >= 900 and max(sizes) <= 3100
    assert all(5 <= len(m["columns"]) <= 15 for m in models)
    assert all(m["tags"] and m["config"]["materialized"] for m in models)
    assert raw["parent_map"] and raw["child_map"]


def test_graph_is_acyclic(manifest):
    order = DbtGraph(manifest).topological_order()
    assert len(order) == len(manifest.nodes)
