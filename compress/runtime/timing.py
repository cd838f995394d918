"""Timing: call a function repeatedly, percentiles, latency summaries."""

import statistics
import time
from typing import Callable, Dict, List, Sequence


def time_calls(
    fn: Callable[[], object], *, warmup: int = 3, repeats: int = 10, min_seconds: float = 0.0
) -> List[float]:
    """Call `fn` `warmup` times, then at least `repeats` times and for at least `min_seconds`.

    Returns:
        The duration of each timed call in milliseconds.
    """
    for _ in range(warmup):
        fn()
    times: List[float] = []
    start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0–100) with linear interpolation, as numpy's default."""
    if not values:
        raise ValueError("no values")
    data = sorted(values)
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def summarize(times_ms: Sequence[float], batch: int = 1) -> Dict[str, float]:
    """p50/p90/p99/mean/std latency (ms) and throughput (images/s, from the median)."""
    p50 = percentile(times_ms, 50)
    return {
        "p50_ms": p50,
        "p90_ms": percentile(times_ms, 90),
        "p99_ms": percentile(times_ms, 99),
        "mean_ms": statistics.mean(times_ms),
        "std_ms": statistics.pstdev(times_ms),
        "throughput": batch * 1000.0 / p50 if p50 > 0 else 0.0,
        "runs": len(times_ms),
    }
