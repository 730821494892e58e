"""Issue 19 item 4: a warm process that dies after dbt started a node is not followed by a second dbt run.

The two invokers are stand-ins that keep the ``Invoker`` contract (argv, cwd, env, line callback →
exit code); the warm server itself is exercised with real dbt in tests/e2e/test_e2e_warm.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from manifest_dag.core.errors import DbtRunError
from manifest_dag.worker.warm import FallbackInvoker

ARGV = ["/venv/bin/dbt", "run", "--select", "orders"]


class Warm:
    """Prints ``lines`` as dbt would, then its process dies."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines = lines

    def invoke(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], on_line) -> int:
        for line in self.lines:
            on_line(line)
        raise ConnectionResetError("warm dbt process 4242 closed the connection")

    def kill(self) -> None:
        pass


class Cold:
    def __init__(self) -> None:
        self.calls: list[Sequence[str]] = []

    def invoke(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], on_line) -> int:
        self.calls.append(argv)
        on_line("cold dbt ran")
        return 0

    def kill(self) -> None:
        pass


def test_a_crash_before_any_node_falls_back_to_a_fresh_process(tmp_path: Path) -> None:
    cold, lines, logs = Cold(), [], []
    warm = Warm(["12:00:00  Running with dbt=1.11.2", "12:00:01  Found 5 models"])
    code = FallbackInvoker(warm, cold, logs.append).invoke(ARGV, cwd=tmp_path, env={}, on_line=lines.append)  # type: ignore[arg-type]
    assert code == 0 and cold.calls == [ARGV]
    assert "cold dbt ran" in lines and any("running dbt as a fresh process instead" in line for line in logs)


def test_a_crash_after_a_node_started_fails_the_try_without_running_dbt_again(tmp_path: Path) -> None:
    cold, lines, logs = Cold(), [], []
    warm = Warm(["12:00:00  Running with dbt=1.11.2", "12:00:02  1 of 1 START sql table model main.orders ... [RUN]"])
    with pytest.raises(DbtRunError, match="not running `dbt run --select orders` a second time") as err:
        FallbackInvoker(warm, cold, logs.append).invoke(ARGV, cwd=tmp_path, env={}, on_line=lines.append)  # type: ignore[arg-type]
    assert cold.calls == []  # the model's hooks and SQL ran at most once in this try
    assert err.value.command == "run --select orders"
    assert "1 of 1 START sql table model main.orders" in str(err.value)
    assert lines[-1].endswith("[RUN]")  # the task log kept what dbt printed
