"""dbt's vocabulary: which flags a user may pass, and the command lines built from it."""

from __future__ import annotations

import pytest

from manifest_dag import ConfigError
from manifest_dag.core.dbt import (
    ALLOWED_FLAGS,
    COMMAND_FLAGS,
    COMMAND_FOR_TYPE,
    EXECUTABLE_TYPES,
    MANAGED_FLAGS,
    build_dbt_argv,
    check_dbt_flags,
    command_args,
)


@pytest.mark.parametrize(
    "flags", [["--target", "prod"], ["--threads", "4", "--vars={}"], ["-s", "orders"], ["--project-dir=/x"]]
)
def test_managed_flags_are_refused_with_the_way_instead(flags: list[str]) -> None:
    flag = next(f for f in flags if f.split("=")[0] in MANAGED_FLAGS).split("=")[0]
    with pytest.raises(ConfigError) as info:
        check_dbt_flags(flags, "DbtRunOperator(task_id='t')")
    message = str(info.value)
    assert message.startswith("DbtRunOperator(task_id='t'): dbt flag " + flag + " is not allowed")
    assert MANAGED_FLAGS[flag] in message


@pytest.mark.parametrize("flag", ["--frobnicate", "--frobnicate=1", "-z"])
def test_unknown_flags_are_refused_naming_the_flag(flag: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown dbt flag {flag.split('=')[0]} in dbt_flags"):
        check_dbt_flags([flag], "here")


@pytest.mark.parametrize("flags", ["--threads 4", ["--threads", 4], [None]])
def test_flags_must_be_a_list_of_strings(flags) -> None:
    with pytest.raises(ConfigError, match="here: dbt_flags must be a list of strings"):
        check_dbt_flags(flags, "here")


def test_allowed_flags_pass_with_their_values() -> None:
    flags = ["--threads", "4", "--fail-fast", "--state=prod-artifacts", "--defer", "--log-level", "debug"]
    assert check_dbt_flags(flags, "here") == tuple(flags)
    assert check_dbt_flags((), "here") == ()


@pytest.mark.parametrize("flag", ["--full-refresh", "-f"])
def test_full_refresh_passes_only_for_the_commands_that_take_it(flag: str) -> None:
    for command in ("run", "build", "seed", "compile"):
        assert check_dbt_flags([flag], "here", command) == (flag,)
    assert check_dbt_flags([flag], "here") == (flag,)  # no command named: nothing to hold it against
    for command in ("test", "snapshot", "source freshness", "run-operation"):
        with pytest.raises(ConfigError, match=f"here: dbt {command} takes no {flag}; only build, clone, compile"):
            check_dbt_flags([flag], "here", command)


def test_no_flag_is_both_managed_and_allowed() -> None:
    assert not set(MANAGED_FLAGS) & ALLOWED_FLAGS
    assert not set(COMMAND_FLAGS) & (set(MANAGED_FLAGS) | ALLOWED_FLAGS)


def test_every_executable_type_has_a_command() -> None:
    assert EXECUTABLE_TYPES <= set(COMMAND_FOR_TYPE)


@pytest.mark.parametrize(
    ("call", "args"),
    [
        (command_args("run"), ["run"]),
        (command_args("source freshness", ["source:a.b"]), ["source", "freshness", "--select", "source:a.b"]),
        (command_args("test", (), ["x", "y"]), ["test", "--exclude", "x", "y"]),
        (command_args("build", ["a"], ["b"], "nightly", "cautious"),
         ["build", "--select", "a", "--exclude", "b", "--selector", "nightly", "--indirect-selection", "cautious"]),
        (command_args("run", iter(["a"]), selector=""), ["run", "--select", "a"]),
    ],
)  # fmt: skip
def test_command_args_leave_empty_parts_out(call: list[str], args: list[str]) -> None:
    assert call == args


def argv(args: list[str], vars_json: str | None = '{"day": "2024-01-01"}') -> list[str]:
    return build_dbt_argv(
        "/venv/bin/dbt", args, "/work/p", ["--profiles-dir", "/prof"], "/work/p/target", "/work/logs", vars_json
    )


def test_argv_of_a_run() -> None:
    assert argv(["run", "--select", "orders"]) == [
        "/venv/bin/dbt", "run", "--select", "orders",
        "--project-dir", "/work/p", "--profiles-dir", "/prof",
        "--target-path", "/work/p/target", "--log-path", "/work/logs",
        "--vars", '{"day": "2024-01-01"}', "--no-use-colors",
    ]  # fmt: skip


def test_deps_takes_no_target_path_nor_vars() -> None:
    line = argv(["deps"])
    assert "--target-path" not in line and "--vars" not in line
    assert line[:4] == ["/venv/bin/dbt", "deps", "--project-dir", "/work/p"]
    assert "--log-path" in line


def test_no_vars_no_vars_flag() -> None:
    assert "--vars" not in argv(["run"], None) and "--vars" not in argv(["run"], "")


@pytest.mark.parametrize("colors", [[], ["--use-colors"], ["--no-use-colors"]])
def test_no_use_colors_is_added_once_unless_the_user_chose(colors: list[str]) -> None:
    line = argv(["run", *colors])
    assert line.count("--no-use-colors") + line.count("--use-colors") == 1
    if colors:
        assert colors[0] in line
