"""Training throughput at 1 and 2 (or N) CPU threads, interleaved, on the bundled digits.

The default thread count of the engine is chosen from this: on a 2-vCPU machine that something
else also loads, torch's default (one thread per core) can run several times slower than one
thread, because its threads wait on each other at every operation.

    python benchmarks/threads.py --threads 1 2 --rounds 3 --load 0 1

``--load 0 1`` measures each setting on the idle machine and with one busy process beside it
(a pure-Python spin loop, as another job on a shared VM would be), interleaved in one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import statistics
import tempfile
import time
from collections.abc import Iterator

from compress.config import build
from compress.train import TrainConfig, train


def run(threads: int, epochs: int, dataset: str = "digits", subset: int | None = None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        data = {"name": dataset, "batch_size": 64, "train_subset": subset}
        if dataset != "digits":
            data["test_subset"] = 1000  # the throughput is the training's; keep evaluation short
        cfg = {"model": "resnet8", "data": data,
               "epochs": epochs, "device": "cpu", "threads": threads, "progress": False,
               "output": f"{tmp}/r"}  # fmt: skip
        t0 = time.perf_counter()
        summary = train(build(TrainConfig, cfg), log=lambda _m: None)
        return summary["images_per_s"], time.perf_counter() - t0


def _spin(stop, limit_s: float) -> None:
    end = time.monotonic() + limit_s  # bounded even if the parent dies
    while not stop.is_set() and time.monotonic() < end:
        sum(i * i for i in range(10_000))


@contextlib.contextmanager
def busy(processes: int, limit_s: float = 3600.0) -> Iterator[None]:
    """`processes` spin loops running beside the body, stopped (and joined) when it ends."""
    stop = mp.Event()
    procs = [mp.Process(target=_spin, args=(stop, limit_s), daemon=True) for _ in range(processes)]
    for p in procs:
        p.start()
    try:
        yield
    finally:
        stop.set()
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--load", type=int, nargs="+", default=[0], help="busy processes beside")
    ap.add_argument("--dataset", default="digits", help="digits (8 px) or fashion-mnist (28 px)")
    ap.add_argument("--train-subset", type=int, default=None, help="training images (all if unset)")
    args = ap.parse_args()
    keys = [(load, t) for load in args.load for t in args.threads]
    rates: dict[tuple[int, int], list[float]] = {k: [] for k in keys}
    for _ in range(args.rounds):
        for load, t in keys:  # interleaved: a slow spell of the machine hits every setting
            with busy(load):
                rates[(load, t)].append(run(t, args.epochs, args.dataset, args.train_subset)[0])
    print(json.dumps({f"load={k[0]} threads={k[1]}": r for k, r in rates.items()}))
    print("| busy processes beside | threads | img/s median | min | max |")
    print("|---|---|---|---|---|")
    for (load, t), r in rates.items():
        print(f"| {load} | {t} | {statistics.median(r):.0f} | {min(r):.0f} | {max(r):.0f} |")


if __name__ == "__main__":
    main()
