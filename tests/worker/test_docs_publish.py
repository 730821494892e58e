"""The docs site from dbt's target folder to its destination: complete, masked, written whole."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from manifest_dag.core.docs_site import META, PAGE, SITE_FILES
from manifest_dag.core.errors import DbtRunError
from manifest_dag.core.secrets import Masker
from manifest_dag.worker.docs_publish import keep_site, publish_site

SECRET = 'pa"ss\\word-9Zq'


def _target(tmp_path: Path, *, static: bool = True) -> Path:
    target = tmp_path / "target"
    target.mkdir()
    # dbt writes the compiled SQL into the manifest, and --static puts the manifest into the page
    manifest = json.dumps({"nodes": {"model.p.m": {"compiled_code": f"select '{SECRET}' as k"}}})
    (target / "manifest.json").write_text(manifest)
    (target / "catalog.json").write_text('{"nodes": {}}')
    (target / "index.html").write_text("<html>MANIFEST</html>")
    if static:
        (target / PAGE).write_text(f"<html><script>var m = {manifest};</script></html>")
    (target / "run_results.json").write_text("{}")
    return target


def test_keeps_the_site_files_only(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    assert keep_site(_target(tmp_path), kept, static=True) == list(SITE_FILES)
    assert sorted(p.name for p in kept.iterdir()) == sorted(SITE_FILES)


def test_a_missing_catalog_fails_naming_it(tmp_path: Path) -> None:
    target = _target(tmp_path)
    (target / "catalog.json").unlink()
    with pytest.raises(DbtRunError, match=r"wrote no catalog\.json"):
        keep_site(target, tmp_path / "kept", static=True)


def test_a_dbt_without_static_is_told_to_turn_it_off(tmp_path: Path) -> None:
    target = _target(tmp_path, static=False)
    with pytest.raises(DbtRunError, match="static=False"):
        keep_site(target, tmp_path / "kept", static=True)
    assert PAGE not in keep_site(target, tmp_path / "kept2", static=False)


def test_secrets_are_masked_as_written_and_as_json_escapes_them(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    keep_site(_target(tmp_path), kept, static=True, mask=Masker([SECRET]))
    escaped = json.dumps(SECRET)[1:-1]
    for name in SITE_FILES:
        text = (kept / name).read_text()
        assert SECRET not in text and escaped not in text, name
    manifest = json.loads((kept / "manifest.json").read_text())  # still valid JSON
    assert manifest["nodes"]["model.p.m"]["compiled_code"] == "select '***' as k"
    assert "'***'" in (kept / PAGE).read_text()


def test_publish_to_a_local_folder(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    names = keep_site(_target(tmp_path), kept, static=True)
    dest = tmp_path / "docs" / "shop"
    written = publish_site(kept, names, dest, {"tasks": {"m.run": ["model.p.m"]}})
    assert written == [*SITE_FILES, META]
    assert sorted(p.name for p in dest.iterdir()) == sorted(written)  # no temporary file left
    assert json.loads((dest / META).read_text())["tasks"] == {"m.run": ["model.p.m"]}
    assert stat.S_IMODE((dest / PAGE).stat().st_mode) == 0o644  # the api-server reads it


def test_publish_through_objectstoragepath(tmp_path: Path) -> None:
    """Any path-like destination that opens files: Airflow's ObjectStoragePath, here on ``file://``."""
    from airflow.sdk import ObjectStoragePath

    kept = tmp_path / "kept"
    names = keep_site(_target(tmp_path), kept, static=True)
    dest = ObjectStoragePath(f"file://{tmp_path}/bucket/docs/shop")
    written = publish_site(kept, names, dest, {"dag_id": "shop"})
    for name in written:
        assert (tmp_path / "bucket" / "docs" / "shop" / name).read_bytes() == (
            (kept / name).read_bytes() if name != META else (tmp_path / "bucket/docs/shop" / META).read_bytes()
        )
    assert json.loads((tmp_path / "bucket/docs/shop" / META).read_text()) == {"dag_id": "shop"}
