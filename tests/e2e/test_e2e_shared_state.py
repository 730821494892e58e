"""Workers that share nothing on disk share their partial-parse state through S3, with real dbt.

Each "worker" is its own process with its own state folder (``MANIFEST_DAG_STATE_DIR``: its
workspaces, kept msgpacks, `dbt deps`) and its own copy of the project at another path, as on
another machine; they share only moto's S3 server on loopback. dbt's own log lines show whether
it reused the partial parse.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.support.airflow_run import E2E_VENV_CACHE, VENV_REQUIREMENTS
from tests.support.moto_s3 import ACCESS_KEY, SECRET_KEY, MotoS3

pytestmark = pytest.mark.e2e

SHOP = REPO / "fixtures" / "shop"
URL = "s3://fleet-state/manifest-dag"

_WORKER = r"""
import sys
from pathlib import Path
from manifest_dag import ProfileConfig
from manifest_dag.core.specs import DbtInvocation
from manifest_dag.worker.run import run_dbt
from manifest_dag.worker.venv import VenvSpec
project, db, url, conn_id, cache, reqs, out = sys.argv[1:8]
lines = []
try:
    run_dbt(
        DbtInvocation(
            command_args=("parse",),
            project_dir=Path(project),
            venv_spec=VenvSpec(requirements=tuple(reqs.split(";"))),
            profile_config=ProfileConfig(profile_name="shop", profiles_yml_path=Path(project) / "profiles.yml"),
            cache_dir=Path(cache),
            env={"SHOP_DUCKDB_PATH": db},
            install_deps=False,
            warm_processes=0,
            shared_state_url=url,
            shared_state_conn_id=conn_id,
        ),
        log=lines.append,
    )
finally:
    Path(out).write_text("\n".join(lines))
"""


def start_worker(tmp_path: Path, name: str, s3: MotoS3, edit: str | None = None) -> tuple[subprocess.Popen, Path]:
    project = tmp_path / name / "project" / "shop"  # another path on every "machine"
    shutil.copytree(SHOP, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", "*.duckdb"))
    # the package installed as at image build (what `dbt deps` makes of a local package): no deps run per worker
    shutil.copytree(SHOP / "packages" / "shop_utils", project / "dbt_packages" / "shop_utils")
    if edit:
        model = project / "models" / "staging" / f"{edit}.sql"
        model.write_text(model.read_text() + f"\n-- edited on {name}\n")
    out = tmp_path / name / "log.txt"
    env = {
        **os.environ,
        **s3.env(),
        "PYTHONPATH": str(REPO),
        "MANIFEST_DAG_STATE_DIR": str(tmp_path / name / "state"),
        "TMPDIR": str((tmp_path / name / "tmp").resolve()),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        # this test is about sharing, not deadlines: a machine at load 20 may take long to answer
        "MANIFEST_DAG_OBJECT_TIMEOUT": "180",
    }
    (tmp_path / name / "tmp").mkdir()
    args = [str(project), str(tmp_path / "shop.duckdb"), URL, s3.conn_id, str(E2E_VENV_CACHE), ";".join(VENV_REQUIREMENTS), str(out)]
    proc = subprocess.Popen([sys.executable, "-c", _WORKER, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc, out


def finish(proc: subprocess.Popen, out: Path) -> str:
    output, _ = proc.communicate(timeout=900)
    text = out.read_text() if out.exists() else ""
    assert proc.returncode == 0, f"worker failed:\n{output.decode(errors='replace')[-3000:]}\n{text[-3000:]}"
    return text


def published(text: str) -> str:
    found = re.search(r"shared state: published the msgpack ([0-9a-f]{12})\.\.\.", text)
    assert found, text[-3000:]
    return found.group(1)


def fetched(text: str) -> str:
    found = re.search(r"shared state: fetched the msgpack ([0-9a-f]{12})\.\.\.", text)
    assert found, text[-3000:]
    return found.group(1)


def test_two_workers_share_partial_parse_state_through_s3(tmp_path: Path) -> None:
    # warm the shared venv first (outside the timed workers): each worker would otherwise wait on its build
    from manifest_dag.worker.venv import VenvCache, VenvSpec

    VenvCache(E2E_VENV_CACHE, log=lambda s: None).ensure(VenvSpec(requirements=tuple(VENV_REQUIREMENTS)))
    with MotoS3(tmp_path) as s3:
        s3.bucket("fleet-state")

        # worker a: nothing anywhere, a full parse; it publishes what it kept
        a = finish(*start_worker(tmp_path, "a", s3))
        assert "partial parse: no usable partial_parse.msgpack" in a
        first = published(a)

        # workers b and c at once, each with a model edited since: both take a's state, dbt
        # re-parses only the changed file, and both publish their new state at the same time
        b_proc, b_out = start_worker(tmp_path, "b", s3, edit="stg_orders")
        c_proc, c_out = start_worker(tmp_path, "c", s3, edit="stg_customers")
        b, c = finish(b_proc, b_out), finish(c_proc, c_out)
        for text in (b, c):
            assert fetched(text) == first
            assert re.search(rf"partial parse: reusing the shared state {re.escape(URL)}/partial_parse/[0-9a-f]+ \(dbt 1\.11\.\d+, paths moved from ", text), text[-3000:]
            assert "Unable to do partial parsing" not in text, text[-3000:]
            assert "dbt parse: Partial parsing enabled" in text, text[-3000:]  # dbt's own line: the msgpack was reused
            assert "Starting full parse" not in text
        after_b, after_c = published(b), published(c)
        assert len({first, after_b, after_c}) == 3  # each edited a different file: three states

        # worker d: the pointer names one of them, complete and checked; dbt reuses it
        d = finish(*start_worker(tmp_path, "d", s3))
        assert fetched(d) in (after_b, after_c)
        assert "partial parse: reusing the shared state" in d
        assert "Unable to do partial parsing" not in d and "dbt parse: Partial parsing enabled" in d
    for text in (a, b, c, d):
        assert SECRET_KEY not in text and ACCESS_KEY not in text
