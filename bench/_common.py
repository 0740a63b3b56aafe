"""Shared helpers for the benchmarks: a row type and the table every benchmark prints.

Each ``bench/bench_*.py`` defines ``run(quick: bool = False) -> list[BenchRow]``
and prints ``format_table(run())`` when run as a script. Every figure is measured
beside its baseline in the same run, and the ratio is value / baseline (higher is
better unless ``higher_is_better`` is False).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class BenchRow:
    name: str
    value: float
    unit: str
    baseline_name: str = ""
    baseline_value: float | None = None
    higher_is_better: bool = True

    @property
    def ratio(self) -> float | None:
        if self.baseline_value in (None, 0):
            return None
        assert self.baseline_value is not None
        return self.value / self.baseline_value


def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    """Best wall time of ``repeat`` calls of ``fn``, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def format_table(rows: list[BenchRow]) -> str:
    header = f"{'benchmark':44} {'value':>12} {'unit':10} {'baseline':36} {'base value':>12} {'ratio':>7}"
    lines = [header, "-" * len(header)]
    for r in rows:
        base = "" if r.baseline_value is None else f"{r.baseline_value:12.3f}"
        ratio = "" if r.ratio is None else f"{r.ratio:7.2f}"
        lines.append(
            f"{r.name:44} {r.value:12.3f} {r.unit:10} {r.baseline_name:36} {base:>12} {ratio:>7}"
        )
    return "\n".join(lines)
