"""Issue 20 through the real scheduler: pod-per-task tasks beside a warm Celery worker, in one
Airflow 3 deployment, at the same time.

One module fixture sets up ``tests/support/scheduler_env.py`` with two executors,
``CeleryExecutor,pod:tests.support.pod_executor.PodPerTaskExecutor`` (Postgres, Redis, scheduler,
DAG processor, api-server, one Celery worker), and an "image": a copy of the shop project
(``fixtures/shop``) and, built by ``manifest-dag prepare --dags <the pod DAG's file> --cache-dir
<image>/cache`` while Airflow starts, the venv, ``dbt deps``, the parsed project and the plans;
then ``chmod -R a-w`` (write bits back in teardown). Two DAGs over that project, each its own
DuckDB file, the same selection (seeds, staging models, their tests: ``SELECT``):

- ``shop_warm`` on the CeleryExecutor (the default): one worker, ``worker_concurrency`` 1, warm dbt
  processes on (the default), its state in its own writable folder, the venv from the image;
- ``shop_pod`` with ``executor="pod"`` (``default_args``): every task a brand-new process (``python
  -m airflow.sdk.execution_time.execute_workload --json-string ...``, what the KubernetesExecutor
  runs in a pod) with new empty HOME, TMPDIR and AIRFLOW_HOME, behind ``manifest-dag prestart --``
  (the pod template's ``command:``: it starts the task's warm dbt process from the image while
  Airflow starts; ``MANIFEST_DAG_E2E_PRESTART=0`` leaves it out); the image's cache and plan cache
  from its environment (``MD_POD_ENV``), as a pod template's ``env:`` gives them. The pod's end
  (its init process) takes that dbt process down.

Both DAGs have ``max_active_tasks=1``: DuckDB allows one writer per file, and manifest-dag's
writer lock is per machine (its state folder), which pods do not share; one task at a time also
keeps lock waits out of both sides' figures. Both are triggered at once, so both sides run under
the same load.

The tests check that every task succeeded, that every pod task reused the prepared parse (dbt
skipped parsing), built no venv, read no manifest (the DAG file's ``load_manifest`` watch logs each
read inside a task; the plan comes from the prepared plan cache) and built only its own task,
that nothing under the image changed (``tree_listing``), and report the per-task overhead of each
side: the task's duration in the metadata DB less dbt's own node time (the operator's XCom
``node_seconds``), warm tasks that started a warm process left out (as the Celery test's
``_overheads`` does), the pods' whole process wall time as the executor saw it, the ratios, and
the load average while the DAGs ran.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import statistics
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.support.airflow_run import VENV_REQUIREMENTS
from tests.support.own_venv import chmod_tree, shared_inodes, tree_listing
from tests.support.scheduler_env import CeleryWorker, EnvError, SchedulerEnv, make_root

pytestmark = pytest.mark.e2e

EXECUTORS = "CeleryExecutor,pod:tests.support.pod_executor.PodPerTaskExecutor"
SELECT = ["+stg_orders", "+stg_customers", "+stg_products"]
DAG_IDS = ("shop_warm", "shop_pod")
RUN_TIMEOUT = float(os.environ.get("MANIFEST_DAG_SCHEDULER_TIMEOUT", "1200"))
#: the pod template's command in front of the executor's args: ``manifest-dag prestart --`` (the
#: task's warm dbt process starts from the image while Airflow starts); ``MANIFEST_DAG_E2E_PRESTART=0``
#: runs the pods without it (the task then starts dbt itself, ``MANIFEST_DAG_WARM_PROCESSES=0``)
PRESTART = os.environ.get("MANIFEST_DAG_E2E_PRESTART", "1") != "0"
#: behind prestart, the workload module runs in prestart's own process after its preload (the
#: default); ``MANIFEST_DAG_E2E_PRESTART_IN_PROCESS=0`` makes prestart exec it instead (as before)
IN_PROCESS = os.environ.get("MANIFEST_DAG_E2E_PRESTART_IN_PROCESS", "1") != "0"
IN_PROCESS_LINE = "manifest-dag prestart: running airflow.sdk.execution_time.execute_workload in this process"
SHOP_MANIFEST = REPO / "fixtures" / "manifests" / "shop" / "manifest.json"

#: the head of every generated DAG file: inside a task (a parsing context naming it), count the
#: manifest reads; and after the DAG, what the task's parse built
WATCH = """
from airflow.sdk import get_parsing_context as _e2e_parsing_context

if _e2e_parsing_context().task_id is not None:
    import logging as _e2e_logging

    import manifest_dag.scheduler.manifest as _e2e_manifest

    _e2e_load = _e2e_manifest.load_manifest

    def _e2e_counting_load(path, *args, **kwargs):
        _e2e_logging.getLogger("manifest_dag.e2e").warning("E2E-MANIFEST-READ %s", path)
        return _e2e_load(path, *args, **kwargs)

    _e2e_manifest.load_manifest = _e2e_counting_load
    _e2e_logging.getLogger("manifest_dag.e2e").warning("E2E-MANIFEST-WATCH on")
"""
PROBE = """
if _e2e_parsing_context().task_id is not None:
    _e2e_logging.getLogger("manifest_dag.e2e").warning(
        "E2E-PROBE dag=%s task=%s built=%d planned=%d",
        dag.dag_id, _e2e_parsing_context().task_id, len(dag.task_dict), len(dag.dbt_plan),
    )
"""
DAG_FILE = '''"""{doc}: an Airflow DAG written by tests/e2e/test_e2e_pod_executor.py."""
{watch}
import pendulum
from manifest_dag import DbtDag, ProfileConfig, ProjectConfig, RenderConfig, VenvConfig

dag = DbtDag(
    dag_id={dag_id!r},
    project_config=ProjectConfig(manifest_path={manifest!r}, project_dir={project!r}, install_deps=True,
                                 env_vars={{"SHOP_DUCKDB_PATH": {db!r}}}),
    profile_config=ProfileConfig(profile_name="shop", profiles_yml_path={profiles!r}),
    venv_config=VenvConfig(py_requirements={reqs!r}),
    render_config=RenderConfig(select={select!r}, indirect_selection="cautious", test_behavior="after_each"),
    default_args={default_args!r},
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    max_active_tasks=1,
)
{probe}'''


class LoadSampler(threading.Thread):
    """The 1-minute load average every few seconds while the DAGs run."""

    def __init__(self, every: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.every, self.samples, self._stop_event = every, [], threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop_event.wait(self.every)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


def write_dags(env: SchedulerEnv, project: Path, warehouse: Path) -> dict[str, Path]:
    files = {}
    for dag_id, doc, default_args in (
        ("shop_warm", "The shop on the warm Celery worker", {}),
        ("shop_pod", "The shop, each task in a pod of its own", {"executor": "pod"}),
    ):
        path = env.dags / f"{dag_id}_dag.py"
        path.write_text(
            DAG_FILE.format(
                doc=doc,
                watch=WATCH,
                probe=PROBE,
                dag_id=dag_id,
                manifest=str(SHOP_MANIFEST),
                project=str(project),
                db=str(warehouse / f"{dag_id}.duckdb"),
                profiles=str(project / "profiles.yml"),
                reqs=VENV_REQUIREMENTS,
                select=SELECT,
                default_args=default_args,
            )
        )
        files[dag_id] = path
    return files


def node_seconds(env: SchedulerEnv, runs: dict[str, str]) -> dict[tuple[str, str], float]:
    """{(dag_id, task_id): dbt's node seconds} from each task's XCom summary (the metadata DB)."""
    out = {}
    for dag_id, run_id in runs.items():
        for task_id, value in env.meta(
            f"select task_id, value::text from xcom where dag_id='{dag_id}' and run_id='{run_id}' "
            "and key='return_value' and map_index=-1"
        ):
            summary = json.loads(value)
            while isinstance(summary, str):
                summary = json.loads(summary)
            if isinstance(summary, dict) and summary.get("node_seconds") is not None:
                out[(dag_id, task_id)] = float(summary["node_seconds"])
    return out


def wait_pods(env: SchedulerEnv, records: Path, count: int) -> list[dict]:
    """The executor's record of each pod, once ``count`` pods have ended (a task reports its state
    to the api-server before its pod's processes have exited)."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        found = [json.loads(line) for line in records.read_text().splitlines()] if records.exists() else []
        if len(found) >= count:
            return found
        env._check_alive()
        if time.monotonic() > deadline:
            raise EnvError(f"{count - len(found)} of {count} pods still running after the runs ended: {found}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def deployment():
    started_all = time.monotonic()
    root = make_root("md-podexec-")
    env = SchedulerEnv(root, root / "dags", executor=EXECUTORS)
    worker = env.add_worker("warm", ("default",), concurrency=1)
    image = root / "image"
    cache = image / "cache"
    pods = root / "pods"
    prepare: subprocess.Popen | None = None
    sampler = LoadSampler()
    read_only = False
    try:
        project = image / "shop"
        shutil.copytree(
            REPO / "fixtures" / "shop",
            project,
            ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", "*.duckdb"),
        )
        warehouse = root / "warehouse"  # outside the image: writable
        warehouse.mkdir()
        env.dags.mkdir(parents=True)
        dag_files = write_dags(env, project, warehouse)
        pod_env = {
            "MANIFEST_DAG_VENV_CACHE": str(cache),
            "MANIFEST_DAG_PLAN_CACHE": str(cache / "plans"),
            # behind prestart the task uses the one warm process prestart started; without it a warm
            # process would serve nobody else
            "MANIFEST_DAG_WARM_PROCESSES": "1" if PRESTART else "0",
            "MANIFEST_DAG_PRESTART_IN_PROCESS": "on" if IN_PROCESS else "off",
        }
        env.extra_env.update(MD_POD_ROOT=str(pods), MD_POD_ENV=json.dumps(pod_env), MD_POD_PARALLELISM="2")
        if PRESTART:
            env.extra_env["MD_POD_COMMAND_PREFIX"] = f"{Path(env.python).parent / 'manifest-dag'} prestart --"
        # the warm worker runs from the same image: its venv, read-only; its state its own
        worker.extra_env.update(
            MANIFEST_DAG_VENV_CACHE=str(cache), MANIFEST_DAG_STATE_DIR=str(worker.venv_cache / ".state")
        )
        env.start_postgres()
        # image build: while Airflow starts, as the pods will run (their cache, plan cache, env)
        build_tmp = root / "build-tmp"
        build_tmp.mkdir()
        build_log = root / "prepare.log"
        prepare_started = time.monotonic()
        prepare = subprocess.Popen(
            [
                str(Path(env.python).parent / "manifest-dag"),
                "prepare",
                "--dags",
                str(dag_files["shop_pod"]),
                "--cache-dir",
                str(cache),
            ],
            # UV_LINK_MODE=copy: files of their own, as an image layer has them; uv's default hardlinks
            # share inodes with uv's cache and every other venv built from it, so chmod a-w here would
            # change those (and their owners' chmods would change the image)
            env={**env.env(), **pod_env, "TMPDIR": str(build_tmp), "UV_LINK_MODE": "copy"},
            stdout=build_log.open("w"),
            stderr=subprocess.STDOUT,
            cwd=root,
        )
        env.start_airflow()
        if prepare.wait(timeout=RUN_TIMEOUT) != 0:
            raise EnvError(f"manifest-dag prepare failed:\n{build_log.read_text()[-4000:]}")
        prepare_seconds = time.monotonic() - prepare_started
        linked = shared_inodes(image)
        if linked:
            raise EnvError(
                f"{len(linked)} files of the image share their inode with files outside it, e.g. {linked[:3]}"
            )
        chmod_tree(image, writable=False)
        read_only = True
        before = tree_listing(image)
        env.wait_dags_parsed(list(DAG_IDS))
        setup_seconds = time.monotonic() - started_all
        sampler.start()
        started = time.monotonic()
        runs = env.trigger_many(DAG_IDS)
        states = env.wait_runs(runs, timeout=RUN_TIMEOUT)
        elapsed = time.monotonic() - started
        sampler.stop()
        tis = env.task_instances(runs)
        # a task's state is final before its pod has exited: wait for every pod's record
        pod_records = wait_pods(env, pods / "pods.jsonl", sum(t["dag_id"] == "shop_pod" for t in tis))
        after = tree_listing(image)
        yield dict(
            env=env,
            worker=worker,
            runs=runs,
            states=states,
            tis=tis,
            logs=env.task_logs(),
            nodes=node_seconds(env, runs),
            pods=pod_records,
            pod_root=pods,
            image=(before, after),
            prepare_log=build_log.read_text(errors="replace"),
            prepare_seconds=prepare_seconds,
            setup_seconds=setup_seconds,
            elapsed=elapsed,
            load=list(sampler.samples),
        )
    except EnvError as exc:
        pytest.fail(f"the deployment failed: {exc}")
    finally:
        sampler.stop()
        if prepare is not None and prepare.poll() is None:
            prepare.kill()
            prepare.wait()
        env.stop()
        from manifest_dag.worker.warm import stop_pools

        for state in pods.glob("*/tmp/manifest-dag-*/state"):  # what a pod's init left, if it died
            stop_pools(state)
        if read_only:
            chmod_tree(image, writable=True)
        if os.environ.get("MANIFEST_DAG_KEEP_SCHEDULER_ENV"):
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


# -- helpers ----------------------------------------------------------------------------------------
def _attempt(path: Path) -> tuple[str, str, int]:
    m = re.search(r"dag_id=([^/]+)/run_id=[^/]+/task_id=([^/]+)/(?:.*/)?attempt=(\d+)\.log$", str(path))
    assert m, path
    return m.group(1), m.group(2), int(m.group(3))


def _logs(deployment, dag_id: str) -> dict[str, str]:
    """{task_id: its log's text} of ``dag_id``'s first tries."""
    out = {}
    for path in deployment["logs"]:
        dag, task, attempt = _attempt(path)
        if dag == dag_id and attempt == 1:
            out[task] = path.read_text(errors="replace")
    return out


def _is_cold_start(text: str) -> bool:
    """The warm side's tasks that paid a one-off: a venv build, ``dbt deps``, a warm process start."""
    return any(m in text for m in ("starting a warm dbt process", "creating venv", "dbt deps: installing"))


def _command_seconds(pod_root: Path) -> tuple[float, float]:
    """(how long the pod's command ran, how long the sweep after it took), from pod_init's last line."""
    m = re.search(
        r"exited \(-?\d+\) after ([0-9.]+) s; stopped \d+ process\(es\) it left in ([0-9.]+) s",
        (pod_root / "pod.log").read_text(errors="replace"),
    )
    assert m, pod_root
    return float(m.group(1)), float(m.group(2))


def _phases(pod: dict) -> dict[str, float]:
    """Where a pod's wall time went, from the JSON lines of its output (Airflow's, wall-clock UTC)
    and the executor's record: the start up to Airflow's "Executing workload" (Python, prestart,
    Airflow's imports), the task (its log lines), the supervisor's wait after the task's last line
    up to "Workload finished", and the process's exit after that (interpreter shutdown, the sweep)."""
    stamps: dict[str, float] = {}
    for line in (Path(pod["root"]) / "pod.log").read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        at = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp()
        if entry.get("event") == "Executing workload":
            stamps["workload"] = at
        elif entry.get("event") == "Workload finished":
            stamps["finished"] = at
        elif entry.get("task_id"):
            stamps.setdefault("task_first", at)
            stamps["task_last"] = at
    assert {"workload", "finished", "task_first", "task_last"} <= set(stamps), (pod["root"], stamps)
    return {
        "start_to_workload": stamps["workload"] - pod["started"],
        "task_lines": stamps["task_last"] - stamps["workload"],
        "supervisor_after_task": stamps["finished"] - stamps["task_last"],
        "exit_after_finished": pod["ended"] - stamps["finished"],
    }


def _task_phases(text: str) -> dict[str, float]:
    """Two spans of a task's log (inside the TaskInstance's duration): from the task runner's "Pre
    Execute" to "DAG bundles loaded" (waiting for the supervisor's start message, then the imports
    ``parse()`` makes before the bundle), and from the end of Pre Execute to the operator's first
    line (the listeners, the templates, ``execute``'s imports)."""
    stamps: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        at = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp()
        event, logger = str(entry.get("event")), str(entry.get("logger"))
        if event == "::group::Pre Execute":
            stamps.setdefault("pre", at)
        elif event.startswith("DAG bundles loaded"):
            stamps.setdefault("bundles", at)
        elif event == "::endgroup::":
            stamps.setdefault("endgroup", at)
        elif "operators" in logger:
            stamps.setdefault("operator", at)
    if not {"pre", "bundles", "endgroup", "operator"} <= set(stamps):
        return {}
    return {
        "pre_execute_to_bundles_loaded": stamps["bundles"] - stamps["pre"],
        "pre_execute_end_to_operator": stamps["operator"] - stamps["endgroup"],
    }


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


# -- the tests --------------------------------------------------------------------------------------
def test_every_task_of_both_dags_succeeded_on_its_executor(deployment) -> None:
    assert deployment["states"] == dict.fromkeys(DAG_IDS, "success"), deployment["states"]
    tis = deployment["tis"]
    not_ok = {(t["dag_id"], t["task_id"]): t["state"] for t in tis if t["state"] != "success"}
    assert not not_ok, not_ok
    by_dag = {d: sorted(t["task_id"] for t in tis if t["dag_id"] == d) for d in DAG_IDS}
    assert by_dag["shop_warm"] == by_dag["shop_pod"] and len(by_dag["shop_pod"]) >= 10, by_dag
    assert all(t["try_number"] == 1 for t in tis)
    # each pod ran one task, its exit code 0; no warm task ran in a pod, no pod task on the worker
    pods = deployment["pods"]
    assert sorted(p["task_id"] for p in pods) == by_dag["shop_pod"], ([p["task_id"] for p in pods], by_dag)
    assert {p["dag_id"] for p in pods} == {"shop_pod"} and all(p["exit_code"] == 0 for p in pods), pods
    assert len({p["root"] for p in pods}) == len(pods)
    worker: CeleryWorker = deployment["worker"]
    for path in deployment["logs"]:
        dag_id = _attempt(path)[0]
        assert path.is_relative_to(worker.logs) == (dag_id == "shop_warm"), path


def test_each_pod_task_ran_in_a_fresh_process_with_empty_folders(deployment) -> None:
    """The pod's command is Airflow's own workload runner; HOME, TMPDIR and AIRFLOW_HOME were new
    (the task's state went into that TMPDIR, not into the image)."""
    logs = _logs(deployment, "shop_pod")
    for pod in deployment["pods"]:
        assert pod["command"][-2:] == ["airflow.sdk.execution_time.execute_workload", "--json-string"], pod
        tmp = Path(pod["root"]) / "tmp"
        text = logs[pod["task_id"]]
        assert f"is read-only here: this task keeps its state under {tmp}/" in text, (pod, text[-3000:])
        assert list(tmp.glob("manifest-dag-*/state")), pod
        pod_log = (Path(pod["root"]) / "pod.log").read_text(errors="replace")
        if PRESTART:  # the pod template's command: prestart started the task's dbt process ...
            assert pod["command"][1:3] == ["prestart", "--"], pod
            assert "manifest-dag prestart: started warm dbt process" in pod_log, pod_log[-3000:]
            # ... and ran Airflow's workload module in its own process after the preload (no exec),
            # before Airflow's first line; or, switched off, exec'd it
            if IN_PROCESS:
                assert IN_PROCESS_LINE in pod_log, pod_log[-3000:]
                assert pod_log.index(IN_PROCESS_LINE) < pod_log.index('"Executing workload"'), pod_log[:3000]
            else:
                assert "MANIFEST_DAG_PRESTART_IN_PROCESS is off: running the command with exec" in pod_log
            assert "warm dbt: running in warm process" in text and "starting a warm dbt process" not in text, text[
                -3000:
            ]
            # ... and the pod's end took it down (pod_init's sweep)
            assert re.search(r"pod_init: the pod's command exited \(0\) after [0-9.]+ s; stopped [1-9]", pod_log), (
                pod_log[-3000:]
            )
        else:
            assert "warm dbt" not in text and "manifest-dag prestart" not in pod_log


def test_pod_tasks_used_the_prepared_image_as_is(deployment) -> None:
    """Each pod task reused the prepared parse (dbt skipped parsing), built no venv, installed no
    packages and read no manifest (its plan came from the prepared plan cache), and its parse
    built its own task only."""
    assert "prepared 1 of 1 parse states and 1 venvs" in deployment["prepare_log"], deployment["prepare_log"][-3000:]
    logs = _logs(deployment, "shop_pod")
    assert len(logs) == len(deployment["pods"]), sorted(logs)
    probe = re.compile(r"E2E-PROBE dag=(\S+) task=(\S+) built=(\d+) planned=(\d+)")
    for task_id, text in logs.items():
        where = f"shop_pod.{task_id}:\n{text[-3000:]}"
        assert "partial parse: reusing the prepared copy" in text, where
        assert "Partial parsing enabled, no changes found, skipping parsing" in text, where
        assert "Unable to do partial parsing" not in text and "partial parse was not reused" not in text, where
        assert "dbt deps: using the packages prepared in" in text, where
        assert "creating venv" not in text and "dbt deps: installing" not in text, where
        assert "E2E-MANIFEST-WATCH on" in text, where  # the watch was armed in this task's parse ...
        assert "E2E-MANIFEST-READ" not in text, where  # ... and saw no manifest read
        found = probe.findall(text)
        assert found and all(int(built) == 1 for *_, built, _planned in found), (task_id, found)


def test_nothing_under_the_read_only_image_changed(deployment) -> None:
    before, after = deployment["image"]
    # it really was read-only: no write bit on anything but symlinks
    assert before and all(mode & 0o222 == 0 for mode, _, _ in before.values() if not stat.S_ISLNK(mode))
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    assert not changed, changed[:20]


def test_the_warm_worker_ran_its_tasks_in_one_warm_process(deployment) -> None:
    logs = _logs(deployment, "shop_warm")
    started = [t for t, text in logs.items() if "starting a warm dbt process" in text]
    warm = [t for t, text in logs.items() if "running in warm process" in text]
    assert len(started) == 1 and len(warm) >= len(logs) - 1, (started, warm)
    assert not [t for t, text in logs.items() if "creating venv" in text]  # the image's venv


def test_report_figures(deployment) -> None:
    tis = {(t["dag_id"], t["task_id"]): t for t in deployment["tis"]}
    nodes = deployment["nodes"]
    pods = {p["task_id"]: p for p in deployment["pods"]}
    per: dict[str, dict] = {}
    for dag_id in DAG_IDS:
        logs = _logs(deployment, dag_id)
        durations, overheads, walls, skipped = [], [], [], []
        for task_id, text in sorted(logs.items()):
            if dag_id == "shop_warm" and _is_cold_start(text):
                skipped.append(task_id)
                continue
            ti, node = tis[(dag_id, task_id)], nodes.get((dag_id, task_id))
            assert ti["start"] is not None and ti["end"] is not None and node is not None, (dag_id, task_id, ti, node)
            durations.append(ti["end"] - ti["start"])
            overheads.append(ti["end"] - ti["start"] - node)
            if dag_id == "shop_pod":
                walls.append(pods[task_id]["wall_seconds"] - node)
        spans = [ph for task_id, text in logs.items() if task_id not in skipped and (ph := _task_phases(text))]
        per[dag_id] = {
            "tasks": len(logs),
            "measured": len(overheads),
            "left_out_cold_starts": skipped,
            "median_task_seconds": _median(durations),
            "median_overhead_seconds": _median(overheads),
            "median_task_log_spans_seconds": {name: _median([ph[name] for ph in spans]) for name in spans[0]}
            if spans
            else None,
        }
        if walls:
            per[dag_id]["median_pod_process_wall_less_node_seconds"] = _median(walls)
            per[dag_id]["median_pod_process_wall_seconds"] = _median([p["wall_seconds"] for p in pods.values()])
            ran = [_command_seconds(Path(p["root"])) for p in pods.values()]
            per[dag_id]["median_pod_command_seconds"] = _median([r[0] for r in ran])  # without the sweep
            per[dag_id]["median_pod_sweep_seconds"] = _median([r[1] for r in ran])
            if PRESTART and IN_PROCESS:  # prestart's imports before the workload (Airflow's included)
                preloads = [
                    float(m.group(1))
                    for p in pods.values()
                    if (m := re.search(r"modules preloaded in ([0-9.]+) s", (Path(p["root"]) / "pod.log").read_text()))
                ]
                per[dag_id]["median_prestart_preload_seconds"] = _median(preloads)
            phases = [_phases(p) for p in pods.values()]
            # the same without the supervisor's 0-or-5 s wait after the task (Airflow's; it swamps the rest)
            per[dag_id]["median_pod_process_wall_less_node_and_supervisor_wait_seconds"] = _median(
                [p["wall_seconds"] - nodes[(dag_id, t)] - _phases(p)["supervisor_after_task"] for t, p in pods.items()]
            )
            per[dag_id]["median_pod_phases_seconds"] = {
                name: _median([ph[name] for ph in phases]) for name in phases[0]
            }
            # Airflow's supervisor may notice its task process's exit only at its next wake-up
            per[dag_id]["pods_whose_supervisor_waited_over_4s_after_the_task"] = sum(
                ph["supervisor_after_task"] > 4 for ph in phases
            )
    warm, pod = per["shop_warm"], per["shop_pod"]
    assert warm["measured"] >= 5 and pod["measured"] == pod["tasks"], per
    load = deployment["load"]
    figures = {
        "executors": EXECUTORS,
        "warm_side": "CeleryExecutor, one worker, worker_concurrency 1, warm dbt processes on",
        "pod_side": "PodPerTaskExecutor: python -m airflow.sdk.execution_time.execute_workload per task, "
        "new HOME/TMPDIR/AIRFLOW_HOME, the prepared image read-only, "
        + (
            "behind manifest-dag prestart" + (" (workload in its process)" if IN_PROCESS else " (exec)")
            if PRESTART
            else "no prefix, MANIFEST_DAG_WARM_PROCESSES=0"
        ),
        "per_dag": per,
        "ratio_pod_over_warm_task_overhead": round(pod["median_overhead_seconds"] / warm["median_overhead_seconds"], 2),
        "ratio_pod_process_over_warm_task_overhead": round(
            pod["median_pod_process_wall_less_node_seconds"] / warm["median_overhead_seconds"], 2
        ),
        "load_avg_1m_while_running": {
            "mean": round(statistics.mean(load), 1),
            "max": round(max(load), 1),
            "samples": len(load),
        }
        if load
        else None,
        "cpus": os.cpu_count(),
        "prepare_seconds": round(deployment["prepare_seconds"], 1),
        "setup_seconds": round(deployment["setup_seconds"], 1),
        "wall_seconds_trigger_to_done": round(deployment["elapsed"], 1),
    }
    print("\npod executor figures: " + json.dumps(figures, indent=2))
