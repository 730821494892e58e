# Every target installs what it needs: a fresh clone runs `make demo` or `make test` as is.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__LOAD_EXAMPLES ?= False
export AIRFLOW__CORE__UNIT_TEST_MODE ?= True
export DBT_SEND_ANONYMOUS_USAGE_STATS ?= false

.PHONY: install lint test test-fast demo bench bench-worker golden clean docs graphviz scheduler-test celery-test pod-executor-test test-matrix

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip uv

# Bytecode for everything installed, once (about 15 s): Python never has to compile Airflow from
# source again, even where PYTHONDONTWRITEBYTECODE is set, as in a production image. Every Airflow
# process the e2e tests start (scheduler, task runners, pods) imports in about half the time.
$(STAMP): $(PY) pyproject.toml
	$(VENV)/bin/uv pip install --python $(PY) -e '.[test]'
	-$(PY) -m compileall -q -j 0 $(VENV)/lib manifest_dag tests/support >/dev/null 2>&1
	touch $(STAMP)

install: $(STAMP)

# Graphviz's `dot` draws `manifest-dag graph --format svg|png`; the graph tests use it.
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  echo "installing graphviz (for manifest-dag graph --format svg/png)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends graphviz >/dev/null; } \
	  || echo "warning: could not install graphviz; the svg/png tests will be skipped"; }

# The code's own checks, before any test: the import contract (pyproject.toml's
# [tool.importlinter]: the scheduler side never imports the worker side, core neither, manifest,
# graph, selection and plan no Airflow, nothing dbt), ruff's lint and format check, mypy.
lint: $(STAMP)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check manifest_dag
	$(VENV)/bin/ruff format --check manifest_dag
	$(VENV)/bin/mypy

# tests/test_docs.py builds the docs too (mkdocs build --strict), so `make test` fails on a broken link.
# Unit tests run on both cores; the end-to-end ones (real venvs, dbt, Airflow) one at a time.
# Then the version matrix (`make test-matrix` below; its e2e tests are marked `matrix`), whose main-venv
# row reuses the unit run just before: 669 s from a fresh clone with an empty uv cache, beside another
# clean-clone `make test` on the same 2 cores.
test: lint graphviz
	$(PY) -m pytest -m "not e2e" -n 2
	$(PY) -m pytest -m "e2e and not matrix" --durations=30
	$(PY) scripts/test_matrix.py --after-unit-run

# Every Airflow minor (3.0-3.3), Python (3.10-3.13, those present) and dbt (1.8-1.11) we claim:
# uv builds one pinned venv per Airflow minor under .cache/matrix (cache in .cache/uv), runs the
# scheduler-side tests and one e2e DAG in each, one e2e DAG per dbt version warm and cold, and two
# dbt versions at once; prints the table and writes it into docs/compatibility.md (about 12 min on
# 2 cores from an empty cache). MATRIX_ARGS=--no-dbt / --no-airflow / --no-e2e for a slice.
test-matrix: $(STAMP)
	$(PY) scripts/test_matrix.py $(MATRIX_ARGS)

test-fast: lint graphviz
	$(PY) -m pytest -m "not e2e" -n 2

# A real Airflow 3 deployment (Postgres from the system's packages, scheduler + dag-processor +
# api-server, LocalExecutor with parallelism 4) runs four DAGs at once: the shop on Postgres and on
# DuckDB (the demo DAG), a 200-model synthetic project, and a task SIGKILLed mid-run that must
# succeed on retry; then it scans logs, files and the metadata DB for the secrets. Everything it
# starts, it stops. See docs/how-to/real-scheduler.md (about 8 min on 2 cores).
scheduler-test: $(STAMP)
	$(PY) -m pytest -m e2e tests/e2e/test_e2e_scheduler.py -s

# A real CeleryExecutor deployment (Redis from the system's packages as broker, Postgres, scheduler +
# dag-processor + api-server, two Celery workers that share nothing writable, worker_concurrency 2
# each, one on a dbt 1.10 queue): the shop and a synthetic DAG at once, a queue routed by
# VenvConfig.queue, a worker machine SIGKILLed mid-task; then the secret scan. See
# docs/how-to/deployment.md.
celery-test: $(STAMP)
	$(PY) -m pytest -m e2e tests/e2e/test_e2e_celery.py -s

# Pod-per-task through the real scheduler (issue 20): a warm Celery worker and a pod-per-task
# executor (tests/support/pod_executor.py: each task a fresh execute_workload process behind
# manifest-dag prestart, the prepared image read-only) in one deployment, the shop on both at once;
# prints the per-task overheads. See docs/how-to/pod-per-task.md (about 2.5 min on 2 cores).
pod-executor-test: $(STAMP)
	$(PY) -m pytest -m e2e tests/e2e/test_e2e_pod_executor.py -s

# The MkDocs site, into build/site; any warning (broken link or anchor, undocumented config field) fails.
docs: $(STAMP)
	$(PY) -m mkdocs build --strict

demo: $(STAMP)
	$(PY) -m manifest_dag.cli demo

clean:
	rm -rf $(VENV) .airflow .pytest_cache build *.egg-info

# Regenerate fixtures/manifests/ and fixtures/selection/*_dbt_ls.json from the fixture dbt projects
# (dbt-core 1.11 in its own venv at .cache/dbt-venv; see fixtures/README.md).
golden:
	$(PYTHON) scripts/make_fixtures.py

# Scheduler-side benchmarks vs astronomer-cosmos (installed into .bench/cosmos-venv) and the floors:
# prints the table and writes docs/performance.md. BENCH_ARGS=--quick for N = 100 and 1,000 only.
bench: $(STAMP)
	$(PY) -m benchmarks.scheduler $(BENCH_ARGS)

# Worker-side benchmarks vs cosmos, real dbt: the demo DAG through dag.test() and through a real scheduler
# (LocalExecutor, Postgres), one model's task, dbt parse, and the scale table (one-model tasks on generated
# projects of 20-5,000 models; it prints its time estimate first) (writes docs/performance-worker.md;
# BENCH_ARGS=--quick for a slice, BENCH_ARGS="--cases scale" for the scale case alone).
bench-worker: $(STAMP)
	$(PY) -m benchmarks.worker $(BENCH_ARGS)
