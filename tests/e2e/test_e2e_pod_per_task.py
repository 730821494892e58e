"""Issue 20 item 3 with real dbt: pod-per-task. ``manifest-dag prepare`` at "image build" time
makes the venv, ``dbt deps``, the parsed project and the plans; the image is then made read-only
(``chmod -R a-w``), and each task of a few shop models runs as a brand-new Python process with an
empty TMPDIR, as a KubernetesExecutor pod would; then each again behind ``manifest-dag prestart``
(the pod template's command), which must have started the dbt process the task then uses. Each
must succeed with no venv build, no full parse (dbt's own log says it skipped parsing) and no manifest read, and nothing under the image
may change. The per-task overhead (wall time less dbt's node time) is set against a warm task's
(``run_dbt`` on a warm dbt process) on the same machine and printed for the docs."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from manifest_dag import ProfileConfig
from manifest_dag.core.specs import DbtInvocation
from manifest_dag.worker.run import run_dbt
from manifest_dag.worker.venv import VenvSpec
from manifest_dag.worker.warm import stop_pools
from tests.conftest import REPO
from tests.support.airflow_run import E2E_VENV_CACHE, VENV_REQUIREMENTS
from tests.support.own_venv import chmod_tree, shared_inodes, tree_listing

pytestmark = pytest.mark.e2e

DAG_FILE = '''
"""Airflow DAG over the shop project for pod-per-task runs (manifest-dag e2e test)."""
import pendulum
from manifest_dag import DbtDag, ProfileConfig, ProjectConfig, RenderConfig, VenvConfig
dag = DbtDag(
    dag_id="pod_shop",
    project_config=ProjectConfig(manifest_path="{manifest}", project_dir="{project}",
                                 env_vars={{"SHOP_DUCKDB_PATH": "{db}"}}, install_deps=True),
    profile_config=ProfileConfig(profile_name="shop", profiles_yml_path="{project}/profiles.yml"),
    venv_config=VenvConfig(py_requirements={reqs!r}),
    render_config=RenderConfig(select=["+stg_products"], test_behavior="after_each"),
    schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
)
'''


def _env(tmp: Path, image: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MANIFEST_DAG_", "AIRFLOW__CORE__UNIT"))}
    env.update(
        AIRFLOW_HOME=str(tmp / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        MANIFEST_DAG_VENV_CACHE=str(image / "cache"),
        MANIFEST_DAG_PLAN_CACHE=str(image / "cache" / "plans"),
        MANIFEST_DAG_WARM_PROCESSES="0",  # one task per pod: a warm process would serve nobody else
        PYTHONPATH=str(REPO),
        TMPDIR=str(tmp),
    )
    env.update(extra)
    return env


def test_pod_per_task_with_a_read_only_prepared_image(tmp_path: Path) -> None:
    image = tmp_path / "image"
    project = image / "shop"
    shutil.copytree(
        REPO / "fixtures" / "shop", project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", "*.duckdb")
    )
    dags = image / "dags"
    dags.mkdir()
    db = tmp_path / "warehouse" / "shop.duckdb"  # the warehouse: outside the image, writable
    db.parent.mkdir()
    dag_file = dags / "pod_dag.py"
    manifest = REPO / "fixtures" / "manifests" / "shop" / "manifest.json"
    dag_file.write_text(DAG_FILE.format(manifest=manifest, project=project, db=db, reqs=VENV_REQUIREMENTS))
    (tmp_path / "airflow").mkdir()

    # image build: venv, deps, parse, plans
    build_tmp = tmp_path / "build-tmp"
    build_tmp.mkdir()
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "manifest_dag.cli", "prepare", "--dags", str(dags), "--cache-dir", str(image / "cache")],
        # UV_LINK_MODE=copy: files of the image's own, as an image layer has them; uv's default
        # hardlinks share inodes with its cache and every venv built from it, so the chmod a-w below
        # would reach those too (and their chmods the image)
        env=_env(build_tmp, image, UV_LINK_MODE="copy"),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    prepare_s = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-4000:]
    assert "prepared 1 of 1 parse states and 1 venvs" in done.stdout, done.stdout + done.stderr[-3000:]
    cache = image / "cache"
    assert list((cache / ".prepared" / "partial_parse").glob("*/partial_parse.msgpack"))
    assert list((cache / ".prepared" / "deps").glob("*/dbt_packages"))
    assert not (cache / ".prepared" / "workspaces").exists()

    linked = shared_inodes(image)
    assert not linked, f"{len(linked)} files of the image share their inode with files outside it: {linked[:3]}"
    # the image is read-only from here on
    chmod_tree(image, writable=False)
    try:
        before = tree_listing(image)
        listed = subprocess.run(
            [sys.executable, "-m", "tests.support.pod_task", str(dag_file), "pod_shop", "--list"],
            env=_env(build_tmp, image),
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert listed.returncode == 0, listed.stderr[-3000:]
        listing = json.loads(listed.stdout.strip().splitlines()[-1])
        task_ids, task_commands = listing["tasks"], listing["commands"]
        assert len(task_ids) >= 3, task_ids

        pod: list[dict] = []
        ahead: list[dict] = []
        for task_id, prestart in [(t, False) for t in task_ids] + [(t, True) for t in task_ids]:
            pod_tmp = tmp_path / f"pod-{task_id}{'-prestart' if prestart else ''}"
            pod_tmp.mkdir()  # an empty TMPDIR: a brand-new file system
            (pod_tmp / "airflow").mkdir()
            task_command = [sys.executable, "-m", "tests.support.pod_task", str(dag_file), "pod_shop", task_id]
            if prestart:  # the pod template's command: in front of the executor's args
                argv = [sys.executable, "-m", "manifest_dag.cli", "prestart", "--dag-id", "pod_shop",
                        "--task-id", task_id, "--", *task_command]  # fmt: skip
                env = _env(pod_tmp, image, MANIFEST_DAG_WARM_PROCESSES="1")
            else:
                argv, env = task_command, _env(pod_tmp, image)
            started = time.monotonic()
            try:
                run = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=REPO, timeout=900)
            finally:  # the pod ends: nothing of it outlives it
                stop_pools(pod_tmp / f"manifest-dag-{os.getuid()}" / "state")
            wall = time.monotonic() - started
            log = run.stderr
            (tmp_path / f"{task_id}{'-prestart' if prestart else ''}.log").write_text(log)
            assert run.returncode == 0, f"{task_id}:\n{log[-4000:]}"
            result = json.loads(run.stdout.strip().splitlines()[-1])
            summary = result["summary"]
            assert summary["exit_code"] == 0 and summary["partial_parse_reused"], summary
            assert result["manifest_reads"] == [], "the task read the manifest: the prepared plan cache was not used"
            assert result["tasks_built"] == 1  # the task-scoped parse: only this task, from the cached plan
            assert "partial parse: reusing the prepared copy" in log, log[-3000:]
            assert "Partial parsing enabled, no changes found, skipping parsing" in log, log[-3000:]
            assert "Unable to do partial parsing" not in log and "Starting full parse" not in log
            assert "is read-only here: this task keeps its state under" in log
            assert "dbt deps: using the packages prepared in" in log
            assert "creating venv" not in log and "installing" not in log
            node = summary["node_seconds"] or 0.0
            if prestart:
                assert "manifest-dag prestart: started warm dbt process" in log, log[-3000:]
                assert "warm dbt: running in warm process" in log, log[-3000:]
                assert "starting a warm dbt process" not in log  # the task found it started
                # the warm-up's line (its slot log); when it decoded the msgpack before the task
                # came, the task's workspace placed exactly those bytes and dbt was handed them
                warmed = "".join(p.read_text() for p in pod_tmp.glob("manifest-dag-*/state/warm/*/0.log"))
                assert "warm-up: done in" in warmed, warmed[-2000:]
                if "decode (a task is waiting)" not in warmed and "decode:" not in warmed:
                    assert "used partial_parse.msgpack as decoded before this task arrived" in log, log[-3000:]
                ahead.append({"task": task_id, "wall": wall, "execute": result["execute_s"], "node": node,
                              "invocation": summary["seconds"], "parse": result["parse_s"]})  # fmt: skip
                continue
            pod.append(
                {"task": task_id, "wall": wall, "execute": result["execute_s"], "node": node,
                 "import": result["import_s"], "parse": result["parse_s"]}
            )  # fmt: skip
        assert tree_listing(image) == before, "a task wrote under the read-only prepared image"
    finally:
        chmod_tree(image, writable=True)

    # the baseline: the same dbt commands as warm tasks on a long-lived worker (run_dbt, warm process)
    warm: list[dict] = []
    warm_project = tmp_path / "warm" / "shop"
    shutil.copytree(project, warm_project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    warm_db = tmp_path / "warm" / "shop.duckdb"
    commands = [("parse",)] + [tuple(args) for args in task_commands]
    for n, args in enumerate(commands):
        lines: list[str] = []
        started = time.monotonic()
        outcome = run_dbt(
            DbtInvocation(
                command_args=args,
                project_dir=warm_project,
                venv_spec=VenvSpec(requirements=tuple(VENV_REQUIREMENTS)),
                profile_config=ProfileConfig(profile_name="shop", profiles_yml_path=warm_project / "profiles.yml"),
                cache_dir=E2E_VENV_CACHE,
                env={"SHOP_DUCKDB_PATH": str(warm_db)},
                install_deps=True,
                warm_processes=1,
            ),
            log=lines.append,
        )
        wall = time.monotonic() - started
        if n == 0:
            continue  # the warm-up: starts the warm process and parses once
        assert any("warm dbt: running in warm process" in line for line in lines)
        node = outcome.summary.node_seconds if outcome.summary is not None else 0.0
        warm.append({"task": " ".join(args), "wall": wall, "node": node})

    pod_overhead = statistics.median(p["wall"] - p["node"] for p in pod)
    ahead_overhead = statistics.median(p["wall"] - p["node"] for p in ahead)
    ahead_execute_overhead = statistics.median(p["execute"] - p["node"] for p in ahead)
    pod_execute_overhead = statistics.median(p["execute"] - p["node"] for p in pod)
    warm_overhead = statistics.median(w["wall"] - w["node"] for w in warm)
    figures = {
        "prepare_s": round(prepare_s, 1),
        "tasks": len(pod),
        "pod_process_overhead_median_s": round(pod_overhead, 2),
        "pod_execute_overhead_median_s": round(pod_execute_overhead, 2),
        "pod_python_and_airflow_import_median_s": round(statistics.median(p["import"] for p in pod), 2),
        "pod_dag_parse_median_s": round(statistics.median(p["parse"] for p in pod), 2),
        "prestart_process_overhead_median_s": round(ahead_overhead, 2),
        "prestart_execute_overhead_median_s": round(ahead_execute_overhead, 2),
        "prestart_dag_parse_median_s": round(statistics.median(p["parse"] for p in ahead), 2),
        "warm_overhead_median_s": round(warm_overhead, 2),
        "ratio_execute": round(pod_execute_overhead / warm_overhead, 1) if warm_overhead else None,
        "ratio_process": round(pod_overhead / warm_overhead, 1) if warm_overhead else None,
        "ratio_execute_prestart": round(ahead_execute_overhead / warm_overhead, 1) if warm_overhead else None,
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }
    print("\npod-per-task figures: " + json.dumps(figures))
    (tmp_path / "figures.json").write_text(
        json.dumps({"figures": figures, "pod": pod, "prestart": ahead, "warm": warm}, indent=2)
    )
