"""manifest-dag's benchmarks against astronomer-cosmos and the floors (not part of the package).

Run from the repository root, as the Makefile does, so that ``benchmarks`` and ``tests.support``
import as packages:

    python -m benchmarks.scheduler [--quick ...]   # make bench: docs/performance.md
    python -m benchmarks.worker [--quick ...]      # make bench-worker: docs/performance-worker.md

The scripts in ``children/`` are run by path in fresh processes, some with another interpreter
(astronomer-cosmos's venv), and import nothing from here; the DAG files the benchmarks write are
filled in from ``templates/``.
"""
