"""The cold path's dbt process, without dbt: argv, output streaming, and the task's death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from manifest_dag.worker.invokers import SubprocessInvoker
from manifest_dag.worker.processes import parent_death_supported

CHILD = """
import os, signal, sys, time
out = sys.argv[1]
def interrupted(*_):
    with open(out, "a") as fh:
        fh.write("interrupted\\n")
    sys.exit(130)
signal.signal(signal.SIGINT, interrupted)
with open(out, "w") as fh:
    fh.write(f"{os.getpid()}\\n")
print("started", flush=True)
time.sleep(60)
"""

TASK = """
import sys
from pathlib import Path
from manifest_dag.worker.invokers import SubprocessInvoker
SubprocessInvoker().invoke([sys.executable, "-c", sys.argv[1], sys.argv[2]], cwd=Path("."), env={}, on_line=print)
"""


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_output_is_streamed_and_the_exit_code_returned(tmp_path: Path) -> None:
    lines: list[str] = []
    code = SubprocessInvoker().invoke(
        [sys.executable, "-c", "print('a'); print('b'); raise SystemExit(3)"], cwd=tmp_path, env={}, on_line=lines.append
    )
    assert (code, lines) == (3, ["a", "b"])


@pytest.mark.skipif(not parent_death_supported(), reason="needs Linux's PR_SET_PDEATHSIG")
def test_dbt_is_interrupted_when_its_task_process_is_killed(tmp_path: Path) -> None:
    """A SIGKILLed task (lost worker, OOM kill) must not leave dbt and its query running."""
    marker = tmp_path / "child.txt"
    task = subprocess.Popen([sys.executable, "-c", TASK, CHILD, str(marker)], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        assert task.stdout is not None
        assert task.stdout.readline().strip() == "started"
        child = int(marker.read_text().split()[0])
        task.send_signal(signal.SIGKILL)
        task.wait()
        deadline = time.monotonic() + 20
        while not _gone(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(child), "dbt outlived its killed task"
        assert marker.read_text().split()[-1] == "interrupted"  # SIGINT: dbt cancels its queries
    finally:
        if task.poll() is None:
            task.kill()
