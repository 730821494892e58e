"""Issue 21 item 7: stopping a task lets dbt cancel its queries, cold and warm (no dbt here).

dbt cancels its open queries when it gets SIGINT (``KeyboardInterrupt`` in its main thread); a
SIGTERM or SIGKILL ends it with its queries still running on the warehouse. So every way a task
stops dbt sends SIGINT first. Here stand-ins take dbt's place: a child that records which signal
ended it, and, for the warm path, the real ``in_venv/dbt_server.py`` serving a fake ``dbt``
package whose runner "runs a query" until interrupted, as dbt's runner would cancel it. The real
cancel on Postgres is tested with real dbt in tests/e2e/test_e2e_cancel.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from manifest_dag.worker import processes
from manifest_dag.worker.invokers import SubprocessInvoker
from manifest_dag.worker.processes import ChildProcess
from manifest_dag.worker.warm import SERVER, WarmInvoker, WarmSettings, _is_our_server, _stop

#: a stand-in for dbt: says which signal reached it; ``ignore`` names signals it shrugs off
CHILD = """
import signal, sys, time
out, ignore = sys.argv[1], sys.argv[2].split(",")
def caught(signum, frame):
    with open(out, "a") as fh:
        fh.write(signal.Signals(signum).name + "\\n")
    if signal.Signals(signum).name not in ignore:
        sys.exit(130)
for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, caught)
print("started", flush=True)
time.sleep(60)
"""


def _child(tmp_path: Path, ignore: str = "") -> tuple[ChildProcess, Path]:
    marker = tmp_path / "signals.txt"
    child = ChildProcess([sys.executable, "-c", CHILD, str(marker), ignore], env={}, cwd=tmp_path)
    assert child._proc.stdout is not None
    assert child._proc.stdout.readline().strip() == "started"
    return child, marker


def _signals(marker: Path) -> list[str]:
    return marker.read_text().split() if marker.exists() else []


def test_stop_interrupts_first_so_dbt_can_cancel(tmp_path: Path) -> None:
    child, marker = _child(tmp_path)
    child.stop()
    assert child._proc.wait(timeout=5) == 130
    assert _signals(marker) == ["SIGINT"]


def test_stop_escalates_to_sigterm_then_sigkill(tmp_path: Path) -> None:
    (tmp_path / "term").mkdir()
    (tmp_path / "kill").mkdir()
    child, marker = _child(tmp_path / "term", ignore="SIGINT")
    child.stop(interrupt_grace=0.3, term_grace=0.3)
    assert child._proc.wait(timeout=5) == 130 and _signals(marker) == ["SIGINT", "SIGTERM"]
    stubborn, marker = _child(tmp_path / "kill", ignore="SIGINT,SIGTERM")
    stubborn.stop(interrupt_grace=0.3, term_grace=0.3)
    assert stubborn._proc.wait(timeout=5) == -signal.SIGKILL and _signals(marker) == ["SIGINT", "SIGTERM"]


def test_the_default_graces_fit_in_airflows_five_seconds() -> None:
    """Airflow's supervisor SIGKILLs the task process 5 s after its SIGTERM (which calls on_kill)."""
    assert processes.INTERRUPT_GRACE + processes.TERM_GRACE < 5.0


def test_on_kill_of_the_cold_path_interrupts_dbt(tmp_path: Path) -> None:
    marker = tmp_path / "signals.txt"
    invoker = SubprocessInvoker()
    lines: list[str] = []
    done: dict[str, int] = {}
    thread = threading.Thread(
        target=lambda: done.setdefault(
            "code",
            invoker.invoke([sys.executable, "-c", CHILD, str(marker), ""], cwd=tmp_path, env={}, on_line=lines.append),
        )
    )
    thread.start()
    deadline = time.monotonic() + 20
    while "started" not in lines and time.monotonic() < deadline:
        time.sleep(0.05)
    invoker.kill()
    thread.join(timeout=10)
    assert done == {"code": 130} and _signals(marker) == ["SIGINT"]


def test_an_interrupted_stream_interrupts_dbt_before_it_propagates(tmp_path: Path) -> None:
    """Airflow's execution timeout raises in the task's main thread while it reads dbt's lines."""
    marker = tmp_path / "signals.txt"
    child = ChildProcess([sys.executable, "-c", CHILD + "print('more', flush=True)\n", str(marker), ""], env={})

    def on_line(line: str) -> None:
        if line == "started":
            raise KeyboardInterrupt  # what AirflowTaskTimeout (a BaseException) does here

    with pytest.raises(KeyboardInterrupt):
        child.stream(on_line)
    assert child._proc.returncode == 130 and _signals(marker) == ["SIGINT"]


@pytest.mark.skipif(not processes.parent_death_supported(), reason="needs Linux's libc")
def test_dbt_gets_sigints_default_even_where_the_task_ignores_it(tmp_path: Path) -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # nohup, a shell's background job
    try:
        lines: list[str] = []
        probe = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
        ChildProcess([sys.executable, "-c", probe], env={}).stream(lines.append)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert lines == ["True"]


# -- the warm path ------------------------------------------------------------------------------------
FAKE_RUNNER = '''
import os, time


class dbtRunnerResult:
    def __init__(self, result=None, success=False, exception=None):
        self.result, self.success, self.exception = result, success, exception


class dbtRunner:
    """Runs a "query" for a minute; on KeyboardInterrupt it cancels it, as dbt's runner does."""

    def __init__(self, manifest=None, callbacks=()):
        self.callbacks = callbacks

    def invoke(self, args):
        marker = os.environ["FAKE_DBT_MARKER"]
        with open(marker, "a") as fh:
            fh.write(f"started {os.getpid()}\\n")
        try:
            time.sleep(float(os.environ.get("FAKE_DBT_SECONDS", "60")))
        except KeyboardInterrupt as exc:  # dbt: _cancel_connections, then re-raise (returned by invoke)
            with open(marker, "a") as fh:
                fh.write("cancelled\\n")
            return dbtRunnerResult(exception=exc)
        return dbtRunnerResult(success=True)
'''


def _fake_dbt(root: Path) -> Path:
    pkg = root / "fake_site" / "dbt" / "cli"
    pkg.mkdir(parents=True)
    (pkg.parent / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "main.py").write_text(FAKE_RUNNER)
    return root / "fake_site"


def _warm(tmp_path: Path) -> tuple[WarmInvoker, Path]:
    pool = tmp_path / "pool"
    pool.mkdir()
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(_fake_dbt(tmp_path))}
    settings = WarmSettings(processes=1, keep_project=False, start_timeout=60)
    return WarmInvoker(Path(sys.executable), env, pool, settings, lambda line: None), tmp_path / "dbt.txt"


def _wait_for(marker: Path, word: str, seconds: float = 30) -> list[str]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = marker.read_text() if marker.exists() else ""
        if word in text:
            return text.split()
        time.sleep(0.05)
    raise AssertionError(f"{word!r} never reached {marker}: {marker.read_text() if marker.exists() else ''!r}")


def _gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _is_our_server(pid):
            return True
        time.sleep(0.05)
    return False


def test_on_kill_of_the_warm_path_cancels_the_invocation_and_retires_the_process(tmp_path: Path) -> None:
    warm, marker = _warm(tmp_path)
    lines: list[str] = []
    done: dict[str, int] = {}
    argv = ["dbt", "run", "--select", "orders"]
    thread = threading.Thread(
        target=lambda: done.setdefault(
            "code", warm.invoke(argv, cwd=tmp_path, env={"FAKE_DBT_MARKER": str(marker)}, on_line=lines.append)
        )
    )
    thread.start()
    pid = int(_wait_for(marker, "started")[1])
    started = time.monotonic()
    warm.kill()
    thread.join(timeout=10)
    assert time.monotonic() - started < 3, "SIGINT alone should have ended it"
    assert _wait_for(marker, "cancelled")[-1] == "cancelled"
    assert done == {"code": 2}
    assert any("interrupted: the task was stopped" in line for line in lines), lines
    assert _gone(pid), "an interrupted warm process retires"


def test_a_task_that_dies_mid_run_has_its_invocation_cancelled(tmp_path: Path) -> None:
    """The task process SIGKILLed: its end of the socket closes, and the server interrupts itself."""
    warm, marker = _warm(tmp_path)
    warm._start(0)
    sock_path = warm._paths(0)[1]
    pid = warm._pid(0)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(sock_path))
    request = {"args": ["run"], "cwd": str(tmp_path), "env": {"FAKE_DBT_MARKER": str(marker)}}
    sock.sendall(json.dumps(request).encode() + b"\n")
    _wait_for(marker, "started")
    sock.close()  # what the kernel does for a killed task
    assert _wait_for(marker, "cancelled", seconds=10)[-1] == "cancelled"
    assert _gone(pid)


def test_a_finished_invocation_is_not_cancelled_when_the_task_hangs_up(tmp_path: Path) -> None:
    warm, marker = _warm(tmp_path)
    env = {"FAKE_DBT_MARKER": str(marker), "FAKE_DBT_SECONDS": "0"}
    for _ in range(2):  # the same warm process serves both: hanging up after the reply is normal
        assert warm.invoke(["dbt", "run"], cwd=tmp_path, env=env, on_line=lambda line: None) == 0
    pids = {line.split()[1] for line in marker.read_text().splitlines() if line.startswith("started")}
    assert len(pids) == 1 and "cancelled" not in marker.read_text()
    _stop(int(pids.pop()), interrupt_grace=5)


def test_sigint_to_an_idle_warm_process_retires_it(tmp_path: Path) -> None:
    warm, _ = _warm(tmp_path)
    warm._start(0)
    pid = warm._pid(0)
    os.kill(pid, signal.SIGINT)
    assert _gone(pid)


def test_stop_escalates_for_a_warm_process_that_will_not_go(tmp_path: Path) -> None:
    script = tmp_path / "dbt_server.py"  # what _is_our_server looks for in a pid's command line
    script.write_text(
        "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('up', flush=True)\ntime.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
    started = time.monotonic()
    _stop(proc.pid, interrupt_grace=0.3, term_grace=0.3)
    assert proc.wait(timeout=5) == -signal.SIGTERM
    assert time.monotonic() - started < 3
    assert SERVER.name == script.name


def test_a_retiring_warm_process_stops_listening_before_the_task_hears_its_answer(tmp_path: Path) -> None:
    """A process serving its last invocation (here ``max_invocations=1``) closes its socket before
    the reply's last line. Else the next task, started as this one ends, could connect while the
    process winds down, wait in the backlog and be dropped: a warm failure run cold (seen in CI as
    two tasks reporting the same warm pid)."""
    pool = tmp_path / "pool"
    pool.mkdir()
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(_fake_dbt(tmp_path))}
    settings = WarmSettings(processes=1, keep_project=False, start_timeout=60, max_invocations=1)
    lines: list[str] = []
    warm = WarmInvoker(Path(sys.executable), env, pool, settings, lines.append)
    marker = tmp_path / "dbt.txt"
    run_env = {"FAKE_DBT_MARKER": str(marker), "FAKE_DBT_SECONDS": "0"}
    for _ in range(3):
        sock_path = warm._paths(0)[1]
        assert warm.invoke(["dbt", "run"], cwd=tmp_path, env=run_env, on_line=lambda line: None) == 0
        assert not sock_path.exists()  # gone by the time the task has its answer
    pids = [int(line.split()[1]) for line in marker.read_text().splitlines() if line.startswith("started")]
    assert len(pids) == 3 and len(set(pids)) == 3, pids  # each task had a process of its own
    assert not any("stale socket" in line for line in lines), lines  # none found a dying one
    for pid in pids:
        assert _gone(pid)
