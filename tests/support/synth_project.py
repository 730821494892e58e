"""A runnable synthetic dbt project: N models whose SQL really runs on Postgres.

Unlike ``benchmarks/synth.py`` (a manifest only, for timing the scheduler side), this writes a
dbt project folder that ``dbt parse`` turns into a manifest and ``dbt run`` builds:

- about a tenth of the models are roots (views over ``generate_series``, no source needed);
- every other model is a table reading 1–3 earlier models (left joins on
  ``id``, now and then an aggregate), so the graph is deep and wide like a real one; tables, so
  Postgres never expands long chains of views.

Deterministic: the same ``n``/``seed`` always writes the same files.

    python -m tests.support.synth_project /tmp/synth 200
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

PROFILE = "synth"


def model_names(n: int) -> list[str]:
    return [f"m{i:04d}" for i in range(n)]


def generate_project(root: Path, n: int = 200, seed: int = 7) -> list[str]:
    """Write the project into ``root``; return the model names."""
    rng = random.Random(seed)
    names = model_names(n)
    roots = max(1, n // 10)
    models = root / "models"
    models.mkdir(parents=True, exist_ok=True)
    (root / "dbt_project.yml").write_text(
        "name: synth\nversion: '1.0.0'\nconfig-version: 2\nprofile: synth\n"
        "model-paths: [models]\ntarget-path: target\n"
        "models:\n  synth:\n    +materialized: table\n"
    )
    for i, name in enumerate(names):
        if i < roots:
            sql = (
                "{{ config(materialized='view') }}\n"
                f"select g as id, (g * {i + 3}) % 97 as val, 'k' || (g % 5) as cat\n"
                f"from generate_series(1, {20 + i % 30}) as g\n"
            )
        else:
            lo = max(0, i - 40)  # parents among the 40 models before: a deep graph, not a flat one
            parents = sorted(rng.sample(names[lo:i], k=min(i - lo, rng.randint(1, 3))))
            first, rest = parents[0], parents[1:]
            cols = f"a.id, a.val + {i % 11} as val, a.cat"
            if not rest:
                sql = f"select {cols}\nfrom {{{{ ref('{first}') }}}} as a\n"
            else:
                joins = "".join(
                    f"left join {{{{ ref('{p}') }}}} as p{j} on p{j}.id = a.id\n" for j, p in enumerate(rest)
                )
                bump = " + ".join(f"coalesce(p{j}.val, 0)" for j in range(len(rest)))
                sql = (
                    f"select a.id, (a.val + {bump}) % 1000 as val, a.cat\n"
                    f"from {{{{ ref('{first}') }}}} as a\n{joins}"
                )
            if i % 7 == 0:  # an aggregate now and then (ids stay unique: one min per group)
                sql = f"select min(id) as id, sum(val) % 1000 as val, cat\nfrom (\n{sql}) as t\ngroup by cat\n"
        (models / f"{name}.sql").write_text(sql)
    return names


def profiles_yml(port: int = 5432, password: str = "unused") -> str:
    """A Postgres profile for ``dbt parse`` (parse never connects)."""
    return (
        f"{PROFILE}:\n  target: dev\n  outputs:\n    dev:\n      type: postgres\n      host: 127.0.0.1\n"
        f"      port: {port}\n      user: postgres\n      password: {password}\n      dbname: warehouse\n"
        "      schema: synth\n      threads: 1\n"
    )


if __name__ == "__main__":  # pragma: no cover
    generate_project(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 200)
