"""``manifest-dag inspect --select tag:...`` loads neither networkx nor Airflow (nor dbt).

Checked in a fresh interpreter, so the speed of the everyday command cannot regress silently:
networkx alone costs more to import than the rest of ``inspect`` (timings live in the benchmarks).
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import FIXTURES

SHOP = FIXTURES / "manifests" / "shop" / "manifest.json"

_PROBE = """
import contextlib, io, json, sys
from manifest_dag.cli.app import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(sys.argv[1:])
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"networkx", "airflow", "dbt"})
print(json.dumps({"code": code, "heavy": heavy}))
"""


def test_inspect_by_tag_imports_no_networkx_and_no_airflow() -> None:
    argv = ["inspect", str(SHOP), "--select", "tag:finance"]
    done = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"code": 0, "heavy": []}, f"inspect --select tag:finance imported {result['heavy']}"
