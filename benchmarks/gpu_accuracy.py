"""Full-data accuracy: Fashion-MNIST's 60,000 training images, none / kd / dist / r2kd / r2kd faithful.

One resnet20 teacher (trained first), then a resnet8 student per method and seed, each on all
60,000 training images and tested on the 10,000 test images; the last epoch's test top-1 is
reported (nothing is selected on the test set), mean ± std over the seeds. Each row is printed
(and ``OUT/gpu_accuracy.md`` / ``.json`` rewritten) as soon as its seeds are done, so a kill
keeps the rows done.

    python benchmarks/gpu_accuracy.py --out $OUT/accuracy                     # on a GPU, ~3 min
    python benchmarks/gpu_accuracy.py --smoke --device cpu --out /tmp/acc     # anywhere, tiny
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import compress

METHODS = (("none", "none", None), ("kd", "kd", None), ("dist", "dist", None),
           ("r2kd", "r2kd", None), ("r2kd faithful", "r2kd", "faithful"))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench/gpu-accuracy")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--teacher-epochs", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=5, help="each student's epochs")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--smoke", action="store_true", help="a tiny run for CI (any device)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    subset = 256 if args.smoke else None
    seeds = 1 if args.smoke else args.seeds
    t_epochs, s_epochs = (1, 1) if args.smoke else (args.teacher_epochs, args.epochs)
    data = {"name": "fashion-mnist", "batch_size": args.batch, "train_subset": subset,
            "test_subset": 256 if args.smoke else None}  # fmt: skip
    common = {"optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4},
              "schedule": {"name": "cosine", "warmup_epochs": 0.5}, "device": args.device,
              "progress": False, "log": lambda _m: None}  # fmt: skip
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    lines = [
        f"device {args.device} ({name}), torch {torch.__version__}; Fashion-MNIST, "
        f"{'256 (smoke)' if args.smoke else '60,000'} training images; teacher resnet20 "
        f"{t_epochs} epochs, students resnet8 {s_epochs} epochs, batch {args.batch}, SGD 0.1 "
        "cosine; last-epoch test top-1",
        "",
        "| run | top-1 (%) mean ± std | seeds | s per run |",
        "|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    rows: dict[str, dict] = {}

    def emit(label: str, scores: list[float], seconds: list[float]) -> None:
        std = statistics.stdev(scores) if len(scores) > 1 else 0.0
        rows[label] = {"top1_last": scores, "seconds": seconds}
        lines.append(f"| {label} | {100 * statistics.fmean(scores):.2f} ± {100 * std:.2f} "
                     f"| {len(scores)} | {statistics.fmean(seconds):.0f} |")  # fmt: skip
        print(lines[-1], flush=True)
        (out / "gpu_accuracy.md").write_text("\n".join(lines) + "\n")
        (out / "gpu_accuracy.json").write_text(json.dumps(rows, indent=2))

    t0 = time.perf_counter()
    teacher = compress.train(model="resnet20", data=data, epochs=t_epochs, seed=0,
                             output=str(out / "teacher"), **common)  # fmt: skip
    emit("teacher resnet20", [teacher["top1_last"]], [time.perf_counter() - t0])
    for label, method, preset in METHODS:
        scores, seconds = [], []
        for seed in range(seeds):
            t0 = time.perf_counter()
            run = compress.distill(
                teacher=str(out / "teacher" / "model.safetensors"), student="resnet8",
                method=method, preset=preset, data=data, epochs=s_epochs, seed=seed,
                output=str(out / f"{label.replace(' ', '-')}-s{seed}"), **common,
            )  # fmt: skip
            scores.append(run["top1_last"])
            seconds.append(time.perf_counter() - t0)
        emit(label, scores, seconds)


if __name__ == "__main__":
    main()
