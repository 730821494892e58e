"""The warm dbt server's request handling that needs no dbt (it runs with a worker venv's Python)."""

from __future__ import annotations

from manifest_dag.worker.in_venv.dbt_server import _lean_artifacts


def test_result_commands_skip_manifest_json_and_say_where_run_results_go() -> None:
    for command in ("run", "test", "seed", "snapshot", "build"):
        args = [command, "--select", "a", "--target-path", "/ws/1/project/target"]
        assert _lean_artifacts(args, "/srv/dbt", {}) == "/ws/1/project/target/run_results.json"
        assert args[-1] == "--no-write-json"
    args = ["run", "--select", "a"]
    assert _lean_artifacts(args, "/srv/dbt", {}) == "/srv/dbt/target/run_results.json"


def test_requests_that_decide_for_themselves_are_left_alone() -> None:
    cases = [
        (["run", "--write-json"], {}),
        (["run", "--no-write-json"], {}),
        (["run"], {"DBT_WRITE_JSON": "true"}),
        (["run"], {"DBT_WRITE_JSON": "false"}),
        (["source", "freshness"], {}),
        (["run-operation", "m"], {}),
        (["parse"], {}),
        ([], {}),
    ]
    for args, env in cases:
        before = list(args)
        assert _lean_artifacts(args, "/srv/dbt", env) is None, (args, env)
        assert args == before


def test_warm_up_is_best_effort() -> None:
    """Without dbt (here) every step fails and is named, never raised, and nothing is offered."""
    from manifest_dag.worker.in_venv.warm_up import Handover, warm_up

    handover = Handover()
    said = warm_up("/no/such/partial_parse.msgpack", handover=handover)
    assert said.startswith("warm-up: done in "), said
    for step in ("schemas", "decode", "plugins"):
        assert f"{step}: ModuleNotFoundError" in said, said
    assert handover.raw is None and handover.manifest is None


def test_warm_up_leaves_the_rest_to_a_task_that_is_waiting() -> None:
    from manifest_dag.worker.in_venv.warm_up import warm_up

    calls = iter([False, False] + [True] * 10)
    said = warm_up("/no/such/partial_parse.msgpack", waiting=lambda: next(calls))
    assert "modules " in said and "decode: " in said, said  # ran (and failed here: no dbt)
    for step in ("serialisers", "stack", "plugins", "schemas"):
        assert f"{step} (a task is waiting)" in said, said
