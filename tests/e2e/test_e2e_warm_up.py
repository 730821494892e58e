"""A warm dbt process started ahead of its task (``prestart``) pays dbt's first-use costs before the
task arrives, and hands the first task the msgpack it decoded, without dbt trusting it any more than
the file (real dbt, DuckDB; ``in_venv/warm_up.py``).

- In the venv's own Python: after ``warm_up``, a first ``build`` generates no (de)serialiser code
  and imports no module of dbt's but the adapter's (the lists in warm_up.py are complete for this
  dbt), and is handed the decoded manifest.
- Through the real server and socket: the first task is told the msgpack was decoded ahead and gets
  the tables a plain build gives; with other ``--vars`` than the parse's, the same bytes are handed
  over and dbt's own partial-parsing check still parses again, so the new var reaches the table.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from manifest_dag.worker.venv import VenvCache, VenvSpec
from manifest_dag.worker.warm import SERVER
from tests.e2e.test_e2e_kept_manifest import query, write_project
from tests.support.airflow_run import E2E_VENV_CACHE, VENV_REQUIREMENTS

pytestmark = pytest.mark.e2e
SPEC = VenvSpec(requirements=tuple(VENV_REQUIREMENTS))
HANDED = "used partial_parse.msgpack as decoded before this task arrived"

CHILD = r"""
import json, os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
from dbt.cli.main import dbtRunner
from warm_up import Handover, warm_up
handover = Handover()
notes = []
handover.note = notes.append
said = warm_up(sys.argv[2], handover=handover)
import mashumaro.core.meta.code.builder as builder
generated = []
for name in ("add_unpack_method", "add_pack_method"):
    original = getattr(builder.CodeBuilder, name)
    def counted(self, *a, _original=original, **k):
        generated.append(f"{self.cls.__module__}.{self.cls.__qualname__}")
        return _original(self, *a, **k)
    setattr(builder.CodeBuilder, name, counted)
before = set(sys.modules)
os.chdir(sys.argv[3])
# as the server sends it: --no-write-json (dbt_server._lean_artifacts)
result = dbtRunner().invoke(["build", "--project-dir", ".", "--profiles-dir", ".", "--quiet", "--no-write-json"])
print(json.dumps({"said": said, "ok": result.success, "generated": generated, "notes": notes,
                  "imported": sorted(set(sys.modules) - before)}))
"""


def _venv_python() -> Path:
    return VenvCache(E2E_VENV_CACHE, log=lambda _: None).ensure(SPEC).python


def _parsed_project(tmp_path: Path) -> tuple[Path, Path, Path, dict[str, str]]:
    """The kept project, parsed by plain dbt; its msgpack copied aside as an image's would be."""
    project = write_project(tmp_path / "project")
    db = tmp_path / "warehouse.duckdb"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "KEPT_DB": str(db),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    dbt = _venv_python().parent / "dbt"
    subprocess.run([str(dbt), "parse", "--project-dir", str(project), "--profiles-dir", str(project)],
                   env=env, check=True, capture_output=True)  # fmt: skip
    prepared = tmp_path / "prepared.msgpack"
    shutil.copyfile(project / "target" / "partial_parse.msgpack", prepared)
    return project, db, prepared, env


def test_first_build_after_warm_up_generates_no_code_and_imports_nothing_of_dbts(tmp_path: Path) -> None:
    project, db, prepared, env = _parsed_project(tmp_path)
    done = subprocess.run(
        [str(_venv_python()), "-c", CHILD, str(SERVER), str(prepared), str(project)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["ok"], done.stdout[-3000:]
    assert "skipped" not in out["said"], out["said"]
    assert out["generated"] == [], f"generated during the first build, not in warm_up.SERIALISED: {out['generated']}"
    dbt_modules = [
        m for m in out["imported"] if m.startswith(("dbt.", "dbt_common", "mashumaro", "agate", "babel", "google"))
    ]
    assert all(m.startswith("dbt.adapters.duckdb.") for m in dbt_modules), dbt_modules
    assert any(HANDED in n for n in out["notes"]), out["notes"]
    assert query(db, "select name from main.a order by id") == [["ANN"], ["BOB"], ["CY"]]


class _Server:
    """The real warm server, started bare with ``--warm-up`` as ``prestart`` starts it."""

    def __init__(self, tmp: Path, msgpack: Path) -> None:
        self.sock = tmp / "s.sock"
        self.log = tmp / "server.log"
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(
                [str(_venv_python()), str(SERVER), str(self.sock), "--idle", "120", "--warm-up", str(msgpack)],
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
                cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
            )  # fmt: skip

    def warmed(self, timeout: float = 240.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text()
            if "warm-up: done" in text:
                return text
            assert self.proc.poll() is None, text[-3000:]
            time.sleep(0.2)
        raise AssertionError(f"no warm-up line in {timeout} s: {self.log.read_text()[-3000:]}")

    def request(self, args: list[str], cwd: Path, env: dict[str, str]) -> list[dict]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(str(self.sock))
            conn.sendall(json.dumps({"args": args, "cwd": str(cwd), "env": env}).encode() + b"\n")
            replies = []
            for line in conn.makefile("rb"):  # up to the last line, as manifest-dag's client reads
                replies.append(json.loads(line))
                if "exit" in replies[-1]:
                    break
        assert replies and "exit" in replies[-1], replies
        return replies

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.mark.parametrize("vars_", [None, {"flavor": "spicy"}], ids=["same-vars", "other-vars"])
def test_the_server_hands_the_first_task_the_decoded_msgpack_and_dbt_still_checks_it(
    tmp_path: Path, vars_: dict | None
) -> None:
    project, db, prepared, env = _parsed_project(tmp_path)
    server = _Server(tmp_path, prepared)
    try:
        said = server.warmed()
        assert "skipped" not in said.split("warm-up: done", 1)[1].splitlines()[0], said
        args = ["build", "--project-dir", str(project), "--profiles-dir", str(project)]
        if vars_:
            args += ["--vars", json.dumps(vars_)]
        replies = server.request(args, project, env)
        assert replies[-1] == {"exit": 0, "error": None}, replies[-12:]
        notes = [r["note"] for r in replies if "note" in r]
        assert any(HANDED in n for n in notes), notes
        assert query(db, "select distinct flavor from main.b") == [[(vars_ or {}).get("flavor", "plain")]]
        logs = " ".join(r.get("log", "") for r in replies)
        if vars_:  # dbt's own check on the handed-over manifest: the vars changed, so it parsed all
            assert "Unable to do partial parsing" in logs, logs[-2000:]
        else:  # the handed-over manifest was dbt's saved state: partial parsing went on from it
            assert "Unable to do partial parsing" not in logs, logs[-2000:]
        # the next task in the same process reuses what this one parsed; nothing is handed over twice
        replies = server.request(["run", "--select", "a", *args[1:]], project, env)
        assert replies[-1]["exit"] == 0, replies[-12:]
        assert not any(HANDED in r.get("note", "") for r in replies), replies
    finally:
        server.stop()
