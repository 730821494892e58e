"""``manifest-dag prestart`` runs Airflow's workload module in its own process (issue 20).

Recognition is exact (this interpreter, ``-m``, the module), anything else and any failure to
preload runs the command with ``exec`` as before, and the module runs as ``python -m`` would run it:
the same process (so the same pid gets the pod's signals), its argv, its exit code. The processes
here run a stand-in for the workload module (a small module that reports where it ran), named in
place of Airflow's through ``WORKLOAD_MODULE``, so both paths are seen from the inside; one test
runs Airflow's real module in-process with a workload it rejects. The real thing through the
scheduler is tests/e2e/test_e2e_pod_executor.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from manifest_dag.cli import workload_in_process as wip
from tests.conftest import REPO

#: the stand-in for Airflow's workload module: where it ran, its argv, then what its args ask
FAKE_WORKLOAD = """
import json, os, signal, sys, time
report = {
    "pid": os.getpid(),
    "argv": sys.argv,
    "path0": sys.path[0],
    "name": __name__,
    "in_prestart": "manifest_dag.cli.prestart" in sys.modules,
    "preloaded": "manifest_dag.worker.run" in sys.modules,
}
with open(os.environ["FAKE_REPORT"], "w") as fh:
    json.dump(report, fh)
what = sys.argv[1]
if what == "exit":
    sys.exit(int(sys.argv[2]))
if what == "raise":
    raise RuntimeError("the workload broke")
if what == "sigterm":
    def stop(signum, frame):
        open(os.environ["FAKE_REPORT"] + ".term", "w").write(str(os.getpid()))
        sys.exit(143)
    signal.signal(signal.SIGTERM, stop)
    open(os.environ["FAKE_REPORT"] + ".ready", "w").close()
    time.sleep(60)
"""

#: runs ``manifest-dag prestart`` with the stand-in named as the workload module (and PRELOAD patched)
RUNNER = """
import json, sys
from manifest_dag.cli import workload_in_process as wip
from manifest_dag.cli.app import main
wip.WORKLOAD_MODULE = "fake_workload"
extra = json.loads(sys.argv[1])
if extra is not None:
    wip.PRELOAD = (*wip.PRELOAD, (extra, "a test's"))
sys.exit(main(["prestart", "--", *sys.argv[2:]]))
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "fake_workload.py").write_text(FAKE_WORKLOAD)
    (folder / "starts_a_thread.py").write_text(
        "import threading\nDONE = threading.Event()\nthreading.Thread(target=DONE.wait, name='lingering', "
        "daemon=True).start()\n"
    )
    return folder


def _popen(tmp_path: Path, site: Path, *command: str, extra: str | None = None, env: dict[str, str] | None = None):
    full = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(site)]),
        "MANIFEST_DAG_VENV_CACHE": str(tmp_path / "no-image"),
        "TMPDIR": str(tmp_path),
        "FAKE_REPORT": str(tmp_path / "report.json"),
        **(env or {}),
    }
    full.pop("MANIFEST_DAG_PRESTART_IN_PROCESS", None)
    full.update(env or {})
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER, json.dumps(extra), *command],
        env=full,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(tmp_path: Path, site: Path, *args: str, **kwargs) -> tuple[int, str, dict, int]:
    proc = _popen(tmp_path, site, sys.executable, "-m", "fake_workload", *args, **kwargs)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err, json.loads((tmp_path / "report.json").read_text()), proc.pid


# -- recognition --------------------------------------------------------------------------------------
def test_only_this_interpreter_running_the_workload_module_is_recognised(tmp_path: Path) -> None:
    module = wip.WORKLOAD_MODULE
    assert wip.workload_args([sys.executable, "-m", module, "--json-string", "{}"]) == ["--json-string", "{}"]
    assert wip.workload_args([sys.executable, "-m", module]) == []
    # interpreter options, another module, another program, too short: exec as given
    assert wip.workload_args([sys.executable, "-u", "-m", module, "--json-string", "{}"]) is None
    assert wip.workload_args([sys.executable, "-m", "airflow", "tasks", "run"]) is None
    assert wip.workload_args(["airflow", "tasks", "run", "d", "t"]) is None
    assert wip.workload_args([sys.executable, "-m"]) is None
    # the same binary from another folder is another environment (a venv is its folder)
    elsewhere = tmp_path / "bin"
    elsewhere.mkdir()
    (elsewhere / "python").symlink_to(os.path.realpath(sys.executable))
    assert wip.workload_args([str(elsewhere / "python"), "-m", module]) is None
    assert wip.workload_args([str(tmp_path / "missing" / "python"), "-m", module]) is None


def test_a_bare_name_is_looked_up_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here = os.path.dirname(os.path.abspath(sys.executable))
    name = os.path.basename(sys.executable)
    monkeypatch.setenv("PATH", here)
    assert wip.workload_args([name, "-m", wip.WORKLOAD_MODULE, "--json-path", "w.json"]) == ["--json-path", "w.json"]
    monkeypatch.setenv("PATH", str(tmp_path))
    assert wip.workload_args([name, "-m", wip.WORKLOAD_MODULE]) is None


# -- the hand-over --------------------------------------------------------------------------------------
def test_the_workload_runs_in_prestarts_own_process_as_python_m_would(tmp_path: Path, site: Path) -> None:
    code, err, report, pid = _run(tmp_path, site, "exit", "0")
    assert code == 0, err
    assert "manifest-dag prestart: running fake_workload in this process" in err, err
    assert report["pid"] == pid  # the process the pod started: it gets the pod's signals
    assert report["in_prestart"] and report["preloaded"]  # not a new interpreter: the preload is there
    assert report["name"] == "__main__"
    assert report["argv"] == [str(site / "fake_workload.py"), "exit", "0"]  # as -m sets it
    assert report["path0"] == str(tmp_path / "work")  # -m puts the working folder first


@pytest.mark.parametrize(("args", "expected"), [(("exit", "7"), 7), (("exit", "0"), 0), (("raise",), 1)])
def test_the_workloads_exit_code_is_the_processs(tmp_path: Path, site: Path, args: tuple[str, ...], expected: int):
    code, err, report, _ = _run(tmp_path, site, *args)
    assert code == expected, err
    assert report["in_prestart"]
    if args[0] == "raise":  # reported as the interpreter reports an uncaught exception
        assert "Traceback (most recent call last)" in err and "RuntimeError: the workload broke" in err, err
        assert "manifest-dag: error" not in err


def test_sigterm_to_the_pods_process_reaches_the_workload(tmp_path: Path, site: Path) -> None:
    proc = _popen(tmp_path, site, sys.executable, "-m", "fake_workload", "sigterm")
    ready = tmp_path / "report.json.ready"
    deadline = time.monotonic() + 60
    while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists(), proc.communicate()[1]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert (tmp_path / "report.json.term").read_text() == str(proc.pid)


@pytest.mark.parametrize(
    ("extra", "env", "said"),
    [
        ("no_such_module_here", {}, "importing no_such_module_here failed (ModuleNotFoundError"),
        ("starts_a_thread", {}, "a thread runs after the imports (lingering)"),
        (None, {"MANIFEST_DAG_PRESTART_IN_PROCESS": "off"}, "MANIFEST_DAG_PRESTART_IN_PROCESS is off"),
    ],
)
def test_a_failed_preload_or_the_switch_runs_the_command_with_exec(
    tmp_path: Path, site: Path, extra: str | None, env: dict[str, str], said: str
) -> None:
    code, err, report, pid = _run(tmp_path, site, "exit", "5", extra=extra, env=env)
    assert code == 5, err
    assert f"manifest-dag prestart: {said}" in err and "running the command with exec" in err, err
    assert report["pid"] == pid  # exec: the same process ...
    assert not report["in_prestart"] and not report["preloaded"]  # ... a new interpreter


def test_the_workload_module_on_another_python_is_execd_saying_why(tmp_path: Path, site: Path) -> None:
    elsewhere = tmp_path / "bin"
    elsewhere.mkdir()
    (elsewhere / "python").symlink_to(os.path.realpath(sys.executable))
    proc = _popen(tmp_path, site, str(elsewhere / "python"), "-m", "fake_workload", "exit", "6")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 6, err
    assert f"{elsewhere / 'python'} is not the Python manifest-dag runs on" in err, err
    assert "running the command with exec" in err
    assert not json.loads((tmp_path / "report.json").read_text())["in_prestart"]


def test_another_command_is_execd_without_a_word(tmp_path: Path, site: Path) -> None:
    proc = _popen(tmp_path, site, sys.executable, "-u", "-m", "fake_workload", "exit", "4")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 4, err
    assert "in this process" not in err and "with exec" not in err, err
    assert not json.loads((tmp_path / "report.json").read_text())["in_prestart"]


def test_airflows_workload_module_runs_in_process_and_its_exit_code_comes_back(tmp_path: Path) -> None:
    """The real module, handed a workload it rejects: its error and exit code, from prestart's process."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "MANIFEST_DAG_VENV_CACHE": str(tmp_path / "no-image"),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "TMPDIR": str(tmp_path),
    }
    env.pop("MANIFEST_DAG_PRESTART_IN_PROCESS", None)
    done = subprocess.run(
        [sys.executable, "-m", "manifest_dag.cli", "prestart", "--", sys.executable, "-m", wip.WORKLOAD_MODULE,
         "--json-string", "not a workload"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert f"running {wip.WORKLOAD_MODULE} in this process ({len(wip.PRELOAD)} modules preloaded" in done.stderr
    assert "Failed to parse input JSON string" in done.stdout + done.stderr, (done.stdout, done.stderr)


def test_the_preload_list_names_importable_modules_with_reasons() -> None:
    names = [name for name, _ in wip.PRELOAD]
    assert len(set(names)) == len(names) and wip.WORKLOAD_MODULE not in names  # runpy runs it fresh
    assert all(why for _, why in wip.PRELOAD)
    done = subprocess.run(
        [sys.executable, "-c", "import importlib, sys, threading\n"
         f"for n in {names!r}: importlib.import_module(n)\nprint(threading.active_count())"],
        env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "1"  # importing them starts no thread
