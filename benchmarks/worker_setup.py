"""What the worker-side cases run on: the shop project copy, its DAG file for each tool, the
Airflow homes, the venvs and the warm dbt processes, and the load readings.

Every case of ``python -m benchmarks.worker`` (``dag.test()``, one model, ``dbt parse``, the real
scheduler) starts from these, so that the tools compared read the same project and manifest, and
each run starts from a known state (a fresh DuckDB file, an empty or a reused venv cache, no warm
process left from an earlier run).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks import dag_files
from benchmarks.report import LoadLog
from benchmarks.runtime import BENCH, PY, REPO, log, process_env

if TYPE_CHECKING:  # imported where used: manifest_dag is not needed to write the report
    from manifest_dag.worker.venv import Venv

WB = BENCH / "worker"  # git-ignored: results, caches, runs
RESULTS = WB / "results.json"
DOC = REPO / "docs" / "performance-worker.md"
SHOP = REPO / "fixtures" / "shop"
SHOP_MANIFEST = REPO / "fixtures" / "manifests" / "shop" / "manifest.json"
REQS = ["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"]
#: the DuckDB profile of ``tests/support/synth_project``'s generated projects (parse and scale cases)
SYNTH_PROFILE = "synth:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: \"{{ env_var('SYNTH_DUCKDB', 'synth.duckdb') }}\"\n      threads: 1\n"
TOOLS = ("md-warm", "md-cold", "cosmos-venvdir", "cosmos-novenvdir")  # the dag.test() case
SCHED_TOOLS = ("md-cold", "md-warm", "cosmos-venvdir")  # the real-scheduler case
TOOL_LABEL = {
    "md-warm": "manifest-dag, warm dbt processes (default)",
    "md-cold": "manifest-dag, fresh dbt process per task",
    "cosmos-venvdir": "cosmos VIRTUALENV, with virtualenv_dir",
    "cosmos-novenvdir": "cosmos VIRTUALENV, no virtualenv_dir",
}
LOADS = LoadLog()


def load_now() -> float:
    """The load average now, kept for the run's load line."""
    return round(LOADS.read(), 2)


def base_env(**extra: str) -> dict[str, str]:
    """The environment of a measured process (a ``dag.test()`` child, an ``airflow`` command)."""
    return process_env(
        drop=("MANIFEST_DAG_WARM_PROCESSES", "VIRTUAL_ENV"),
        AIRFLOW__LOGGING__COLORED_CONSOLE_LOG="False",
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        PYTHONUNBUFFERED="1",
        **extra,
    )


def project_copy() -> Path:
    """The shop project both tools read: fixtures/shop without dbt's outputs, plus the msgpack
    `make golden` wrote beside the manifest in target/ (where cosmos looks for one)."""
    dest = WB / "shop"
    stamp = dest / ".bench-source"
    if not stamp.exists():
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(
            SHOP, dest, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", "*.duckdb", "*.wal")
        )
        (dest / "target").mkdir()
        shutil.copy2(SHOP_MANIFEST.parent / "partial_parse.msgpack", dest / "target" / "partial_parse.msgpack")
        stamp.write_text("fixtures/shop\n")
    return dest


def shop_dag(cosmos: bool, select: Sequence[str], bench: Mapping[str, object]) -> str:
    """The shop DAG file for manifest-dag or cosmos (``templates/shop_*.py.tmpl``). ``select``:
    a dbt selection for both tools (none: the whole project); ``bench``: the settings written into
    the file (the real-scheduler case), which the ``dag.test()`` case reads from ``BENCH_*``
    environment variables instead (one file, one run)."""
    settings = dag_files.render("shop_settings.py.tmpl", bench=dict(bench)).rstrip("\n")
    return dag_files.render(
        "shop_cosmos.py.tmpl" if cosmos else "shop_md.py.tmpl",
        code={"settings": settings},
        project=str(project_copy()),
        manifest=str(SHOP_MANIFEST),
        reqs=REQS,
        select=list(select) if cosmos else (list(select) or None),
    )


def synth_dag(cosmos: bool, project: Path, select: Sequence[str], bench: Mapping[str, object]) -> str:
    """The DAG file of a generated project (``templates/synth_*.py.tmpl``, the scale case): its
    ``target/manifest.json``, the models ``select`` names (a dbt selection), ``bench`` written in."""
    settings = dag_files.render("shop_settings.py.tmpl", bench=dict(bench)).rstrip("\n")
    return dag_files.render(
        "synth_cosmos.py.tmpl" if cosmos else "synth_md.py.tmpl",
        code={"settings": settings},
        project=str(project),
        manifest=str(project / "target" / "manifest.json"),
        reqs=REQS,
        select=list(select),
    )


def airflow_template(python: Path | str, name: str) -> Path:
    """A once-migrated Airflow home per Airflow install; each run gets a copy of its DB."""
    home = WB / "airflow-template" / name
    db = home / "airflow.db"
    if not db.exists():
        home.mkdir(parents=True, exist_ok=True)
        log(f"migrating an Airflow metadata DB for {name} (once) ...")
        subprocess.run(
            [str(python), "-m", "airflow", "db", "migrate"],
            env=base_env(AIRFLOW_HOME=str(home)),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    return db


def uv_bin_dir() -> Path:
    """A directory holding only the repo's ``uv``, for cosmos's ``PATH`` (Airflow's
    ``prepare_virtualenv`` uses uv when it finds it, as on Airflow's images)."""
    uv_dir = WB / "uv-bin"
    uv_dir.mkdir(parents=True, exist_ok=True)
    link = uv_dir / "uv"
    if not link.exists():
        link.symlink_to(Path(PY).parent / "uv")
    return uv_dir


def md_venv(cache: Path) -> Venv:
    """manifest-dag's venv for ``REQS`` in ``cache``, built on first use."""
    from manifest_dag.worker.venv import VenvCache, VenvSpec

    return VenvCache(cache, log=lambda s: None).ensure(VenvSpec(requirements=tuple(REQS)))


def stop_warm(cache: Path) -> int:
    """Stop the warm dbt processes a run left in ``cache``; how many."""
    from manifest_dag.worker.warm import stop_pools

    return stop_pools(cache / ".state")
