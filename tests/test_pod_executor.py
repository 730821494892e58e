"""The pod-per-task executor of the e2e tests (``tests/support/pod_executor.py``) and its pods' init
process (``pod_init.py``), without a deployment: real processes, a command prefix standing in
for the workload runner, Airflow's own workload model and executor interface."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support.pod_executor import POD_INIT, WORKLOAD_MODULE, PodPerTaskExecutor
from tests.support.scheduler_env import SchedulerEnv, executor_classes

#: the "pod template's command": notes what the pod saw, then exits with the code its task id names
PROBE = (
    "import json, os, sys; args = sys.argv[1:]; work = json.loads(args[args.index('--json-string') + 1]); "
    "open(os.environ['PROBE_OUT'] + '/' + work['ti']['task_id'] + '.json', 'w').write(json.dumps({"
    "'args': args[:4], 'home': os.environ['HOME'], 'tmp': os.environ['TMPDIR'], "
    "'airflow_home': os.environ['AIRFLOW_HOME'], 'extra': os.environ.get('FROM_IMAGE'), "
    "'home_empty': os.listdir(os.environ['HOME']) == [] and os.listdir(os.environ['TMPDIR']) == [], "
    "'settings': sorted(k for k in os.environ if k.startswith('MD_POD_') and k != 'MD_POD_NAME')})); "
    "sys.exit(int(work['ti']['task_id'].rsplit('_', 1)[-1]))"
)


def _workload(task_id: str):
    from airflow.executors.workloads import ExecuteTask

    return ExecuteTask.model_validate({
        "ti": {"id": str(uuid.uuid4()), "dag_version_id": str(uuid.uuid4()), "task_id": task_id, "dag_id": "d",
               "run_id": "r", "try_number": 1, "map_index": -1, "pool_slots": 1, "priority_weight": 1,
               "queue": "default"},
        "dag_rel_path": "d.py", "bundle_info": {"name": "dags-folder", "version": None}, "token": "tok",
        "log_path": "d/r/t.log",
    })  # fmt: skip


def test_each_workload_runs_in_a_new_pod_at_most_parallelism_at_once(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("MD_POD_ROOT", str(tmp_path / "pods"))
    monkeypatch.setenv("MD_POD_COMMAND_PREFIX", f"{sys.executable} -c {json.dumps(PROBE)}")
    monkeypatch.setenv("MD_POD_ENV", json.dumps({"FROM_IMAGE": "yes"}))
    monkeypatch.setenv("MD_POD_PARALLELISM", "2")
    monkeypatch.setenv("PROBE_OUT", str(out))
    executor = PodPerTaskExecutor()
    executor.start()
    assert executor.parallelism == 2
    workloads = {t: _workload(t) for t in ("ok_0", "bad_3", "later_0")}
    for w in workloads.values():
        executor.queue_workload(w, session=None)
    executor.heartbeat()  # two slots: two pods start, the third task waits
    assert len(executor.running) == 2 and len(executor.queued_tasks) == 1
    events: dict = {}
    deadline = time.monotonic() + 60
    while len(events) < 3 and time.monotonic() < deadline:
        executor.heartbeat()
        events.update(executor.get_event_buffer())
        time.sleep(0.05)
    executor.end()
    states = {key.task_id: str(state) for key, (state, _info) in events.items()}
    assert states == {"ok_0": "success", "bad_3": "failed", "later_0": "success"}, states
    records = {r["task_id"]: r for r in map(json.loads, (tmp_path / "pods" / "pods.jsonl").read_text().splitlines())}
    assert {t: r["exit_code"] for t, r in records.items()} == {"ok_0": 0, "bad_3": 3, "later_0": 0}
    assert all(r["wall_seconds"] > 0 and r["ended"] >= r["started"] for r in records.values())
    for task_id, record in records.items():
        seen = json.loads((out / f"{task_id}.json").read_text())
        root = Path(record["root"])
        # the prefix wraps Airflow's workload runner, whose arguments follow it unchanged
        assert seen["args"] == [sys.executable, "-m", WORKLOAD_MODULE, "--json-string"], seen
        assert record["command"][-3:] == ["-m", WORKLOAD_MODULE, "--json-string"], record
        assert "tok" not in json.dumps(record)  # the workload (the task's token) is not recorded
        assert (seen["home"], seen["tmp"], seen["airflow_home"]) == tuple(str(root / d) for d in ("home", "tmp", "airflow"))
        assert seen["home_empty"] and seen["extra"] == "yes" and seen["settings"] == [], seen
    assert len({r["root"] for r in records.values()}) == 3


def _sleeper_pod(pid_file: Path, code: int) -> list[str]:
    """A pod whose command leaves a process in a session of its own (as a warm dbt process is)."""
    script = f'setsid sh -c \'echo $$ > "$1"; exec sleep 300\' sh "$1" & while [ ! -s "$1" ]; do sleep 0.05; done; exit {code}'
    return [sys.executable, str(POD_INIT), "--", "sh", "-c", script, "sh", str(pid_file)]


def test_pod_init_returns_the_commands_code_and_stops_what_it_left(tmp_path: Path) -> None:
    pid_file = tmp_path / "left.pid"
    done = subprocess.run(_sleeper_pod(pid_file, 3), capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    left = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(left, 0)  # gone and reaped, though it had left the pod's session
    assert re.search(rf"command exited \(3\) after [0-9.]+ s; stopped 1 process\(es\) it left in [0-9.]+ s: \[{left}\]",
                     done.stderr), done.stderr


def test_pod_init_passes_sigterm_on_and_still_sweeps(tmp_path: Path) -> None:
    pid_file = tmp_path / "left.pid"
    argv = _sleeper_pod(pid_file, 0)
    argv[-3] = argv[-3].replace("exit 0", "exec sleep 300")  # the command itself runs on until stopped
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + 15, err  # the command died of the SIGTERM it was passed
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_several_executors_in_core_executor(tmp_path: Path) -> None:
    both = "CeleryExecutor,pod:tests.support.pod_executor.PodPerTaskExecutor"
    assert executor_classes(both) == ["CeleryExecutor", "PodPerTaskExecutor"]
    assert executor_classes("LocalExecutor") == ["LocalExecutor"]
    assert SchedulerEnv(tmp_path, tmp_path / "dags", executor=both).uses_celery
    assert SchedulerEnv(tmp_path, tmp_path / "dags", executor="CeleryExecutor").uses_celery
    assert not SchedulerEnv(tmp_path, tmp_path / "dags", executor="LocalExecutor,pod:x.PodExec").uses_celery


def test_end_stops_the_pods_still_running(tmp_path: Path, monkeypatch) -> None:
    """The scheduler stopping (``end``) takes its running pods down, and what they left."""
    pid_file = tmp_path / "left.pid"
    monkeypatch.setenv("MD_POD_ROOT", str(tmp_path / "pods"))
    script = f'setsid sh -c \'echo $$ > {pid_file}; exec sleep 300\' & exec sleep 300'
    monkeypatch.setenv("MD_POD_COMMAND_PREFIX", f"sh -c {json.dumps(script)}")
    executor = PodPerTaskExecutor()
    executor.start()
    executor.queue_workload(_workload("slow_0"), session=None)
    executor.heartbeat()
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    executor.end()
    assert time.monotonic() - started < 15
    events = executor.get_event_buffer()
    assert [(key.task_id, str(state)) for key, (state, _info) in events.items()] == [("slow_0", "failed")]
    record = json.loads((tmp_path / "pods" / "pods.jsonl").read_text())
    assert record["exit_code"] == 128 + 15, record  # SIGTERM, passed on by pod_init
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)
