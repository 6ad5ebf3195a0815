"""What every benchmark shares: a figure with its baseline, and timing helpers."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Figure:
    name: str
    unit: str
    median: float
    baseline_name: str
    baseline_median: float
    target: str
    ok: bool
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.median / self.baseline_median if self.baseline_median else float("nan")


def median_time(fn: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def per_op(fn: Callable[[], object], batch: int, batches: int) -> float:
    """Median seconds per call, timing batches so the clock's own cost vanishes."""

    def run_batch() -> None:
        for _ in range(batch):
            fn()

    return median_time(run_batch, batches) / batch
