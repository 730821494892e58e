#!/usr/bin/env python3
"""Regenerate the dbt fixtures: manifests, partial-parse files and dbt's own `dbt ls` answers.

Run it with any Python 3.10+ (standard library only); dbt itself runs in its own venv as
subprocesses, so nothing here imports dbt. `make golden` calls it.

For each fixture project in fixtures/<project>/ it:

1. creates (or reuses) the dbt venv at .cache/dbt-venv (dbt-core~=1.11.0, dbt-duckdb~=1.11.0),
   and rewrites the seed CSVs of projects that have a generate_seeds.py;
2. runs `dbt deps` (projects with a packages.yml) and `dbt build` from an empty DuckDB file,
   and writes fixtures/manifests/<project>/build_summary.json (statuses by resource type);
3. runs `dbt parse --no-partial-parse` and copies target/manifest.json and
   target/partial_parse.msgpack to fixtures/manifests/<project>/;
4. runs `dbt ls --output json --output-keys unique_id` once per case in
   fixtures/selection/cases.json and writes fixtures/selection/<project>_dbt_ls.json.

The answers are whatever dbt says, including its errors and warnings; never edit them by hand.
Add cases to cases.json and rerun instead.

By default the `dbt ls` cases run through dbt's own programmatic entry point (`dbtRunner`,
the function the `dbt` command calls) in one worker process in the dbt venv, so dbt is imported
once instead of once per case; `--cli` runs a separate `dbt ls` command per case instead (slower,
same answers: checked when the fixtures were made).

Options: --project NAME (repeatable), --skip-build, --cli, --jobs N (parallel `dbt ls` commands
with --cli).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
MANIFESTS = FIXTURES / "manifests"
SELECTION = FIXTURES / "selection"
CASES_FILE = SELECTION / "cases.json"
README = FIXTURES / "README.md"
VENV = REPO / ".cache" / "dbt-venv"
UV = REPO / ".venv" / "bin" / "uv"

REQUIREMENTS = ["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"]
PROJECTS = ["shop", "shop_default_selector"]
# Each project's profiles.yml reads its DuckDB path from this variable (default: a file in the
# project folder). It is left unset for parse and ls, so the stored partial_parse.msgpack was
# written with the profile as committed.
DB_ENV_VARS = {
    "shop": "SHOP_DUCKDB_PATH",
    "shop_default_selector": "SHOP_DEFAULT_SELECTOR_DUCKDB_PATH",
}
INDIRECT_MODES = {"eager", "cautious", "buildable", "empty"}
CASE_KEYS = {
    "name", "select", "exclude", "selector", "resource_types", "exclude_resource_types",
    "indirect_selection", "note",
}
README_START = "<!-- build-results:start -->"
README_END = "<!-- build-results:end -->"


def log(msg: str) -> None:
    print(f"[make_fixtures] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- venv


def venv_bin(name: str) -> Path:
    return VENV / "bin" / name


def ensure_venv() -> dict[str, str]:
    """Create or reuse the dbt venv; return the installed versions."""
    stamp = VENV / ".requirements"
    wanted = "\n".join(REQUIREMENTS) + "\n"
    if not venv_bin("python").exists():
        log(f"creating {VENV.relative_to(REPO)}")
        VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if not (stamp.exists() and stamp.read_text() == wanted and venv_bin("dbt").exists()):
        log(f"installing {' '.join(REQUIREMENTS)}")
        if UV.exists():
            cmd = [str(UV), "pip", "install", "--python", str(venv_bin("python")), *REQUIREMENTS]
        else:
            cmd = [str(venv_bin("python")), "-m", "pip", "install", "--quiet", *REQUIREMENTS]
        subprocess.run(cmd, check=True)
        stamp.write_text(wanted)
    out = subprocess.run(
        [
            str(venv_bin("python")), "-c",
            "import json, platform, importlib.metadata as m;"
            "print(json.dumps({'python': platform.python_version(),"
            " **{p: m.version(p) for p in ('dbt-core', 'dbt-duckdb', 'duckdb')}}))",
        ],
        check=True, capture_output=True, text=True,
    ).stdout
    versions = json.loads(out)
    if not versions["dbt-core"].startswith("1.11."):
        raise SystemExit(f"expected dbt-core 1.11.x in {VENV}, found {versions['dbt-core']}")
    return versions


def dbt_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    for var in DB_ENV_VARS.values():
        env.pop(var, None)
    # Anything DBT_* from the caller's shell could change what dbt answers; start clean.
    for key in [k for k in env if k.startswith("DBT_")]:
        del env[key]
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    env["DBT_USE_COLORS"] = "false"
    env["PYTHONHASHSEED"] = "0"
    env.update(extra or {})
    return env


def run_dbt(project: str, args: list[str], env_extra: dict[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    project_dir = FIXTURES / project
    cmd = [str(venv_bin("dbt")), *args, "--project-dir", str(project_dir),
           "--profiles-dir", str(project_dir)]
    proc = subprocess.run(cmd, cwd=project_dir, env=dbt_env(env_extra),
                          capture_output=True, text=True)
    if check and proc.returncode != 0:
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"`dbt {' '.join(args)}` failed in {project_dir} ({proc.returncode})")
    return proc


# --------------------------------------------------------------------------- steps


def generate_seeds(project: str) -> None:
    """Rewrite a project's seed CSVs from its generator (deterministic: no diff unless it changed)."""
    script = FIXTURES / project / "generate_seeds.py"
    if script.exists():
        log(f"{project}: {script.relative_to(REPO)}")
        subprocess.run([sys.executable, str(script)], check=True, stdout=subprocess.DEVNULL)


def deps(project: str) -> None:
    if (FIXTURES / project / "packages.yml").exists():
        log(f"{project}: dbt deps")
        run_dbt(project, ["deps"])


def build(project: str, versions: dict[str, str]) -> dict[str, object]:
    """`dbt build` from an empty DuckDB file; return counts from run_results.json."""
    with tempfile.TemporaryDirectory(prefix=f"{project}-build-") as tmp:
        db = Path(tmp) / f"{project}.duckdb"
        target = Path(tmp) / "target"
        log(f"{project}: dbt build (empty database {db.name})")
        start = time.monotonic()
        proc = run_dbt(
            project,
            ["build", "--target-path", str(target), "--log-path", str(Path(tmp) / "logs")],
            env_extra={DB_ENV_VARS[project]: str(db)}, check=False,
        )
        elapsed = time.monotonic() - start
        results = json.loads((target / "run_results.json").read_text())
    by_status: dict[str, int] = {}
    by_type: dict[str, dict[str, int]] = {}
    for result in results["results"]:
        status = result["status"]
        rtype = result["unique_id"].split(".", 1)[0]
        by_status[status] = by_status.get(status, 0) + 1
        by_type.setdefault(rtype, {})
        by_type[rtype][status] = by_type[rtype].get(status, 0) + 1
    summary = {
        "command": "dbt build",
        "returncode": proc.returncode,
        "total": len(results["results"]),
        "by_status": dict(sorted(by_status.items())),
        "by_resource_type": {k: dict(sorted(v.items())) for k, v in sorted(by_type.items())},
        "versions": versions,
    }
    tail = proc.stdout.strip().splitlines()[-1:] or [""]
    log(f"{project}: {tail[0].split('  ', 1)[-1].strip()} in {elapsed:.1f}s")
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout)
        raise SystemExit(f"{project}: dbt build failed; see the output above")
    return summary


def parse(project: str) -> None:
    log(f"{project}: dbt parse --no-partial-parse")
    run_dbt(project, ["parse", "--no-partial-parse"])
    out = MANIFESTS / project
    out.mkdir(parents=True, exist_ok=True)
    target = FIXTURES / project / "target"
    for name in ("manifest.json", "partial_parse.msgpack"):
        shutil.copyfile(target / name, out / name)
    log(f"{project}: wrote {out.relative_to(REPO)}/manifest.json, partial_parse.msgpack")


def load_cases(project: str) -> list[dict[str, object]]:
    all_cases = json.loads(CASES_FILE.read_text())
    cases = all_cases.get(project, [])
    names = set()
    for case in cases:
        unknown = set(case) - CASE_KEYS
        if unknown:
            raise SystemExit(f"{CASES_FILE}: case {case.get('name')!r} has unknown keys {unknown}")
        if case["name"] in names:
            raise SystemExit(f"{CASES_FILE}: duplicate case name {case['name']!r} in {project}")
        names.add(case["name"])
        mode = case.get("indirect_selection")
        if mode is not None and mode not in INDIRECT_MODES:
            raise SystemExit(f"{CASES_FILE}: case {case['name']!r}: bad indirect_selection {mode!r}")
    return cases


def ls_args(case: dict[str, object]) -> list[str]:
    args = ["ls", "--output", "json", "--output-keys", "unique_id", "--log-format", "json"]
    if case.get("select"):
        args += ["--select", *case["select"]]
    if case.get("exclude"):
        args += ["--exclude", *case["exclude"]]
    if case.get("selector"):
        args += ["--selector", case["selector"]]
    for rtype in case.get("resource_types") or []:
        args += ["--resource-type", rtype]
    for rtype in case.get("exclude_resource_types") or []:
        args += ["--exclude-resource-type", rtype]
    if case.get("indirect_selection"):
        args += ["--indirect-selection", case["indirect_selection"]]
    return args


def digest_events(events: list[dict[str, object]]) -> tuple[set[str], list[str], list[str], bool]:
    """dbt's log events (as its JSON log lines) -> (selected ids, warnings, errors, partial ok)."""
    selected: set[str] = set()
    warnings: list[str] = []
    errors: list[str] = []
    partial_parse_ok = True
    for event in events:
        info = event.get("info", {})
        name, level, msg = info.get("name"), info.get("level"), info.get("msg", "")
        if name in ("PrintEvent", "ListCmdOut") and msg.startswith("{"):
            selected.add(json.loads(msg)["unique_id"])
        elif name == "MainEncounteredError":
            errors.append(event.get("data", {}).get("exc") or msg)
        elif name in ("UnableToPartialParse", "PartialParsingNotEnabled"):
            partial_parse_ok = False
        elif level == "error":
            errors.append(msg)
        elif level == "warn":
            warnings.append(msg)
    return selected, warnings, errors, partial_parse_ok


def run_case_cli(project: str, case: dict[str, object], work: Path) -> dict[str, object]:
    """One `dbt ls` command, in a worker's own target and log folders (seeded with the msgpack)."""
    args = ls_args(case) + ["--target-path", str(work / "target"), "--log-path", str(work / "logs")]
    proc = run_dbt(project, args, check=False)
    events = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    selected, warnings, errors, partial_parse_ok = digest_events(events)
    if proc.returncode != 0 and not errors:
        errors.append((proc.stderr or proc.stdout).strip()[-2000:])
    return make_record(project, case, selected, warnings, errors, partial_parse_ok)


def make_record(project: str, case: dict[str, object], selected: set[str], warnings: list[str],
                errors: list[str], partial_parse_ok: bool) -> dict[str, object]:
    if not partial_parse_ok:
        log(f"{project}: note: case {case['name']!r} could not use partial parsing")
    record = {
        "name": case["name"],
        "select": list(case.get("select") or []),
        "exclude": list(case.get("exclude") or []),
        "selector": case.get("selector"),
        "resource_types": list(case.get("resource_types") or []),
        "indirect_selection": case.get("indirect_selection"),
    }
    if case.get("exclude_resource_types"):
        record["exclude_resource_types"] = list(case["exclude_resource_types"])
    record.update({
        "expected": sorted(selected) if not errors else [],
        "error": "\n".join(errors) if errors else None,
        "warnings": warnings,
    })
    if case.get("note"):
        record["note"] = case["note"]
    return record


def ls_worker(project: str, cases_path: str, out_path: str) -> int:
    """Runs inside the dbt venv: every case through dbtRunner, one process, one after another."""
    from dbt.cli.main import dbtRunner  # only here: the rest of this script never imports dbt
    from google.protobuf.json_format import MessageToDict

    cases = json.loads(Path(cases_path).read_text())
    project_dir = FIXTURES / project
    work = Path(out_path).parent
    events: list[dict[str, object]] = []

    def on_event(msg: object) -> None:
        events.append(MessageToDict(msg, preserving_proto_field_name=True))

    runner = dbtRunner(callbacks=[on_event])
    answers = []
    for case in cases:
        events.clear()
        args = ls_args(case) + [
            "--target-path", str(work / "target"), "--log-path", str(work / "logs"),
            "--project-dir", str(project_dir), "--profiles-dir", str(project_dir),
        ]
        res = runner.invoke(args)
        selected, warnings, errors, partial_ok = digest_events(events)
        if res.success:
            from_result = {json.loads(line)["unique_id"] for line in res.result or []}
            if from_result != selected:
                raise SystemExit(f"case {case['name']!r}: events and result disagree")
        elif not errors:
            errors.append(str(res.exception))
        answers.append(make_record(project, case, selected, warnings, errors, partial_ok))
    Path(out_path).write_text(json.dumps(answers))
    return 0


def list_cases(project: str, jobs: int, cli: bool) -> list[dict[str, object]]:
    cases = load_cases(project)
    if not cases:
        log(f"{project}: no cases in {CASES_FILE.relative_to(REPO)}")
        return []
    msgpack = MANIFESTS / project / "partial_parse.msgpack"
    if cli:
        answers = list_cases_cli(project, cases, jobs, msgpack)
    else:
        log(f"{project}: dbt ls for {len(cases)} cases (dbtRunner, one process)")
        with tempfile.TemporaryDirectory(prefix=f"{project}-ls-") as tmp:
            work = Path(tmp)
            (work / "target").mkdir()
            shutil.copyfile(msgpack, work / "target" / "partial_parse.msgpack")
            (work / "cases.json").write_text(json.dumps(cases))
            out = work / "answers.json"
            proc = subprocess.run(
                [str(venv_bin("python")), str(Path(__file__).resolve()), "--ls-worker", project,
                 str(work / "cases.json"), str(out)],
                cwd=FIXTURES / project, env=dbt_env(), stdout=subprocess.DEVNULL,
            )
            if proc.returncode != 0:
                raise SystemExit(f"{project}: the dbt ls worker failed ({proc.returncode})")
            answers = json.loads(out.read_text())
    out = SELECTION / f"{project}_dbt_ls.json"
    out.write_text(json.dumps(answers, indent=2) + "\n")
    n_err = sum(1 for a in answers if a["error"])
    log(f"{project}: wrote {out.relative_to(REPO)} ({len(answers)} cases, {n_err} errors)")
    return answers


def list_cases_cli(project: str, cases: list[dict[str, object]], jobs: int,
                   msgpack: Path) -> list[dict[str, object]]:
    log(f"{project}: dbt ls for {len(cases)} cases (one command each, {jobs} at a time)")
    with tempfile.TemporaryDirectory(prefix=f"{project}-ls-") as tmp:
        workers = []
        for i in range(jobs):
            work = Path(tmp) / f"w{i}"
            (work / "target").mkdir(parents=True)
            shutil.copyfile(msgpack, work / "target" / "partial_parse.msgpack")
            workers.append(work)

        def task(index: int) -> dict[str, object]:
            return run_case_cli(project, cases[index], workers[index % jobs])

        # Workers take cases round-robin by index; a worker's cases run one after another.
        results: list[dict[str, object] | None] = [None] * len(cases)

        def worker(slot: int) -> None:
            for index in range(slot, len(cases), jobs):
                results[index] = task(index)

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for future in [pool.submit(worker, slot) for slot in range(jobs)]:
                future.result()
    return [r for r in results if r is not None]


def update_readme(summaries: dict[str, dict[str, object]]) -> None:
    if not README.exists() or not summaries:
        return
    text = README.read_text()
    if README_START not in text or README_END not in text:
        return
    lines = [README_START, "", "| project | dbt build | total | by resource type |",
             "|---|---|---|---|"]
    for project, s in summaries.items():
        statuses = ", ".join(f"{k} {v}" for k, v in s["by_status"].items())
        types = "; ".join(
            f"{t}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
            for t, counts in s["by_resource_type"].items()
        )
        lines.append(f"| `{project}` | {statuses} | {s['total']} | {types} |")
    any_summary = next(iter(summaries.values()))
    v = any_summary["versions"]
    lines += ["", f"dbt-core {v['dbt-core']}, dbt-duckdb {v['dbt-duckdb']}, duckdb {v['duckdb']}, "
              f"Python {v['python']}.", "", README_END]
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    README.write_text(head + "\n".join(lines) + tail)
    log(f"updated {README.relative_to(REPO)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", action="append", choices=PROJECTS,
                        help="only this project (repeatable); default: all")
    parser.add_argument("--skip-build", action="store_true", help="do not run `dbt build`")
    parser.add_argument("--cli", action="store_true",
                        help="one `dbt ls` command per case instead of one dbtRunner process")
    parser.add_argument("--jobs", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                        help="parallel `dbt ls` commands with --cli (default: CPUs, at most 4)")
    parser.add_argument("--ls-worker", nargs=3, metavar=("PROJECT", "CASES", "OUT"),
                        help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.ls_worker:
        return ls_worker(*opts.ls_worker)
    versions = ensure_venv()
    log("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    summaries: dict[str, dict[str, object]] = {}
    for project in opts.project or PROJECTS:
        generate_seeds(project)
        deps(project)
        if not opts.skip_build:
            summary = build(project, versions)
            out = MANIFESTS / project
            out.mkdir(parents=True, exist_ok=True)
            (out / "build_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            summaries[project] = summary
        parse(project)
        list_cases(project, max(1, opts.jobs), opts.cli)
    if not opts.skip_build and set(summaries) == set(PROJECTS):
        update_readme(summaries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
