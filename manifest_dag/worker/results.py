"""``run_results.json`` (and ``sources.json``) → a summary the operator can log and fail with.

dbt writes ``target/run_results.json`` after every ``run``/``test``/``build``/``seed``/``snapshot``
(schema v6 since dbt 1.8), and ``target/sources.json`` after ``source freshness`` (schema v3),
which has no message per source: the summary states the age and the threshold crossed instead.
The operator reads them after the subprocess ends: its exit code says *whether* dbt failed, these
files say *which* nodes failed or warned and dbt's own reason. No Airflow, no dbt import here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson

from manifest_dag.core.errors import DbtRunError

# dbt's node statuses (dbt.artifacts.schemas.results.NodeStatus), grouped the way dbt counts them.
STATUS_SUCCESS = "success"
STATUS_PASS = "pass"
STATUS_WARN = "warn"
STATUS_ERROR = "error"
STATUS_FAIL = "fail"
STATUS_RUNTIME_ERROR = "runtime error"
STATUS_SKIPPED = "skipped"
STATUS_PARTIAL = "partial success"
STATUS_NO_OP = "no-op"

_PASSED = frozenset({STATUS_SUCCESS, STATUS_PASS})
_ERRORS = frozenset({STATUS_ERROR, STATUS_RUNTIME_ERROR})
#: what dbt's ``interpret_results`` counts as a failed invocation (exit code 1).
_FAILING = frozenset({STATUS_ERROR, STATUS_RUNTIME_ERROR, STATUS_FAIL, STATUS_PARTIAL, STATUS_SKIPPED})

_CARETS = re.compile(r"^[\s^~]*$")


@dataclass(frozen=True, slots=True)
class NodeResult:
    """One node's line of ``run_results.json``."""

    unique_id: str
    status: str
    message: str | None
    execution_time: float
    failures: int | None
    adapter_response: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    #: the SQL dbt ran for the node (models, tests, snapshots; None for seeds and sources)
    compiled_code: str | None = None

    @property
    def one_line_message(self) -> str:
        """dbt's message on one line (compile errors span several), or ``""``."""
        if not self.message:
            return ""
        lines = (" ".join(ln.split()) for ln in self.message.splitlines())
        return " ".join(ln for ln in lines if ln and not _CARETS.match(ln))

    def describe(self) -> str:
        """``<unique_id> [<STATUS>]: <dbt's message>``."""
        text = f"{self.unique_id} [{self.status.upper()}]"
        msg = self.one_line_message
        return f"{text}: {msg}" if msg else text


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What one dbt invocation did, node by node."""

    command: str
    success: bool
    elapsed: float
    results: tuple[NodeResult, ...]
    dbt_version: str | None = None
    invocation_id: str | None = None

    def _with(self, statuses: frozenset[str] | str) -> tuple[NodeResult, ...]:
        if isinstance(statuses, str):
            statuses = frozenset({statuses})
        return tuple(r for r in self.results if r.status in statuses)

    @property
    def errors(self) -> tuple[NodeResult, ...]:
        """Nodes dbt could not run: ``error`` and ``runtime error`` (SQL, compile, connection)."""
        return self._with(_ERRORS)

    @property
    def failures(self) -> tuple[NodeResult, ...]:
        """Tests that ran and failed (``fail``)."""
        return self._with(STATUS_FAIL)

    @property
    def partial_successes(self) -> tuple[NodeResult, ...]:
        """Microbatch models where some batches failed (``partial success``)."""
        return self._with(STATUS_PARTIAL)

    @property
    def warnings(self) -> tuple[NodeResult, ...]:
        """Tests (or freshness checks) that ran and warned (``warn``)."""
        return self._with(STATUS_WARN)

    @property
    def skipped(self) -> tuple[NodeResult, ...]:
        """Nodes dbt skipped, usually because something upstream failed."""
        return self._with(STATUS_SKIPPED)

    @property
    def passed(self) -> tuple[NodeResult, ...]:
        """Nodes that ran cleanly: ``success`` (models, seeds, snapshots) and ``pass`` (tests)."""
        return self._with(_PASSED)

    @property
    def no_ops(self) -> tuple[NodeResult, ...]:
        """Nodes dbt had nothing to do for (``no-op``)."""
        return self._with(STATUS_NO_OP)

    @property
    def failing(self) -> tuple[NodeResult, ...]:
        """Every node that makes dbt exit non-zero (errors, failures, partial successes, skips)."""
        return tuple(r for r in self.results if _is_failing(r))

    @property
    def node_seconds(self) -> float:
        """The nodes' ``execution_time`` summed: what dbt spent running SQL. For a task of one
        node, the task's time beyond it is overhead (start-up, parse, waiting for a DuckDB file's
        turn); nodes run on several threads overlap, so their sum can exceed the run's wall time."""
        return sum(r.execution_time for r in self.results)

    def counts(self) -> dict[str, int]:
        """Counts in dbt's own ``Done.`` line terms, with test failures apart from errors."""
        return {
            "PASS": len(self.passed),
            "WARN": len(self.warnings),
            "ERROR": len(self.errors) + len(self.partial_successes),
            "FAIL": len(self.failures),
            "SKIP": len(self.skipped),
            "NO-OP": len(self.no_ops),
            "TOTAL": len(self.results),
        }

    def _counts_text(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.counts().items())

    def compiled_sql(self) -> str:
        """The compiled SQL of the nodes that have some, for the task's rendered fields: one node's
        as is, several each under a ``-- <unique_id>`` line; ``""`` when none has any."""
        compiled = [r for r in self.results if r.compiled_code]
        if len(compiled) == 1:
            return compiled[0].compiled_code or ""
        return "\n\n".join(f"-- {r.unique_id}\n{r.compiled_code}" for r in compiled)

    def warned(self) -> list[dict[str, Any]]:
        """The nodes that ended in ``warn``, as plain data (the task's XCom and its
        ``on_warning_callback`` get this): ``unique_id``, dbt's message on one line (masked when
        the summary is) and ``failures`` (a test's failing rows; ``None`` for freshness)."""
        return [
            {"unique_id": r.unique_id, "message": r.one_line_message, "failures": r.failures} for r in self.warnings
        ]

    def failure_message(self) -> str:
        """Why the invocation failed: one line per failing node with dbt's own message.

        Empty when nothing failed.
        """
        broken = [*self.errors, *self.partial_successes, *self.failures]
        skipped = [r for r in self.skipped if _is_failing(r)]
        if not broken and not skipped:
            return ""
        lines = [f"dbt {self.command} failed ({self._counts_text()}):"]
        lines.extend(f"  {r.describe()}" for r in broken)
        lines.extend(
            f"  {r.describe()}" + ("" if r.message else " (not run: an upstream node failed)") for r in skipped
        )
        return "\n".join(lines)

    def log_lines(self) -> list[str]:
        """A human summary for the task log: counts, then every non-passing node."""
        lines = [f"dbt {self.command}: {len(self.results)} nodes in {self.elapsed:.2f}s; {self._counts_text()}"]
        for label, group in (
            ("error", self.errors),
            ("partial success", self.partial_successes),
            ("test failure", self.failures),
            ("warning", self.warnings),
            ("skipped", self.skipped),
        ):
            lines.extend(f"{label}: {r.describe()}" for r in group)
        return lines

    def __str__(self) -> str:
        return "\n".join(self.log_lines())

    def masked(self, mask: Callable[[str], str]) -> RunSummary:
        """This summary with ``mask`` applied to dbt's text (messages, adapter responses, compiled SQL).

        dbt's messages quote SQL, connection errors and compiled code, which can hold a secret;
        whatever logs, raises or returns a summary takes the masked one.
        """
        return replace(self, results=tuple(_masked_node(r, mask) for r in self.results))


def _masked_value(value: Any, mask: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, Mapping):
        return {k: _masked_value(v, mask) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked_value(v, mask) for v in value]
    return value


def _masked_node(result: NodeResult, mask: Callable[[str], str]) -> NodeResult:
    return replace(
        result,
        message=mask(result.message) if result.message else result.message,
        adapter_response=MappingProxyType({k: _masked_value(v, mask) for k, v in result.adapter_response.items()}),
        compiled_code=mask(result.compiled_code) if result.compiled_code else result.compiled_code,
    )


def _is_failing(result: NodeResult) -> bool:
    # dbt does not fail an invocation over a skipped exposure.
    if result.status == STATUS_SKIPPED and result.unique_id.startswith("exposure."):
        return False
    return result.status in _FAILING


def _command(data: Mapping[str, Any]) -> str:
    args = data.get("args")
    if isinstance(args, Mapping):
        which = args.get("which")
        if isinstance(which, str) and which:
            return which.replace("-", " ") if which == "source-freshness" else which
        invocation = args.get("invocation_command")
        if isinstance(invocation, str) and invocation.split()[1:]:
            return invocation.split()[1]
    return "unknown"


def _node(path: Path, index: int, raw: Any) -> NodeResult:
    if not isinstance(raw, Mapping):
        raise DbtRunError(f"{path}: results[{index}] is not an object; is this dbt's {path.name}?")
    unique_id = raw.get("unique_id")
    status = raw.get("status")
    if not isinstance(unique_id, str) or not isinstance(status, str):
        raise DbtRunError(f"{path}: results[{index}] has no unique_id/status; is this dbt's {path.name}?")
    message = raw.get("message")
    compiled = raw.get("compiled_code")
    failures = raw.get("failures")
    response = raw.get("adapter_response")
    try:
        execution_time = float(raw.get("execution_time") or 0.0)
    except (TypeError, ValueError):
        execution_time = 0.0
    return NodeResult(
        unique_id=unique_id,
        status=status,
        message=message if isinstance(message, str) else (None if message is None else str(message)),
        execution_time=execution_time,
        failures=failures if isinstance(failures, int) and not isinstance(failures, bool) else None,
        adapter_response=MappingProxyType(dict(response)) if isinstance(response, Mapping) else MappingProxyType({}),
        compiled_code=compiled if isinstance(compiled, str) else None,
    )


def parse_run_results(data: Any, path: Path | str = "run_results.json") -> RunSummary:
    """Build a RunSummary from the already-decoded JSON of a ``run_results.json``."""
    path = Path(path)
    if not isinstance(data, Mapping) or not isinstance(data.get("results"), list):
        raise DbtRunError(f"{path}: has no 'results' list; is this dbt's {path.name}?")
    results = tuple(_node(path, i, raw) for i, raw in enumerate(data["results"]))
    raw_metadata = data.get("metadata")
    metadata: Mapping[str, Any] = raw_metadata if isinstance(raw_metadata, Mapping) else {}
    try:
        elapsed = float(data.get("elapsed_time") or 0.0)
    except (TypeError, ValueError):
        elapsed = 0.0
    return RunSummary(
        command=_command(data),
        success=not any(_is_failing(r) for r in results),
        elapsed=elapsed,
        results=results,
        dbt_version=metadata.get("dbt_version"),
        invocation_id=metadata.get("invocation_id"),
    )


def _read_json(path: Path, name: str) -> Any:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DbtRunError(
            f"{path}: dbt wrote no {name}; it stopped before running any node "
            "(see dbt's log above for why: often a profile, connection or parse error)"
        ) from None
    except OSError as exc:
        raise DbtRunError(f"{path}: cannot read {name}: {exc}") from exc
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DbtRunError(f"{path}: is not valid JSON ({exc}); dbt may have been killed while writing it") from exc


def read_run_results(path: Path | str) -> RunSummary:
    """Read dbt's ``run_results.json``; a missing or unreadable file is a DbtRunError naming it."""
    path = Path(path)
    return parse_run_results(_read_json(path, "run_results.json"), path)


#: the artifact ``dbt source freshness`` writes instead of run_results.json
FRESHNESS_RESULTS = "sources.json"


def _freshness_message(raw: Mapping[str, Any]) -> str | None:
    """What dbt's console says of a stale source, from a ``sources.json`` entry (which has no
    message): how old its newest row is and the threshold it crossed; a runtime error's text."""
    if raw.get("error") is not None:
        return str(raw["error"])
    status = raw.get("status")
    if status not in (STATUS_WARN, STATUS_ERROR):
        return None
    parts: list[str] = []
    age = raw.get("max_loaded_at_time_ago_in_s")
    if isinstance(age, (int, float)) and not isinstance(age, bool):
        parts.append(f"newest row loaded {age:.0f} s ago (max_loaded_at {raw.get('max_loaded_at')})")
    criteria = raw.get("criteria")
    key = "warn_after" if status == STATUS_WARN else "error_after"
    limit = criteria.get(key) if isinstance(criteria, Mapping) else None
    if isinstance(limit, Mapping) and limit.get("count") is not None and limit.get("period"):
        parts.append(f"{key.replace('_', ' ')} {limit['count']} {limit['period']}")
    return "; ".join(parts) or None


def parse_freshness_results(data: Any, path: Path | str = FRESHNESS_RESULTS) -> RunSummary:
    """A RunSummary from the decoded JSON of ``dbt source freshness``'s ``sources.json``.

    Its statuses are the ones run results use (``pass``, ``warn``, ``error``, ``runtime error``),
    so a stale source past ``error_after`` fails like a failing node and one past ``warn_after``
    is a warning. dbt leaves a source whose query failed out of this file (dbt 1.11): its error is
    only in dbt's console lines.
    """
    path = Path(path)
    if not isinstance(data, Mapping) or not isinstance(data.get("results"), list):
        raise DbtRunError(f"{path}: has no 'results' list; is this dbt's sources.json?")
    results = []
    for i, raw in enumerate(data["results"]):
        node = _node(path, i, raw)
        results.append(replace(node, message=node.message or _freshness_message(raw)))
    raw_metadata = data.get("metadata")
    metadata: Mapping[str, Any] = raw_metadata if isinstance(raw_metadata, Mapping) else {}
    try:
        elapsed = float(data.get("elapsed_time") or 0.0)
    except (TypeError, ValueError):
        elapsed = 0.0
    return RunSummary(
        command="source freshness",
        success=not any(_is_failing(r) for r in results),
        elapsed=elapsed,
        results=tuple(results),
        dbt_version=metadata.get("dbt_version"),
        invocation_id=metadata.get("invocation_id"),
    )


def read_freshness_results(path: Path | str) -> RunSummary:
    """Read ``sources.json``; a missing or unreadable file is a DbtRunError naming it."""
    path = Path(path)
    return parse_freshness_results(_read_json(path, FRESHNESS_RESULTS), path)
