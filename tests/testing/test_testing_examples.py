"""The example test module (examples/tests) passes where dbt is not importable and there is no network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

# Runs in a fresh interpreter: dbt and the network are blocked before pytest (and anything else)
# is imported, then pytest runs the example folder. Every blocked attempt is reported back.
_BOOT = r"""
import importlib.abc, json, socket, sys

attempts = {"dbt": [], "network": []}


class NoDbt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "dbt" or name.startswith("dbt."):
            attempts["dbt"].append(name)
            raise ImportError(f"dbt is not installed here (tried {name!r})")
        return None


sys.meta_path.insert(0, NoDbt())
for name in [m for m in sys.modules if m == "dbt" or m.startswith("dbt.")]:
    del sys.modules[name]


def offline(*args, **kwargs):
    attempts["network"].append(repr(args)[:200])
    raise OSError("no network in this test run")


_connect = socket.socket.connect


def connect(self, address):
    if self.family == socket.AF_UNIX:
        return _connect(self, address)
    return offline(address)


socket.socket.connect = connect
socket.socket.connect_ex = lambda self, address: offline(address) if self.family != socket.AF_UNIX else 0
socket.create_connection = offline
socket.getaddrinfo = offline

import pytest

code = pytest.main(sys.argv[1:])
print("ATTEMPTS " + json.dumps(attempts))
sys.exit(int(code))
"""


def test_example_tests_pass_without_dbt_or_network(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MANIFEST_DAG_"))}
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="True",
        MANIFEST_DAG_DEMO_DIR=str(tmp_path / "demo"),
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
    )
    done = subprocess.run(
        [sys.executable, "-c", _BOOT, str(REPO / "examples" / "tests"), "-q", "-p", "no:cacheprovider",
         "-p", "no:hypothesispytest", "--basetemp", str(tmp_path / "basetemp")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,  # a hang guard, not a speed target (those live in benchmarks)
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout[-5000:]}\nstderr:\n{done.stderr[-3000:]}"
    assert " passed" in done.stdout and "failed" not in done.stdout, done.stdout[-2000:]
    line = next(ln for ln in reversed(done.stdout.splitlines()) if ln.startswith("ATTEMPTS "))
    attempts = json.loads(line[len("ATTEMPTS ") :])
    assert attempts == {"dbt": [], "network": []}, attempts
