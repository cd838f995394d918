"""Student accuracy on the real Fashion-MNIST: no KD vs KD vs DIST vs R2KD (default and faithful).

Trains a teacher once (reused when its run directory already exists), then each method's
student for ``--seeds`` seeds with identical data, schedule and epochs, and prints a table of
last-epoch test top-1 (mean ± sample std over seeds; nothing selected on the test set) beside
the best epoch's (which is selected on the test set, as KD papers report it; for comparison). Everything goes through
the public API (`compress.train.train`, `compress.distill.api.distill`).

    python benchmarks/distill_fashion.py --out runs/bench/distill-fm
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from compress.config import build
from compress.distill.api import distill
from compress.distill.config import DistillConfig
from compress.distill.methods import METHODS
from compress.train import TrainConfig, train

VARIANTS = {
    "none": {"method": "none"},
    "kd": {"method": "kd"},
    "dist": {"method": "dist"},
    "r2kd": {"method": "r2kd"},
    "r2kd-faithful": {"method": "r2kd", "preset": "faithful"},
    # the ablation (issue 11): which part of R2KD buys what
    "kd+view": {"method": "kd", "method_args": {"augment": "cutmix"}},
    "dist+view": {"method": "dist", "method_args": {"augment": "cutmix"}},
    "r2kd-noview": {"method": "r2kd", "method_args": {"augment": "none"}},
    "r2kd-hardrank": {"method": "r2kd", "method_args": {"rank": "hard"}},
    "r2kd-pairwise": {"method": "r2kd", "method_args": {"soft_rank": "pairwise"}},
    "r2kd-drop2": {"method": "r2kd", "method_args": {"prune": {"target_drop": 0.02}}},
    "r2kd-unstructured": {"method": "r2kd", "method_args": {"prune": {"mode": "unstructured"}}},
    # the seed study's KD family (issue 12), each with its defaults (docs/methods.md)
    **{m: {"method": m} for m in ("dkd", "dml", "fitnet", "fsp", "at", "sp", "bss", "one")},
    **{m: {"method": m} for m in ("rkd-d", "rkd-a", "rkd-da")},
}
#: The first table (2026-11-22) and the ablation table, in the order they run.
TABLES = {
    "methods": ["none", "kd", "dist", "r2kd", "r2kd-faithful"],
    "ablation": [
        "r2kd",
        "r2kd-noview",
        "dist",
        "dist+view",
        "kd",
        "kd+view",
        "none",
        "r2kd-faithful",
        "r2kd-hardrank",
        "r2kd-drop2",
        "r2kd-unstructured",
    ],
    # the seed study's whole family, with the teacher-free baselines and R2KD
    "family": [
        "none", "kd", "fitnet", "fsp", "at", "sp", "rkd-d", "rkd-a", "rkd-da", "bss", "dml",
        "one", "dist", "dkd", "r2kd",
    ],
}  # fmt: skip
#: The seed study's CIFAR-10 WRN-16-2 column at σ = 0 (its noise table), printed beside the
#: family table for the ordering (other data and networks).
SEED_SIGMA0 = {
    "none": 93.95, "kd": 94.28, "bss": 94.27, "fitnet": 94.34, "fsp": 94.31, "at": 94.50,
    "sp": 94.64, "rkd-d": 94.42, "rkd-a": 94.62, "rkd-da": 94.52, "one": 92.80, "dml": 94.38,
}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench/distill-fm")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--teacher-model", default="resnet20")
    ap.add_argument("--teacher-epochs", type=int, default=10)
    ap.add_argument("--student", default="resnet8")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--train-subset", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--methods", nargs="+", choices=list(VARIANTS), help="variants to run")
    ap.add_argument("--table", choices=list(TABLES), default="methods", help="a named list")
    ap.add_argument("--device", default="auto")
    ap.add_argument(
        "--threads", type=int, help="CPU threads of every run (engine default if unset)"
    )
    ap.add_argument(
        "--fsp-init-epochs",
        type=int,
        help="FSP's init phase (default: RepDistiller's 30 of 240 epochs, scaled to --epochs)",
    )
    args = ap.parse_args()
    methods = args.methods or TABLES[args.table]
    out = Path(args.out)
    schedule = {"name": "cosine", "warmup_epochs": 0.5}
    optim = {"name": "sgd", "lr": args.lr, "momentum": 0.9, "weight_decay": 5e-4}

    teacher_dir = out / "teacher"
    t0 = time.perf_counter()
    if not (teacher_dir / "summary.json").exists():
        train(
            build(
                TrainConfig,
                {
                    "model": args.teacher_model,
                    "data": {"name": args.dataset, "batch_size": args.batch},
                    "epochs": args.teacher_epochs,
                    "optim": optim,
                    "schedule": schedule,
                    "device": args.device,
                    "threads": args.threads,
                    "progress": False,
                    "output": str(teacher_dir),
                },
            )
        )
    teacher = json.loads((teacher_dir / "summary.json").read_text())
    rows = [
        {
            "variant": "teacher",
            "model": args.teacher_model,
            "top1": teacher["top1"],
            "top1_last": teacher["top1_last"],
            "seconds": time.perf_counter() - t0,
        }
    ]
    for name in methods:
        run_dir = out / name
        t0 = time.perf_counter()
        if (run_dir / "summary.json").exists():
            summary = json.loads((run_dir / "summary.json").read_text())
        else:
            variant = dict(VARIANTS[name])
            if variant["method"] == "fsp":  # RepDistiller's init phase at this run's scale
                init = args.fsp_init_epochs
                init = max(1, round(args.epochs * 30 / 240)) if init is None else init
                variant["method_args"] = {**variant.get("method_args", {}), "init_epochs": init}
            cfg = {
                "student": args.student,
                "teacher": None
                if variant["method"] == "none" or METHODS.get(variant["method"]).online
                else str(teacher_dir / "last.safetensors"),  # not its best epoch on the test set
                **variant,
                "seeds": args.seeds,
                "data": {
                    "name": args.dataset,
                    "batch_size": args.batch,
                    "train_subset": args.train_subset,
                },
                "epochs": args.epochs,
                "optim": optim,
                "schedule": schedule,
                "device": args.device,
                "threads": args.threads,
                "progress": False,
                "output": str(run_dir),
                # a run stopped half-way continues (finished seeds are skipped)
                "resume": run_dir.exists(),
            }
            summary = distill(build(DistillConfig, cfg))
        rows.append({"variant": name, **summary, "seconds": time.perf_counter() - t0})
        (out / "results.json").write_text(json.dumps(rows, indent=2, default=str))
    print()
    print(
        "| variant | last-epoch top-1 (%) | best epoch on the test set (%) | seeds "
        "| pruned copy top-1 (%) | seed: CIFAR-10 WRN-16-2, σ = 0 | wall time (s) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if r["variant"] == "teacher":
            print(
                f"| teacher {r['model']} | {100 * r['top1_last']:.2f} | {100 * r['top1']:.2f} | 1 "
                f"| – | – | {r['seconds']:.0f} |"
            )
            continue
        if "top1_std" in r:
            best = f"{100 * r['top1_mean']:.2f} ± {100 * r['top1_std']:.2f}"
            last = f"{100 * r['top1_last_mean']:.2f} ± {100 * r['top1_last_std']:.2f}"
        else:
            best, last = f"{100 * r['top1']:.2f}", f"{100 * r['top1_last']:.2f}"
        copy = r.get("pruned_teacher") or {}
        copy_top1 = f"{100 * copy['top1']:.2f}" if copy.get("top1") is not None else "–"
        seed = SEED_SIGMA0.get(r["variant"])
        print(
            f"| {r['variant']} | {last} | {best} | {len(r.get('seeds', [0]))} | {copy_top1} "
            f"| {'–' if seed is None else f'{seed:.2f}'} | {r['seconds']:.0f} |"
        )


if __name__ == "__main__":
    main()
