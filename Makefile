# Every target installs what it needs: a fresh clone runs `make demo` or `make test` as is.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__LOAD_EXAMPLES ?= False
export AIRFLOW__CORE__UNIT_TEST_MODE ?= True
export DBT_SEND_ANONYMOUS_USAGE_STATS ?= false

.PHONY: install test test-fast demo bench golden clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip uv

$(STAMP): $(PY) pyproject.toml
	$(VENV)/bin/uv pip install --python $(PY) -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not e2e"

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
	$(PY) benchmarks/run.py $(BENCH_ARGS)
