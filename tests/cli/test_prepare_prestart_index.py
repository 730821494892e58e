"""Issue 20 item 3: ``manifest-dag prepare`` writes the index ``manifest-dag prestart`` reads.

One pool per venv, project, cache and ``warm_scope`` (what ``warm_pool_dir`` keys a pool on), every
dbt task mapped to its pool, a msgpack of the same project and dbt version to warm up on, and no
requirement, env or var in the file (an index URL may carry a token; the image is shared)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgpack
import pytest

from manifest_dag.cli.prepare import _pool_key, _write_prestart_index
from manifest_dag.cli.prestart import INDEX_NAME, read_index
from manifest_dag.core.specs import DbtInvocation, VenvSpec
from manifest_dag.worker.state_marks import mark_source
from manifest_dag.worker.venv import PREPARED_DIR, Venv, VenvCache

SPEC = VenvSpec(requirements=("dbt-core~=1.11.0",), index_url="https://user:s3cret-token@pypi.example/simple")


def _inv(project: Path, cache: Path, scope: str | None = None, warm: int | None = None, **env: str) -> DbtInvocation:
    return DbtInvocation(
        command_args=("run",),
        project_dir=project,
        venv_spec=SPEC,
        cache_dir=cache,
        warm_scope=scope,
        env=env,
        warm_processes=warm,
    )


def _msgpack(folder: Path, project: Path, version: str) -> None:
    folder.mkdir(parents=True)
    (folder / "partial_parse.msgpack").write_bytes(msgpack.packb({"metadata": {"dbt_version": version}, "nodes": {}}))
    mark_source(folder, project)


def test_the_index_maps_every_task_to_its_pool_and_holds_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, shop, other = tmp_path / "cache", tmp_path / "shop", tmp_path / "other"
    for p in (shop, other):
        p.mkdir()
    venv_dir = cache / "0123456789abcdef"
    (venv_dir / "lib" / "python3.11" / "site-packages" / "dbt_core-1.11.16.dist-info").mkdir(parents=True)
    venv = Venv(key="0123456789abcdef", path=venv_dir, python=Path(sys.executable), bin_dir=venv_dir, built=False)
    monkeypatch.setattr(VenvCache, "ensure", lambda self, spec: venv)
    prepared = cache / PREPARED_DIR / "partial_parse"
    _msgpack(prepared / "a", shop, "1.10.2")  # the project, another dbt version: not this one
    _msgpack(prepared / "b", shop, "1.11.16")
    _msgpack(prepared / "c", other, "1.11.16")

    pools: dict[tuple[Any, ...], tuple[Any, list[tuple[str, str]]]] = {}
    tasks = [
        ("shop", "orders.run", _inv(shop, cache, SECRET="x")),
        ("shop", "orders.test", _inv(shop, cache, SECRET="y")),  # other env: the same pool
        ("shop", "payments.run", _inv(shop, cache, scope="team-b")),
        ("other", "m.run", _inv(other, cache)),
        ("other", "cold.run", _inv(other, cache, warm=0)),  # its VenvConfig: warm processes off
    ]
    for dag_id, task_id, inv in tasks:
        pools.setdefault(_pool_key(inv), (inv, []))[1].append((dag_id, task_id))
    assert _write_prestart_index(pools, log=lambda line: None) == 5

    text = (cache / PREPARED_DIR / INDEX_NAME).read_text()
    assert "s3cret" not in text and "SECRET" not in text and "dbt-core" not in text
    index = read_index(cache)
    assert index is not None
    pool_of = {(d, t): index["pools"][n] for d, by_task in index["tasks"].items() for t, n in by_task.items()}
    assert len(index["pools"]) == 4
    assert pool_of["other", "cold.run"]["warm_off"] is True and pool_of["other", "m.run"]["warm_off"] is False
    assert pool_of["shop", "orders.run"] is pool_of["shop", "orders.test"]
    assert pool_of["shop", "payments.run"]["warm_scope"] == "team-b"
    assert pool_of["shop", "orders.run"] == {
        "venv": {"key": "0123456789abcdef"}, "project_dir": str(shop), "warm_scope": None,
        "msgpack": "partial_parse/b/partial_parse.msgpack", "warm_off": False,
    }  # fmt: skip
    assert pool_of["other", "m.run"]["msgpack"] == "partial_parse/c/partial_parse.msgpack"
    assert json.loads(text) == index
