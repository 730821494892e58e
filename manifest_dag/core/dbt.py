"""dbt's vocabulary as both sides use it: resource types, selection modes, commands and flags.

The scheduler plans with these words and the worker builds the same command lines from them, so
each lives here once: two copies of "which types are tests" or "which flags may a user pass"
drift apart, and then the DAG a user reviewed is not the command a worker runs. Plain data and
pure functions only (no Airflow, no dbt, no I/O).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from manifest_dag.core.errors import ConfigError

# -- resource types ----------------------------------------------------------------------------------
#: Resource types that run as dbt tests (they are attached to the nodes they test, and indirect
#: selection brings them along with those nodes).
TEST_TYPES = frozenset({"test", "unit_test"})
#: Resource types that materialise something and so may get a task. Functions (UDFs, dbt 1.11+)
#: are created by ``dbt build`` only: ``dbt run`` leaves them out.
EXECUTABLE_TYPES = frozenset({"model", "seed", "snapshot", "function"})
#: The dbt command that builds a node of each type that can have a task.
COMMAND_FOR_TYPE: Mapping[str, str] = {
    "model": "run",
    "seed": "seed",
    "snapshot": "snapshot",
    "function": "build",
    "source": "source freshness",
}

#: Values ``resource_type:`` accepts (dbt's NodeType); other values are an error in dbt too.
NODE_TYPES = frozenset(
    {
        "model",
        "analysis",
        "test",
        "snapshot",
        "operation",
        "seed",
        "rpc",
        "sql_operation",
        "doc",
        "source",
        "macro",
        "exposure",
        "metric",
        "group",
        "saved_query",
        "semantic_model",
        "unit_test",
        "fixture",
        "function",
    }
)
#: Resource types dbt keeps in the manifest's ``nodes`` collection ("parsed nodes").
PARSED_TYPES = frozenset({"model", "seed", "snapshot", "test", "analysis", "operation", "sql_operation", "rpc"})

#: What ``dbt ls`` lists when no ``--resource-type`` is given, and with ``--resource-type all``.
LS_DEFAULT_RESOURCE_TYPES = frozenset(
    {
        "model",
        "snapshot",
        "seed",
        "test",
        "source",
        "exposure",
        "metric",
        "saved_query",
        "semantic_model",
        "unit_test",
        "function",
    }
)
LS_ALL_RESOURCE_TYPES = LS_DEFAULT_RESOURCE_TYPES | {"analysis"}

# -- selection ---------------------------------------------------------------------------------------
#: ``--indirect-selection`` values (dbt's default is ``eager``).
INDIRECT_SELECTION_MODES = ("eager", "cautious", "buildable", "empty")

#: Commands that accept ``--full-refresh`` (dbt-core's ``full_refresh`` option, 1.8-1.11).
FULL_REFRESH_COMMANDS = frozenset({"run", "build", "seed", "compile", "show", "clone", "retry"})


def command_args(
    command: str,
    select: Iterable[str] = (),
    exclude: Iterable[str] = (),
    selector: str | None = None,
    indirect_selection: str | None = None,
) -> list[str]:
    """``<command> --select … --exclude … --selector … --indirect-selection …`` (empty parts left out)."""
    args = command.split()
    select, exclude = list(select), list(exclude)
    if select:
        args += ["--select", *select]
    if exclude:
        args += ["--exclude", *exclude]
    if selector:
        args += ["--selector", selector]
    if indirect_selection:
        args += ["--indirect-selection", indirect_selection]
    return args


# -- flags -------------------------------------------------------------------------------------------
#: dbt flags the operators set themselves or refuse, each with the reason.
MANAGED_FLAGS: Mapping[str, str] = {
    "--project-dir": "the operator runs dbt in a per-task copy of project_dir",
    "--profiles-dir": "the operator writes profiles.yml from profile_config",
    "--profile": "set ProfileConfig.profile_name",
    "--target": "set ProfileConfig.target_name",
    "-t": "set ProfileConfig.target_name",
    "--target-path": "the operator places target/ in the task's workspace (partial parse lives there)",
    "--log-path": "dbt's logs go to the task log and the workspace",
    "--select": "use the select argument",
    "-s": "use the select argument",
    "--models": "use the select argument",
    "-m": "use the select argument",
    "--exclude": "use the exclude argument",
    "--selector": "use the selector argument",
    "--vars": "use the dbt_vars argument (templated)",
    "--indirect-selection": "use the indirect_selection argument",
    "--args": "use DbtRunOperationOperator(macro_name=..., macro_args=...) (templated)",
}
#: ``--full-refresh`` and its short form: ``full_refresh=True`` or in ``dbt_flags`` (a per-run template)
FULL_REFRESH_FLAGS = ("--full-refresh", "-f")
#: dbt flags accepted in ``dbt_flags`` only for the commands that take them (else ConfigError).
COMMAND_FLAGS: Mapping[str, frozenset[str]] = {
    **dict.fromkeys(FULL_REFRESH_FLAGS, FULL_REFRESH_COMMANDS),
    # DbtDocsOperator's own: the one-file site, the catalog alone, an empty catalog
    **dict.fromkeys(("--static", "--no-compile", "--compile", "--empty-catalog"), frozenset({"docs generate"})),
}
#: dbt flags accepted in ``dbt_flags`` (value-taking ones take the next item).
ALLOWED_FLAGS: frozenset[str] = frozenset(
    {
        "--threads", "--fail-fast", "-x", "--warn-error", "--warn-error-options", "--no-version-check",
        "--defer", "--no-defer", "--state", "--defer-state", "--favor-state", "--store-failures",
        "--empty", "--no-partial-parse", "--partial-parse", "--debug", "-d", "--quiet", "-q",
        "--log-level", "--log-format", "--use-colors", "--no-use-colors", "--printer-width",
        "--event-time-start", "--event-time-end", "--sample", "--resource-type", "--exclude-resource-type",
        "--show", "--no-inject-ephemeral-ctes", "--static-parser", "--no-static-parser",
        "--write-json", "--no-write-json", "--cache-selected-only", "--no-cache-selected-only",
        "--single-threaded", "--no-populate-cache", "--populate-cache", "--output", "--output-keys",
    }
)  # fmt: skip


def check_dbt_flags(flags: Sequence[str], where: str, command: str | None = None) -> tuple[str, ...]:
    """Refuse flags the operator manages and unknown ones, naming the flag and the way instead.

    ``command`` (``"run"``, ``"source freshness"`` ...) also refuses a flag of ``COMMAND_FLAGS``
    that this command does not take (dbt would fail with "No such option"); without it they pass.
    An item holding a template (``"{{ ... }}"``) is checked again once rendered (the operator does).
    """
    if isinstance(flags, str) or not all(isinstance(f, str) for f in flags):
        raise ConfigError(f"{where}: dbt_flags must be a list of strings, got {flags!r}")
    for flag in flags:
        if not flag.startswith("-"):
            continue  # a value of the previous flag
        name = flag.split("=", 1)[0]
        if name in MANAGED_FLAGS:
            raise ConfigError(f"{where}: dbt flag {name} is not allowed in dbt_flags: {MANAGED_FLAGS[name]}")
        if name in COMMAND_FLAGS:
            takes = COMMAND_FLAGS[name]
            if command is not None and command not in takes:
                raise ConfigError(f"{where}: dbt {command} takes no {name}; only {', '.join(sorted(takes))} do")
            continue
        if name not in ALLOWED_FLAGS:
            raise ConfigError(
                f"{where}: unknown dbt flag {name} in dbt_flags; allowed: {', '.join(sorted(ALLOWED_FLAGS))}"
            )
    return tuple(flags)


def build_dbt_argv(
    dbt: str | Path,
    args: Sequence[str],
    project: str | Path,
    profile_args: Sequence[str],
    target: str | Path,
    logs: str | Path,
    vars_json: str | None,
) -> list[str]:
    """The full dbt command line a task runs (``plan_task`` shows the same, offline)."""
    argv = [str(dbt), *args, "--project-dir", str(project), *profile_args]
    if args[0] != "deps":  # deps takes neither
        argv += ["--target-path", str(target)]
    argv += ["--log-path", str(logs)]
    if vars_json and args[0] != "deps":
        argv += ["--vars", vars_json]
    if not any(a in ("--use-colors", "--no-use-colors") for a in args):
        argv.append("--no-use-colors")  # task logs are plain text
    return argv
