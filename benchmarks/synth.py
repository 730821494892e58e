"""A deterministic synthetic dbt manifest (schema v12, dbt-core 1.11-like) for benchmarks.

    python -m benchmarks.synth --models 5000 --seed 1 -o .bench/manifests/synth_5000.json

Shape (what real projects look like, scaled by ``--models``):

- sources: one source table per two staging models, in schemas of about 25 tables, a third of
  them with freshness; seeds (about 1 per 50 models) and snapshots (about 1 per 100 models);
- three model layers: staging (40 %, 1–2 parents: sources or seeds), intermediate (35 %) and
  marts (25 %), 1–4 parents from the layers below (and earlier models of the same layer);
- two generic tests per model (``unique`` and ``not_null`` on its key), plus ``relationships``
  tests with two parents on about a third of the intermediate and mart models, ``accepted_values``
  on some, ``not_null`` on some sources and ``unique`` on seeds;
- raw SQL of 1–3 KB per model, 5–15 documented columns, dbt's full config dicts, tags, meta,
  ``parent_map``/``child_map``, macros.

The same ``--models``/``--seed`` always gives the same bytes (no clock, no uuid).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
from pathlib import Path
from typing import Any

import orjson

PROJECT = "synth"
DBT_VERSION = "1.11.2"
SCHEMA_URL = "https://schemas.getdbt.com/dbt/manifest/v12.json"
DATABASE = "analytics"
DOMAINS = ("finance", "marketing", "sales", "product", "ops", "support", "hr", "risk")
ENTITIES = (
    "orders", "customers", "payments", "invoices", "sessions", "events", "accounts", "leads",
    "subscriptions", "refunds", "shipments", "tickets", "employees", "campaigns", "products",
)
COLUMN_WORDS = (
    "amount", "status", "created_at", "updated_at", "country", "channel", "region", "currency",
    "quantity", "price", "discount", "tax", "score", "segment", "plan", "source", "category",
)
CREATED_AT = 1764000000.0  # fixed: the output must not depend on the clock


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _model_config(materialized: str, tags: list[str], rng: random.Random) -> dict[str, Any]:
    return {
        "enabled": True, "alias": None, "schema": None, "database": None, "tags": tags, "meta": {},
        "group": None, "materialized": materialized,
        "incremental_strategy": "merge" if materialized == "incremental" else None,
        "batch_size": None, "lookback": 1, "begin": None, "persist_docs": {}, "post-hook": [],
        "pre-hook": [], "quoting": {}, "column_types": {}, "full_refresh": None,
        "unique_key": "id" if materialized == "incremental" else None,
        "on_schema_change": "ignore", "on_configuration_change": "apply", "grants": {}, "packages": [],
        "docs": {"show": True, "node_color": None}, "contract": {"enforced": False, "alias_types": True},
        "event_time": None, "concurrent_batches": None, "access": "protected",
    }


def _test_config(severity: str) -> dict[str, Any]:
    return {
        "enabled": True, "alias": None, "schema": "dbt_test__audit", "database": None, "tags": [],
        "meta": {}, "group": None, "materialized": "test", "severity": severity,
        "store_failures": None, "store_failures_as": None, "where": None, "limit": None,
        "fail_calc": "count(*)", "warn_if": "!= 0", "error_if": "!= 0",
    }


def _columns(names: list[str], rng: random.Random) -> dict[str, Any]:
    out = {}
    for name in names:
        out[name] = {
            "name": name,
            "description": f"The {name.replace('_', ' ')} of the record"
            + (", as reported by the upstream system." if rng.random() < 0.5 else "."),
            "meta": {}, "data_type": rng.choice((None, "varchar", "bigint", "double", "timestamp")),
            "constraints": [], "quote": None, "config": {"meta": {}, "tags": []}, "tags": [],
            "granularity": None, "doc_blocks": [],
        }
    return out


def _sql(refs: list[str], columns: list[str], size: int, rng: random.Random) -> str:
    """A CTE-shaped model body of ``size`` characters (give or take a line) reading ``refs``."""
    ctes = [f"{ref.split('.')[-1]}_{i} as (\n    select * from {ref}\n)" for i, ref in enumerate(refs)]
    head = "with " + ",\n".join(ctes) + ",\n\nfinal as (\n    select\n"
    first = refs[0].split(".")[-1] + "_0"
    tail = [f"\n    from {first}"]
    for i, ref in enumerate(refs[1:], 1):
        alias = f"{ref.split('.')[-1]}_{i}"
        tail.append(f"    left join {alias} on {alias}.id = {first}.id")
    tail.append(")\n\nselect * from final\n")
    foot = "\n".join(tail)
    lines = [f"        {first}.id"]
    used = len(head) + len(foot) + len(lines[0])
    n = 0
    while True:
        col = columns[n % len(columns)]
        fn = rng.choice(("coalesce({c}, 0)", "cast({c} as varchar)", "lower({c})", "{c}", "nullif({c}, '')"))
        line = f"        {fn.format(c=f'{first}.{col}')} as {col}_{n}"
        if used + len(line) + 2 > size:
            break
        lines.append(line)
        used += len(line) + 2
        n += 1
    return head + ",\n".join(lines) + foot


class Synth:
    def __init__(self, models: int, seed: int) -> None:
        if models < 10:
            raise SystemExit("--models must be at least 10")
        self.n = models
        self.rng = random.Random(seed)
        self.nodes: dict[str, Any] = {}
        self.sources: dict[str, Any] = {}
        self.macros: dict[str, Any] = {}
        self.test_count = 0

    # -- leaves ---------------------------------------------------------------------------------
    def make_sources(self) -> list[str]:
        rng, out = self.rng, []
        count = max(2, self.n * 2 // 10)
        for i in range(count):
            src = f"raw_{DOMAINS[i % len(DOMAINS)]}_{i // 25}"
            table = f"{ENTITIES[i % len(ENTITIES)]}_{i}"
            uid = f"source.{PROJECT}.{src}.{table}"
            fresh = rng.random() < 0.33
            freshness = (
                {"warn_after": {"count": 12, "period": "hour"}, "error_after": {"count": 24, "period": "hour"}, "filter": None}
                if fresh
                else {"warn_after": {"count": None, "period": None}, "error_after": {"count": None, "period": None}, "filter": None}
            )
            cols = rng.sample(COLUMN_WORDS, 5)
            self.sources[uid] = {
                "database": "raw", "schema": src, "name": table, "resource_type": "source",
                "package_name": PROJECT, "path": f"models/staging/{src}/_sources.yml",
                "original_file_path": f"models/staging/{src}/_sources.yml", "unique_id": uid,
                "fqn": [PROJECT, "staging", src, src, table], "source_name": src,
                "source_description": f"Raw {src} data loaded by the ingestion tool.", "loader": "fivetran",
                "identifier": table, "quoting": {"database": None, "schema": None, "identifier": None, "column": None},
                "loaded_at_field": "_loaded_at" if fresh else None, "loaded_at_query": None,
                "freshness": freshness, "external": None, "description": f"Raw {table} records.",
                "columns": _columns(["id", *cols], rng), "meta": {}, "source_meta": {}, "tags": [],
                "config": {"enabled": True, "event_time": None, "freshness": freshness, "loaded_at_field": None,
                           "loaded_at_query": None, "meta": {}, "tags": []},
                "patch_path": None, "unrendered_config": {}, "relation_name": f'"raw"."{src}"."{table}"',
                "created_at": CREATED_AT, "unrendered_database": None, "unrendered_schema": None, "doc_blocks": [],
            }
            out.append(uid)
        return out

    def make_seeds(self) -> list[str]:
        out = []
        for i in range(max(1, self.n // 50)):
            name = f"seed_{ENTITIES[i % len(ENTITIES)]}_map_{i}"
            uid = f"seed.{PROJECT}.{name}"
            cfg = _model_config("seed", [], self.rng)
            cfg.update({"delimiter": ",", "quote_columns": None})
            self.nodes[uid] = {
                "database": DATABASE, "schema": "seeds", "name": name, "resource_type": "seed",
                "package_name": PROJECT, "path": f"{name}.csv", "original_file_path": f"seeds/{name}.csv",
                "unique_id": uid, "fqn": [PROJECT, name], "alias": name,
                "checksum": {"name": "sha256", "checksum": _digest(name)}, "config": cfg, "tags": [],
                "description": f"Mapping table {name}.", "columns": _columns(["id", "code", "label"], self.rng),
                "meta": {}, "group": None, "docs": {"show": True, "node_color": None}, "patch_path": None,
                "build_path": None, "unrendered_config": {}, "created_at": CREATED_AT,
                "relation_name": f'"{DATABASE}"."seeds"."{name}"', "raw_code": "", "doc_blocks": [],
                "root_path": "/usr/app", "depends_on": {"macros": []},
            }
            out.append(uid)
            if i % 2 == 0:
                self.generic_test("unique", [uid], uid, "id")
        return out

    def make_snapshots(self, sources: list[str]) -> list[str]:
        out = []
        for i in range(max(1, self.n // 100)):
            src = sources[(i * 7) % len(sources)]
            name = f"snap_{self.sources[src]['name']}"
            uid = f"snapshot.{PROJECT}.{name}"
            cfg = _model_config("snapshot", ["snapshot"], self.rng)
            cfg.update({"strategy": "timestamp", "target_schema": "snapshots", "target_database": None,
                        "updated_at": "updated_at", "check_cols": None, "snapshot_meta_column_names": {},
                        "dbt_valid_to_current": None, "unique_key": "id"})
            sql = f"{{% snapshot {name} %}}\nselect * from {{{{ source('{self.sources[src]['source_name']}', '{self.sources[src]['name']}') }}}}\n{{% endsnapshot %}}\n"
            self.nodes[uid] = {
                "database": DATABASE, "schema": "snapshots", "name": name, "resource_type": "snapshot",
                "package_name": PROJECT, "path": f"{name}.sql", "original_file_path": f"snapshots/{name}.sql",
                "unique_id": uid, "fqn": [PROJECT, name, name], "alias": name,
                "checksum": {"name": "sha256", "checksum": _digest(sql)}, "config": cfg, "tags": ["snapshot"],
                "description": "", "columns": {}, "meta": {}, "group": None,
                "docs": {"show": True, "node_color": None}, "patch_path": None, "build_path": None,
                "unrendered_config": {"strategy": "timestamp", "unique_key": "id"}, "created_at": CREATED_AT,
                "relation_name": f'"{DATABASE}"."snapshots"."{name}"', "raw_code": sql, "doc_blocks": [],
                "language": "sql", "refs": [], "sources": [[self.sources[src]["source_name"], self.sources[src]["name"]]],
                "metrics": [], "functions": [], "depends_on": {"macros": [], "nodes": [src]}, "compiled_path": None,
                "contract": {"enforced": False, "alias_types": True, "checksum": None},
            }
            out.append(uid)
        return out

    # -- tests ----------------------------------------------------------------------------------
    def generic_test(self, kind: str, parents: list[str], attached: str, column: str, **kwargs: Any) -> str:
        self.test_count += 1
        target = attached.split(".")[-1]
        name = f"{kind}_{target}_{column}" + (f"__{parents[1].split('.')[-1]}" if len(parents) > 1 else "")
        uid = f"test.{PROJECT}.{name}.{_digest(name + str(self.test_count))[:10]}"
        ref_of = {p: (p.split(".")[-2], p.split(".")[-1]) if p.startswith("source.") else p.split(".")[-1] for p in parents}
        refs = [{"name": ref_of[p], "package": None, "version": None} for p in parents if not p.startswith("source.")]
        srcs = [list(ref_of[p]) for p in parents if p.startswith("source.")]
        model_arg = f"{{{{ get_where_subquery(ref('{target}')) }}}}" if not attached.startswith("source.") else (
            f"{{{{ get_where_subquery(source('{ref_of[attached][0]}', '{ref_of[attached][1]}')) }}}}"
        )
        self.nodes[uid] = {
            "database": DATABASE, "schema": "dbt_test__audit", "name": name, "resource_type": "test",
            "package_name": PROJECT, "path": f"{name}.sql", "original_file_path": "models/schema.yml",
            "unique_id": uid, "fqn": [PROJECT, name], "alias": name,
            "checksum": {"name": "none", "checksum": ""}, "config": _test_config("ERROR" if kind != "accepted_values" else "warn"),
            "tags": [], "description": "", "columns": {}, "meta": {}, "group": None,
            "docs": {"show": True, "node_color": None}, "patch_path": None, "build_path": None,
            "unrendered_config": {}, "created_at": CREATED_AT, "relation_name": None,
            "raw_code": f"{{{{ test_{kind}(**_dbt_generic_test_kwargs) }}}}", "doc_blocks": [], "language": "sql",
            "refs": refs, "sources": srcs, "metrics": [], "functions": [],
            "depends_on": {"macros": [f"macro.dbt.test_{kind}", "macro.dbt.get_where_subquery"], "nodes": list(parents)},
            "compiled_path": None, "contract": {"enforced": False, "alias_types": True, "checksum": None},
            "column_name": column, "file_key_name": f"models.{target}", "attached_node": attached if not attached.startswith("source.") else None,
            "test_metadata": {"name": kind, "kwargs": {"column_name": column, "model": model_arg, **kwargs}, "namespace": None},
        }
        return uid

    # -- models ---------------------------------------------------------------------------------
    def model(self, layer: str, idx: int, parents: list[str]) -> str:
        rng = self.rng
        domain = DOMAINS[rng.randrange(len(DOMAINS))]
        entity = ENTITIES[rng.randrange(len(ENTITIES))]
        prefix = {"staging": "stg", "intermediate": "int", "marts": rng.choice(("fct", "dim"))}[layer]
        name = f"{prefix}_{domain}__{entity}_{idx}"
        uid = f"model.{PROJECT}.{name}"
        materialized = {"staging": "view", "intermediate": rng.choice(("view", "table", "ephemeral" if rng.random() < 0.1 else "view")),
                        "marts": rng.choice(("table", "table", "incremental"))}[layer]
        tags = [layer, domain] + (["pii"] if rng.random() < 0.1 else []) + (["daily"] if rng.random() < 0.5 else ["hourly"])
        cols = ["id", *rng.sample(COLUMN_WORDS, rng.randint(4, 14))]
        relations = []
        for p in parents:
            if p.startswith("source."):
                s = self.sources[p]
                relations.append(f"{{{{ source('{s['source_name']}', '{s['name']}') }}}}")
            else:
                relations.append(f"{{{{ ref('{p.split('.')[-1]}') }}}}")
        sql = _sql(relations, cols[1:], rng.randint(1000, 3000), rng)
        cfg = _model_config(materialized, tags[2:], rng)
        path = f"{layer}/{domain}/{name}.sql"
        self.nodes[uid] = {
            "database": DATABASE, "schema": layer, "name": name, "resource_type": "model",
            "package_name": PROJECT, "path": path, "original_file_path": f"models/{path}",
            "unique_id": uid, "fqn": [PROJECT, layer, domain, name], "alias": name,
            "checksum": {"name": "sha256", "checksum": _digest(sql)}, "config": cfg, "tags": tags,
            "description": f"{layer.capitalize()} model for {domain} {entity}: one row per {entity[:-1]}, "
            f"built from {len(parents)} upstream relation(s).",
            "columns": _columns(cols, rng), "meta": {"owner": f"team-{domain}"} if rng.random() < 0.3 else {},
            "group": None, "docs": {"show": True, "node_color": None},
            "patch_path": f"{PROJECT}://models/{layer}/{domain}/_{domain}__models.yml", "build_path": None,
            "unrendered_config": {"materialized": materialized, "tags": tags[2:]}, "created_at": CREATED_AT,
            "relation_name": None if materialized == "ephemeral" else f'"{DATABASE}"."{layer}"."{name}"',
            "raw_code": sql, "doc_blocks": [], "language": "sql",
            "refs": [{"name": p.split(".")[-1], "package": None, "version": None} for p in parents if not p.startswith("source.")],
            "sources": [[self.sources[p]["source_name"], self.sources[p]["name"]] for p in parents if p.startswith("source.")],
            "metrics": [], "functions": [],
            "depends_on": {"macros": ["macro.synth.cents_to_dollars"] if rng.random() < 0.2 else [], "nodes": list(parents)},
            "compiled_path": None, "contract": {"enforced": False, "alias_types": True, "checksum": None},
            "access": "protected", "constraints": [], "version": None, "latest_version": None,
            "deprecation_date": None, "primary_key": ["id"], "time_spine": None,
        }
        # about two generic tests per model, on its key
        self.generic_test("unique", [uid], uid, "id")
        self.generic_test("not_null", [uid], uid, "id")
        if rng.random() < 0.1:
            self.generic_test("accepted_values", [uid], uid, cols[1], values=["a", "b", "c"])
        return uid

    def make_models(self, sources: list[str], seeds: list[str]) -> None:
        rng, n = self.rng, self.n
        n_stg = max(1, n * 40 // 100)
        n_int = max(1, n * 35 // 100)
        n_mart = n - n_stg - n_int
        staging, inter, marts = [], [], []
        src_iter = 0
        for i in range(n_stg):
            parents = [sources[src_iter % len(sources)]]
            src_iter += 1
            if rng.random() < 0.2:
                parents.append(seeds[rng.randrange(len(seeds))])
            staging.append(self.model("staging", i, parents))

        def pick(pools: list[tuple[list[str], float]], k: int) -> list[str]:
            """``k`` distinct parents, each from a pool chosen by weight, recent nodes a little likelier."""
            pools = [(pool, w) for pool, w in pools if pool]
            total = sum(w for _, w in pools)
            out: list[str] = []
            for _ in range(k * 4):
                if len(out) == k:
                    break
                r, acc = rng.random() * total, 0.0
                for pool, weight in pools:
                    acc += weight
                    if r <= acc:
                        break
                cand = pool[len(pool) - 1 - int(rng.random() ** 2 * len(pool))]
                if cand not in out:
                    out.append(cand)
            return out

        for i in range(n_int):
            k = rng.choice((1, 1, 2, 2, 3, 4))
            parents = pick([(staging, 0.7), (inter, 0.3)], k) if inter else pick([(staging, 1.0)], k)
            uid = self.model("intermediate", i, parents)
            inter.append(uid)
            if len(parents) > 1 and rng.random() < 0.33:
                self.generic_test("relationships", [parents[1], uid], uid, "id", to=f"ref('{parents[1].split('.')[-1]}')", field="id")
        for i in range(n_mart):
            k = rng.choice((1, 2, 2, 3, 3, 4))
            parents = pick([(inter, 0.6), (staging, 0.2), (marts, 0.2)], k) if marts else pick([(inter, 0.8), (staging, 0.2)], k)
            uid = self.model("marts", i, parents)
            marts.append(uid)
            if len(parents) > 1 and rng.random() < 0.33:
                self.generic_test("relationships", [parents[1], uid], uid, "id", to=f"ref('{parents[1].split('.')[-1]}')", field="id")

    def make_macros(self) -> None:
        for i in range(max(5, self.n // 20)):
            name = "cents_to_dollars" if i == 0 else f"util_macro_{i}"
            uid = f"macro.{PROJECT}.{name}"
            sql = f"{{% macro {name}(column_name, scale=2) %}}\n    ({{{{ column_name }}}} / 100)::numeric(16, {{{{ scale }}}})\n{{% endmacro %}}"
            self.macros[uid] = {
                "name": name, "resource_type": "macro", "package_name": PROJECT,
                "path": f"macros/{name}.sql", "original_file_path": f"macros/{name}.sql", "unique_id": uid,
                "macro_sql": sql, "depends_on": {"macros": []}, "description": "", "meta": {},
                "docs": {"show": True, "node_color": None}, "patch_path": None, "arguments": [],
                "created_at": CREATED_AT, "supported_languages": None,
            }

    def build(self) -> dict[str, Any]:
        sources = self.make_sources()
        seeds = self.make_seeds()
        self.make_snapshots(sources)
        self.make_models(sources, seeds)
        for i, src in enumerate(sources):
            if i % 5 == 0:
                self.generic_test("not_null", [src], src, "id")
        self.make_macros()
        parent_map: dict[str, list[str]] = {}
        child_map: dict[str, list[str]] = {uid: [] for uid in [*self.nodes, *self.sources]}
        for uid, node in self.nodes.items():
            parent_map[uid] = list(node.get("depends_on", {}).get("nodes", []))
            for p in parent_map[uid]:
                child_map[p].append(uid)
        for uid in self.sources:
            parent_map[uid] = []
        metadata = {
            "dbt_schema_version": SCHEMA_URL, "dbt_version": DBT_VERSION,
            "generated_at": "2026-01-01T00:00:00.000000Z", "invocation_id": "00000000-0000-4000-8000-000000000000",
            "invocation_started_at": "2026-01-01T00:00:00.000000Z", "env": {}, "project_name": PROJECT,
            "project_id": hashlib.md5(PROJECT.encode()).hexdigest(), "user_id": None,
            "send_anonymous_usage_stats": False, "adapter_type": "duckdb",
            "quoting": {"database": True, "schema": True, "identifier": True, "column": None},
            "run_started_at": "2026-01-01T00:00:00.000000+00:00",
        }
        return {
            "metadata": metadata, "nodes": self.nodes, "sources": self.sources, "macros": self.macros,
            "docs": {}, "exposures": {}, "metrics": {}, "groups": {}, "selectors": {}, "disabled": {},
            "parent_map": parent_map, "child_map": child_map, "group_map": {}, "saved_queries": {},
            "semantic_models": {}, "unit_tests": {}, "functions": {},
        }


def generate(models: int, seed: int = 0) -> dict[str, Any]:
    """The manifest as a dict (see the module docstring)."""
    return Synth(models, seed).build()


def write(models: int, seed: int, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_bytes(orjson.dumps(generate(models, seed)))
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args(argv)
    path = write(args.models, args.seed, args.output)
    print(f"{path}: {path.stat().st_size / 1e6:.1f} MB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
