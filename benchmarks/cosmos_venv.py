"""astronomer-cosmos, the tool compared against, in a venv of its own (``.bench/cosmos-venv``).

cosmos pins its own Airflow, so it never shares the package's environment; both benchmark entry
points run their cosmos cases with this venv's Python. (Not named ``cosmos``: a module of that
name here would shadow the real package wherever this folder is on ``sys.path``.)
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from benchmarks.runtime import BENCH, PY, log

COSMOS_VENV = BENCH / "cosmos-venv"
COSMOS_PY = COSMOS_VENV / "bin" / "python"
# psycopg2/asyncpg: make bench-worker's real-scheduler case runs cosmos's Airflow on Postgres
COSMOS_REQS = ["astronomer-cosmos==1.15.1", "apache-airflow==3.3.2", "orjson", "psycopg2-binary>=2.9", "asyncpg>=0.29"]


def ensure_cosmos() -> None:
    """Create or update the venv (with uv when it sits beside this Python, else venv + pip)."""
    stamp = COSMOS_VENV / ".installed"
    if stamp.exists() and stamp.read_text() == json.dumps(COSMOS_REQS):
        return
    uv = Path(PY).parent / "uv"
    log(f"installing {' '.join(COSMOS_REQS)} into {COSMOS_VENV} ...")
    if uv.exists():
        if not COSMOS_PY.exists():
            subprocess.run([str(uv), "venv", "-q", "--python", PY, str(COSMOS_VENV)], check=True)
        subprocess.run([str(uv), "pip", "install", "-q", "--python", str(COSMOS_PY), *COSMOS_REQS], check=True)
    else:
        if not COSMOS_PY.exists():
            subprocess.run([PY, "-m", "venv", str(COSMOS_VENV)], check=True)
        subprocess.run([str(COSMOS_PY), "-m", "pip", "install", "-q", *COSMOS_REQS], check=True)
    stamp.write_text(json.dumps(COSMOS_REQS))
