"""``make test-matrix``: the Airflow, Python and dbt versions manifest-dag claims, each run for real.

Rows (see docs/compatibility.md for why these and what each cell means):

- one venv per Airflow minor release ``pyproject.toml`` allows, each on another of the Pythons this
  machine has (pyenv's, else ``pythonX.Y`` on PATH), so every Airflow minor and every Python runs:
  the scheduler-side unit tests there (``SCHEDULER_TESTS``) and one e2e DAG
  (``test_dag_on_this_airflow``: dbt 1.11, warm, partial parse reused, equal to ``dbt build``);
- one row per dbt release 1.8-1.11 in the main venv (``test_each_dbt_version_runs_the_dag_like_dbt_build``:
  warm and cold, partial parse reused, equal to ``dbt build``) and one of two dbt versions at once.

The venvs are built by uv under ``.cache/matrix`` (uv's cache in ``.cache/uv``), pinned exactly
(Airflow's constraints files are on a host this machine may not reach), and rebuilt only when a
pin or ``pyproject.toml`` changes. The table is printed and written into docs/compatibility.md.
Exits non-zero when any cell fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAIN_PY = REPO / ".venv" / "bin" / "python"
UV = REPO / ".venv" / "bin" / "uv"
CACHE = REPO / ".cache" / "matrix"
DOC = REPO / "docs" / "compatibility.md"
VERSIONS_TESTS = "tests/e2e/test_e2e_versions.py"

#: the scheduler-side tests each Airflow venv runs: rendering, the task-scoped parse, the plan and
#: its cache (hashing), the manifest reader, the DAG processor's safety, core, the offline testing
#: helpers (plan_task, DagBag loading) and the operators
SCHEDULER_TESTS = (
    "tests/scheduler/test_render.py",
    "tests/scheduler/test_task_scope.py",
    "tests/scheduler/test_plan.py",
    "tests/scheduler/test_plan_cache.py",
    "tests/scheduler/test_manifest.py",
    "tests/scheduler/test_scheduler_safety.py",
    "tests/core",
    "tests/testing/test_testing.py",
    "tests/test_operators.py",
)
#: left out in the matrix venvs: the large real manifests (minutes each, the same code on every
#: version: the main unit run covers them) and the every-manifest DagBag load
SCHEDULER_DESELECT = (
    "not spellbook and not tuva and not memory_stays and not test_every_manifest_builds_a_dag_without_dbt"
)


@dataclass(frozen=True)
class Cell:
    """One Airflow release on one Python, with the pins that make it install what works."""

    airflow: str
    python: str
    #: extra pins: what Airflow's own constraints would hold back, with the reason in `why`
    pins: tuple[str, ...] = ()
    why: str = ""
    #: None: a venv of its own; "main": the repo's .venv (make install's), whose Airflow is the newest
    venv: str | None = None
    #: a known fault of this Airflow release's own ``dag.test()``: the matrix first runs a plain
    #: two-EmptyOperator DAG, and runs ours only when Airflow's own passes (a failing probe is
    #: reported, not counted against manifest-dag)
    airflow_fault: str = ""
    extra: tuple[str, ...] = field(default=("pytest>=8", "pytest-xdist>=3.5", "hypothesis>=6.100", "uv"))

    @property
    def name(self) -> str:
        return f"airflow-{self.airflow}-py{self.python}"


CELLS = (
    Cell(
        "3.0.6", "3.10", ("cryptography<51", "fastapi<0.118", "starlette<0.49"),
        "Airflow 3.0 and 3.1 set an attribute on cryptography's MultiFernet, which cryptography 51 refuses; "
        "Airflow 3.0's in-process execution API refuses every task start (HTTP 422) with today's fastapi/starlette",
    ),
    Cell(
        "3.1.8", "3.12", ("cryptography<51",),
        "Airflow 3.0 and 3.1 set an attribute on cryptography's MultiFernet, which cryptography 51 refuses",
    ),
    Cell(
        "3.2.2", "3.13",
        airflow_fault="Airflow 3.2's own dag.test() fails on a plain DAG with today's dependencies "
        "(pydantic: TITerminalStatePayload needs a discriminator field)",
    ),
    Cell("3.3.2", "3.11", venv="main"),
)  # fmt: skip


def find_python(minor: str) -> str | None:
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = sorted(pyenv.glob(f"{minor}.*/bin/python{minor}"), key=lambda p: [int(x) for x in p.parts[-3].split(".")])
    if found:
        return str(found[-1])
    return shutil.which(f"python{minor}")


def run(argv: list[str], log: Path, env: dict[str, str] | None = None, timeout: float = 3600) -> int:
    with log.open("a") as fh:
        fh.write(f"\n$ {' '.join(argv)}\n")
        fh.flush()
        done = subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=REPO, timeout=timeout)
    return done.returncode


def ensure_venv(cell: Cell, log: Path) -> Path | None:
    """The cell's Python executable, its venv built or reused; None when its Python is not here."""
    if cell.venv == "main":
        return MAIN_PY
    interp = find_python(cell.python)
    if interp is None:
        return None
    venv = CACHE / cell.name
    stamp = venv / ".matrix-stamp"
    wanted = hashlib.sha256(
        json.dumps([cell.airflow, cell.pins, cell.extra, interp, (REPO / "pyproject.toml").read_text()]).encode()
    ).hexdigest()
    python = venv / "bin" / "python"
    if stamp.exists() and stamp.read_text() == wanted and python.exists():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    env = {**os.environ, "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(REPO / ".cache" / "uv"))}
    if run([str(UV), "venv", "--quiet", "--python", interp, str(venv)], log, env) != 0:
        raise SystemExit(f"uv venv failed for {cell.name}; see {log}")
    install = [str(UV), "pip", "install", "--python", str(python), f"apache-airflow=={cell.airflow}", "-e", str(REPO)]
    if run([*install, *cell.extra, *cell.pins], log, env) != 0:
        raise SystemExit(f"installing {cell.name} failed; see {log}")
    stamp.write_text(wanted)
    return python


PROBE = """
import sys, pendulum
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator
with DAG("plain_probe", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
    EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
run = dag.test()
print("probe state:", run.state)
sys.exit(0 if str(run.state).endswith("success") else 1)
"""


def airflow_runs_a_plain_dag(python: Path, log: Path) -> bool:
    """Airflow's own dag.test() of two EmptyOperators, in a throwaway Airflow home."""
    with tempfile.TemporaryDirectory(prefix="matrix-probe-") as home:
        env = {**os.environ, "AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
        if run([str(python), "-m", "airflow", "db", "migrate"], log, env) != 0:
            return False
        return run([str(python), "-c", PROBE], log, env) == 0


def junit(path: Path) -> dict[str, str]:
    """Each test case's outcome (passed, failed, error, skipped) from pytest's JUnit XML."""
    if not path.exists():
        return {}
    out: dict[str, str] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        kinds = [child.tag for child in case]
        outcome = "passed"
        for kind in ("failure", "error", "skipped"):
            if kind in kinds:
                outcome = {"failure": "failed"}.get(kind, kind)
                break
        out[name] = outcome
    return out


def pytest(python: Path, args: list[str], name: str, log: Path, facts: Path | None = None) -> dict[str, str]:
    xml = CACHE / f"{name}.xml"
    xml.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.pop("AIRFLOW_HOME", None)  # tests/conftest.py gives each session its own
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    if facts is not None:
        env["MANIFEST_DAG_MATRIX_OUT"] = str(facts)
    run([str(python), "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={xml}", *args], log, env)
    return junit(xml)


def count(outcomes: dict[str, str]) -> str:
    if not outcomes:
        return "did not run"
    if list(outcomes) == ["main unit run"]:
        return "all (make test's unit run)"
    passed = sum(1 for o in outcomes.values() if o == "passed")
    bad = sum(1 for o in outcomes.values() if o in ("failed", "error"))
    return f"{passed} passed" + (f", **{bad} failed**" if bad else "")


def outcome(outcomes: dict[str, str], suffix: str) -> str | None:
    hits = [o for k, o in outcomes.items() if k.endswith(suffix)]
    return hits[0] if hits else None


def dag_cell(ok: str | None, facts: dict | None) -> str:
    if ok is None:
        return "did not run"
    tasks = f" ({facts['tasks']} tasks)" if facts else ""
    return ("pass" if ok == "passed" else "**FAIL**") + tasks


def warm_cell(ok: str | None, facts: dict | None) -> str:
    if ok is None or not facts:
        return "did not run"
    # Airflow 3.0's dag.test() prints each task log line twice: a task counts once
    return (
        "pass" if ok == "passed" else "**FAIL**"
    ) + f": {min(facts['warm_tasks'], facts['tasks'])} of {facts['tasks']} tasks warm"


def parse_cell(ok: str | None, runs: list[dict]) -> str:
    if ok is None or not runs:
        return "did not run"
    reused = sum(r["reused"] for r in runs)
    kept = sum(r["kept_project"] for r in runs)
    missed = sum(r["not_reused"] for r in runs)
    text = f"reused ({reused}x dbt's 'Partial parsing enabled'" + (
        f", {kept}x kept in the warm process" if kept else ""
    )
    text += ")" if not missed else f"; **{missed}x 'Unable to do partial parsing'**)"
    return ("" if ok == "passed" else "**FAIL**: ") + text


def read_facts(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-dbt", action="store_true", help="skip the dbt version rows")
    ap.add_argument("--no-airflow", action="store_true", help="skip the Airflow/Python rows")
    ap.add_argument("--no-e2e", action="store_true", help="only the scheduler-side tests of each Airflow venv")
    ap.add_argument("--no-write", action="store_true", help="print the table, leave docs/compatibility.md")
    ap.add_argument(
        "--after-unit-run", action="store_true",
        help="make test: the whole unit suite just passed in the main venv, so its row does not run the subset again",
    )  # fmt: skip
    args = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    log = CACHE / "matrix.log"
    log.write_text("")
    facts_file = CACHE / "facts.jsonl"
    facts_file.unlink(missing_ok=True)
    rows: list[list[str]] = []
    timings: list[str] = []
    failed = False
    t_all = time.monotonic()

    def timed(label: str, t0: float) -> None:
        timings.append(f"{label}: {time.monotonic() - t0:.0f} s")
        print(f"  {timings[-1]}", flush=True)

    if not args.no_airflow:
        for cell in CELLS:
            print(f"== {cell.name}", flush=True)
            t0 = time.monotonic()
            python = ensure_venv(cell, log)
            timed(f"{cell.name} venv", t0)
            if python is None:
                rows.append(
                    [f"Airflow {cell.airflow}, Python {cell.python}", "Python not on this machine", "-", "-", "-"]
                )
                continue
            t0 = time.monotonic()
            if cell.venv == "main" and args.after_unit_run:
                sched = {"main unit run": "passed"}  # make test runs every unit test in this venv just before
            else:
                sched = pytest(
                    python, ["-m", "not e2e", "-n", "2", "-k", SCHEDULER_DESELECT, *SCHEDULER_TESTS],
                    f"{cell.name}-scheduler", log,
                )  # fmt: skip
            timed(f"{cell.name} scheduler tests ({count(sched)})", t0)
            dag_ok, dag_facts, fault = None, None, ""
            if not args.no_e2e and cell.airflow_fault:
                t0 = time.monotonic()
                if not airflow_runs_a_plain_dag(python, log):
                    fault = f"not run: {cell.airflow_fault} (docs/compatibility.md)"
                timed(f"{cell.name} probe of Airflow's own dag.test() ({'fails' if fault else 'passes'})", t0)
            if cell.venv == "main" and not args.no_dbt:
                fault = "the dbt 1.11 row (this Airflow and Python, warm and cold)"
            if not args.no_e2e and not fault:
                t0 = time.monotonic()
                before = len(read_facts(facts_file))
                e2e = pytest(
                    python,
                    ["-m", "e2e", f"{VERSIONS_TESTS}::test_dag_on_this_airflow"],
                    f"{cell.name}-e2e",
                    log,
                    facts_file,
                )
                dag_ok = outcome(e2e, "test_dag_on_this_airflow")
                new = read_facts(facts_file)[before:]
                dag_facts = new[0]["warm"] if new else None
                timed(f"{cell.name} e2e DAG ({dag_ok})", t0)
                if dag_ok != "passed":
                    t0 = time.monotonic()
                    if not airflow_runs_a_plain_dag(python, log):  # Airflow's own fault, not ours
                        fault = (
                            f"not counted: Airflow {cell.airflow}'s own dag.test() of a plain DAG fails too "
                            "with these dependency versions (docs/compatibility.md)"
                        )
                    timed(f"{cell.name} probe of Airflow's own dag.test() ({'fails' if fault else 'passes'})", t0)
            bad = any(o in ("failed", "error") for o in sched.values()) or not sched
            bad = bad or (dag_ok not in ("passed", None) and not fault)
            failed = failed or bad
            label = f"Airflow {cell.airflow}, Python {cell.python}" + (
                f" (pinned: {', '.join(cell.pins)})" if cell.pins else ""
            )
            if fault:
                rows.append(
                    [
                        label,
                        count(sched),
                        fault,
                        "see there" if cell.venv == "main" else "-",
                        "see there" if cell.venv == "main" else "-",
                    ]
                )
                continue
            rows.append([
                label, count(sched), dag_cell(dag_ok, dag_facts), warm_cell(dag_ok, dag_facts),
                parse_cell(dag_ok, [dag_facts] if dag_facts else []),
            ])  # fmt: skip

    if not args.no_dbt:
        print("== dbt versions (main venv)", flush=True)
        t0 = time.monotonic()
        before = len(read_facts(facts_file))
        results = pytest(
            MAIN_PY,
            ["-m", "e2e and matrix", "-k", "not test_dag_on_this_airflow", VERSIONS_TESTS],
            "dbt",
            log,
            facts_file,
        )
        timed("dbt version rows", t0)
        seen = read_facts(facts_file)[before:]
        for fact in seen:
            if fact["kind"] == "dbt":
                version = fact["row"].split()[1].rsplit(".", 1)[0]
                ok = outcome(results, f"[{version}]")
                rows.append([
                    fact["row"], "-", dag_cell(ok, fact["cold"]), warm_cell(ok, fact["warm"]),
                    parse_cell(ok, [fact["cold"], fact["warm"]]),
                ])  # fmt: skip
        both = outcome(results, "test_two_dbt_versions_at_once")
        rows.append(
            [
                "dbt 1.9 and 1.11 at once (two DAGs)",
                "-",
                dag_cell(both, None),
                "separate warm processes" if both == "passed" else dag_cell(both, None),
                "separate parse state" if both == "passed" else "-",
            ]
        )
        for name, o in results.items():
            if o in ("failed", "error"):
                print(f"  {name}: {o}")
        failed = failed or not results or any(o in ("failed", "error") for o in results.values())

    header = ["version", "scheduler tests", "e2e DAG", "warm path", "partial parse"]
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    table += ["| " + " | ".join(r) + " |" for r in rows]
    total = f"{time.monotonic() - t_all:.0f} s"
    print("\n" + "\n".join(table))
    print("\n" + "; ".join(timings) + f"; total {total}")
    if not args.no_write and not args.no_airflow and not args.no_dbt and not args.no_e2e:
        text = DOC.read_text()
        start, end = "<!-- matrix:start -->", "<!-- matrix:end -->"
        if start in text and end in text:
            stamp = time.strftime("%Y-%m-%d", time.gmtime())
            block = (
                f"{start}\n\n"
                + "\n".join(table)
                + f"\n\nWritten by `make test-matrix` on {stamp} ({total} on this machine).\n\n{end}"
            )
            DOC.write_text(text[: text.index(start)] + block + text[text.index(end) + len(end) :])
    print(f"log: {log}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
