"""The CPU thread count a run uses when its config does not say (``threads: null``)."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_threads(torch_default: int) -> int:
    """One thread fewer than the usable CPUs (at least 1), at most torch's default.

    Where ``OMP_NUM_THREADS`` says how many (torchrun sets it to 1 per process), that choice is
    kept: torch's default, which honours it, is returned.

    torch's default (one thread per core) makes every operation wait on its slowest thread: when
    anything else runs on the machine — a data worker, the OS, another job on a shared VM — one
    thread per core runs several times slower. `benchmarks/threads.py` measured on a 2-vCPU VM
    (docs/benchmarks.md, "CPU threads"): idle, 2 threads trained 1.06× (8 px) to 1.74× (28 px)
    faster than 1; beside one busy process, 2 threads ran 2.5–4× slower and 1 thread did not
    slow down. Leaving one core free costs little on a large machine and removes that cliff on a
    small one.
    """
    if os.environ.get("OMP_NUM_THREADS", "").strip():
        return torch_default
    return max(1, min(torch_default, usable_cpus() - 1))
