"""``make demo``: the bundled shop dbt project, end to end, through Airflow on DuckDB.

The outer process prepares an Airflow home under ``.demo/``, then runs the DAG with
``dag.test()`` in a child process (Airflow reads its settings at import, so the child gets them
in its environment), streams a progress view (a line per task, and what the worker's one-time
setup is doing: the venv build takes about a minute the first time), and prints a summary: each
task's state and duration, the row counts of the final models, and the total time. The full
Airflow and dbt log goes to ``.demo/dag_test.log``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "shop"

# What the progress view reads in the child's log: Airflow 3's ``dag.test()`` lines (structlog:
# ``<time> [info     ] <message> [<logger>] key=value ...``) and the worker's one-time setup
# messages (the venv build, ``dbt deps``, the warm dbt process), each with the line it shows.
_MESSAGE, _END = r"(?:^|\] )", r"(?= \[|$)"  # where a structlog message starts and ends
_PROGRESS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), shown)
    for pattern, shown in (
        (r"\[DAG TEST\] starting task_id=(?P<task>\S+)", "  ▶ {task}"),
        (
            _MESSAGE + r"installing \d+ requirements? with (?P<tool>\S+): (?P<reqs>.+?)" + _END,
            "      building the worker venv ({reqs}, with {tool}), about a minute the first time ...",
        ),
        (_MESSAGE + r"verifying: (?P<command>[^→]+?)" + _END, "      checking it: {command}"),
        (_MESSAGE + r"venv \S+ ready in (?P<seconds>[\d.]+) s" + _END, "      worker venv ready in {seconds} s"),
        (_MESSAGE + r"dbt deps: installing packages once", "      dbt deps: installing the project's packages (once)"),
        (
            _MESSAGE + r"warm dbt: starting a warm dbt process",
            "      starting a warm dbt process (later tasks reuse it)",
        ),
    )
)


def progress_line(log_line: str) -> str | None:
    """The progress view's line for one line of the ``dag.test()`` log, or None to show nothing."""
    for pattern, shown in _PROGRESS:
        if (m := pattern.search(log_line)) is not None:
            fields = {name: value.strip() for name, value in m.groupdict().items()}  # structlog pads
            if "reqs" in fields:
                fields["reqs"] = " + ".join(fields["reqs"].split(", "))
            return shown.format(**fields)
    return None


def _env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(workdir / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "examples" / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__LOGGING__COLORED_CONSOLE_LOG="False",
        MANIFEST_DAG_DEMO_DIR=str(workdir),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        PYTHONUNBUFFERED="1",
    )
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    return env


def main(workdir: Path | None = None) -> int:
    workdir = (workdir or REPO / ".demo").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    env = _env(workdir)
    started = time.monotonic()
    db = workdir / "airflow" / "airflow.db"
    if not db.exists():
        print("demo: creating the Airflow metadata database (once) ...", flush=True)
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    for leftover in (workdir / "shop.duckdb", workdir / "shop.duckdb.wal"):
        leftover.unlink(missing_ok=True)
    print(f"demo: running DAG '{DAG_ID}' with dag.test(); full log in {workdir / 'dag_test.log'}", flush=True)
    result_file = workdir / "result.json"
    result_file.unlink(missing_ok=True)
    with (workdir / "dag_test.log").open("w", buffering=1) as log:  # line-buffered: `tail -f` it
        child = subprocess.Popen(  # noqa: S603 - an argv list of our own, never a shell string
            [sys.executable, "-m", "manifest_dag.cli.demo", "--child", str(result_file)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert child.stdout is not None
        for line in child.stdout:
            log.write(line)
            if (shown := progress_line(line)) is not None:
                print(shown, flush=True)
        code = child.wait()
    from manifest_dag.worker.warm import stop_pools

    # the warm dbt processes would idle on for minutes after the demo: stop what it started
    stop_pools(Path(env.get("MANIFEST_DAG_VENV_CACHE") or workdir / "venvs") / ".state")
    if not result_file.exists():
        print(f"demo: the DAG run did not finish (exit code {code}); see {workdir / 'dag_test.log'}")
        return 1
    result = json.loads(result_file.read_text())
    _print_summary(result, time.monotonic() - started)
    return 0 if result["state"] == "success" else 1


def run(args: argparse.Namespace) -> int:
    """``manifest-dag demo`` (it has no options of its own)."""
    return main()


def _print_summary(result: dict, total: float) -> None:
    tasks = result["tasks"]
    width = max((len(t["task_id"]) for t in tasks), default=10)
    print()
    print(f"{'task'.ljust(width)}  {'state':9}  seconds")
    for t in tasks:
        dur = f"{t['duration']:7.1f}" if t["duration"] is not None else "      -"
        print(f"{t['task_id'].ljust(width)}  {str(t['state']):9}  {dur}")
    print()
    rows = result.get("rows") or {}
    if rows:
        w = max(len(k) for k in rows)
        print(f"{'final model'.ljust(w)}  rows")
        for name, count in sorted(rows.items()):
            print(f"{name.ljust(w)}  {count}")
        print()
    ok = sum(1 for t in tasks if t["state"] == "success")
    print(f"DAG run {result['state']}: {ok}/{len(tasks)} tasks succeeded in {total:.1f} s in all")


# -- child: runs inside the Airflow environment -------------------------------------------------
def _child(result_file: Path) -> int:
    from manifest_dag.core.airflow_compat import dag_bag_class

    bag = dag_bag_class()(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        for path, err in bag.import_errors.items():
            print(f"import error in {path}:\n{err}")
        return 1
    dag = bag.get_dag(DAG_ID)
    run = dag.test()
    tasks = [
        {"task_id": ti.task_id, "state": str(ti.state), "duration": ti.duration}
        for ti in sorted(run.get_task_instances(), key=lambda ti: (ti.start_date is None, ti.start_date))
    ]
    result = {"state": str(run.state), "tasks": tasks, "rows": _row_counts(dag)}
    result_file.write_text(json.dumps(result))
    return 0


def _row_counts(dag) -> dict[str, int]:
    """Rows of the final models (no model depends on them), read with the worker venv's duckdb."""
    from manifest_dag.scheduler.manifest import load_manifest
    from manifest_dag.worker.venv import VenvCache

    task = next(iter(dag.tasks))
    manifest = load_manifest(task.manifest_path)
    parents = {p for n in manifest.nodes.values() if n.resource_type == "model" for p in n.depends_on}
    finals = {
        n.alias or n.name: n.schema
        for n in manifest.nodes.values()
        if n.resource_type == "model"
        and not n.is_ephemeral
        and n.unique_id not in parents
        and n.package_name == manifest.project_name
    }
    db = Path(os.environ["MANIFEST_DAG_DEMO_DIR"]) / "shop.duckdb"
    if not db.exists():
        return {}
    from manifest_dag.core import settings

    cache_dir = settings.venv_cache_dir(task.venv_config.cache_dir, airflow_config=True)
    venv = VenvCache(cache_dir, log=lambda s: None).ensure(task.venv_config.to_spec())
    script = (
        "import duckdb, json, sys\n"
        "con = duckdb.connect(sys.argv[1], read_only=True)\n"
        "out = {}\n"
        "for name, schema in json.loads(sys.argv[2]).items():\n"
        "    try:\n"
        '        out[name] = con.execute(f\'select count(*) from "{schema}"."{name}"\').fetchone()[0]\n'
        "    except Exception:\n"
        "        pass\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(  # noqa: S603 - an argv list of our own, never a shell string
        [str(venv.python), "-c", script, str(db), json.dumps(finals)],
        capture_output=True,
        text=True,
        env=venv.environ(),
    )
    return json.loads(done.stdout) if done.returncode == 0 and done.stdout.strip() else {}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        sys.exit(_child(Path(sys.argv[2])))
    sys.exit(main())
