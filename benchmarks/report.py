"""The pieces both reports are written with: number formats, markdown tables, medians over
runs, the earlier-runs paragraph and the load readings.

The machine is shared, so every report says the load it was measured at, and a row measured more
than once is read from the median of its runs; these helpers keep both reports saying it alike.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterable, Iterator, Mapping, Sequence


# -- numbers ---------------------------------------------------------------------------------------
def fmt_s(v: float | None) -> str:
    """Seconds with three significant figures or so; ``–`` for not measured."""
    if v is None:
        return "–"
    return f"{v:.3f}" if abs(v) < 1 else f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"


def fmt_mb(v: float | None) -> str:
    return "–" if v is None else f"{v:.0f}"


def ratio(a: float | None, b: float | None) -> str:
    """a ÷ b as a plain number; ``–`` where either is missing or b is not positive."""
    if a is None or b is None or b <= 0:
        return "–"
    r = a / b
    return f"{r:.2f}" if r < 10 else f"{r:.1f}"


def fmt_ratio(a: float | None, b: float | None) -> str:
    """a ÷ b, as ``N.N×``."""
    text = ratio(a, b)
    return text if text == "–" else text + "×"


# -- tables ----------------------------------------------------------------------------------------
def table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A markdown table, one line per row."""
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def series_line(lead: str, row: Mapping, series: Iterable[tuple[str, str]]) -> str:
    """``lead: name 1.23, 4.56; other 7.89.``: every run of each series (``(name, key in row)``), in order."""
    return (
        lead
        + ": "
        + "; ".join(name + " " + ", ".join(fmt_s(x) for x in row.get(key, [])) for name, key in series)
        + "."
    )


def measured_rows(by_case: Mapping[str, Mapping], tools: Iterable[str]) -> Iterator[tuple[str, str, Mapping]]:
    """``(tool, cache, row)`` for each ``tool/cache`` row measured: tools in order, cold before warm."""
    for tool in tools:
        for cache in ("cold", "warm"):
            row = by_case.get(f"{tool}/{cache}")
            if row:
                yield tool, cache, row


# -- medians ---------------------------------------------------------------------------------------
def medians(runs: Sequence[Mapping], keys: Iterable[str]) -> dict:
    """``runs`` = how many, and each key's median over the runs that recorded a number for it
    (a key no run recorded is left out)."""
    out: dict = {"runs": len(runs)}
    for key in keys:
        values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
        if values:
            out[key] = statistics.median(values)
    return out


def median_of_runs(latest: Mapping | None, earlier: list[Mapping] | None) -> Mapping | None:
    """The medians of ``dag_s`` and ``overhead_median_s`` over a row's successful runs (the
    latest and the earlier ones; one run: that run), with ``runs`` = how many."""
    runs = [r for r in [*(earlier or []), latest] if r and "error" not in r and r.get("state") == "success"]
    if not runs:
        return None
    keys = ("dag_s", "overhead_median_s")
    return {"runs": len(runs), **dict.fromkeys(keys), **medians(runs, keys)}


def earlier_runs_line(earlier: Mapping[str, list[Mapping]], wall: str, labels: Mapping[str, str]) -> list[str]:
    """The paragraph under a table listing its rows' earlier runs (``earlier``: ``tool/cache`` →
    runs; ``labels``: tool → its name in the tables)."""
    if not earlier:
        return []
    return [
        "Earlier runs of the same rows ("
        + wall
        + ", tasks ok, overhead median s, load, commit): "
        + "; ".join(
            f"{labels[case.split('/')[0]]}, {case.split('/')[1]}: "
            + ", ".join(
                f"{fmt_s(r.get('dag_s'))} s, {r.get('ok')}/{r.get('tasks')}, {fmt_s(r.get('overhead_median_s'))} s, "
                f"load {r.get('load')}, {r.get('code')}"
                for r in rows
            )
            for case, rows in sorted(earlier.items())
        )
        + ".",
        "",
    ]


# -- load ------------------------------------------------------------------------------------------
class LoadLog:
    """The 1-minute load average read before each measured case (the machine is shared)."""

    def __init__(self) -> None:
        self.readings: list[float] = []

    def __bool__(self) -> bool:
        return bool(self.readings)

    def read(self) -> float:
        value = os.getloadavg()[0]
        self.readings.append(value)
        return value

    def summary(self, digits: int) -> list[float]:
        """min / median / max of the readings, for the report's per-run load line."""
        xs = self.readings
        return [round(min(xs), digits), round(statistics.median(xs), digits), round(max(xs), digits)]


def load_line(loads: Mapping[str, Sequence[float]]) -> str:
    """Each run's min / median / max load, by when it ran."""
    return "; ".join(f"{k}: {' / '.join(map(str, v))}" for k, v in sorted(loads.items()))
