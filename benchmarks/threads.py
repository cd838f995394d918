"""Training throughput at 1 and 2 (or N) CPU threads, interleaved, on the bundled digits.

The default thread count of the engine is chosen from this: on a 2-vCPU machine that something
else also loads, torch's default (one thread per core) can run several times slower than one
thread, because its threads wait on each other at every operation.

    python benchmarks/threads.py --threads 1 2 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

from compress.config import build
from compress.train import TrainConfig, train


def run(threads: int, epochs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = {"model": "resnet8", "data": {"name": "digits", "batch_size": 64},
               "epochs": epochs, "device": "cpu", "threads": threads, "progress": False,
               "output": f"{tmp}/r"}  # fmt: skip
        t0 = time.perf_counter()
        summary = train(build(TrainConfig, cfg), log=lambda _m: None)
        return summary["images_per_s"], time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    rates: dict[int, list[float]] = {t: [] for t in args.threads}
    for _ in range(args.rounds):
        for t in args.threads:  # interleaved: a slow spell of the machine hits every setting
            rates[t].append(run(t, args.epochs)[0])
    print(json.dumps({t: r for t, r in rates.items()}))
    print("| threads | img/s median | min | max |")
    print("|---|---|---|---|")
    for t, r in rates.items():
        print(f"| {t} | {statistics.median(r):.0f} | {min(r):.0f} | {max(r):.0f} |")


if __name__ == "__main__":
    main()
