"""Compress to a budget on Fashion-MNIST: INT8 auto-precision and latency-budget pruning.

1. MobileNetV2's INT8 export with the default settings (uint8 activations, first/last layers in
   float), with the depthwise convolutions in float, with ``--auto-precision``, and the same
   with every layer INT8: status, top-1 change, agreement, float nodes, speed vs fp32 (each
   measured in the same export).
2. ``compress prune --target-latency`` of resnet8x4 and MobileNetV2 at two budgets each (a share
   of the unpruned model's median latency, ``--target-latency 70%``, measured first in the same
   run: 70 % and 50 % for resnet8x4, 90 % and 85 % for MobileNetV2, and 75 % for MobileNetV2
   with global pruning), ONNX Runtime on this CPU at batch 1, then ``--finetune-epochs`` of
   fine-tuning: target vs achieved latency, accuracy before and after, probes taken.

    python benchmarks/budget.py --out /tmp/bench-budget      # both parts
    python benchmarks/budget.py --out /tmp/bench-budget --skip-int8 --rows 4
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

from compress.config import build
from compress.exporters.api import export
from compress.exporters.base import ExportConfig
from compress.exporters.validate import ExportValidationError
from compress.prune.config import PruneConfig
from compress.train import TrainConfig, train
from compress.verbs import VERBS


def trained(
    out: Path,
    model: str,
    args,
    name: str | None = None,
    lr: float = 0.05,
    subset: int | None = -1,
    epochs: int | None = None,
) -> Path:
    path = out / (name or model) / "model.safetensors"
    if not path.exists():
        train(
            build(
                TrainConfig,
                {
                    "model": model,
                    "data": {
                        "name": "fashion-mnist",
                        "batch_size": 64,
                        "train_subset": args.subset if subset == -1 else subset,
                    },
                    "epochs": epochs or args.epochs,
                    "optim": {"name": "sgd", "lr": lr, "momentum": 0.9, "weight_decay": 5e-4},
                    "schedule": {"name": "cosine", "warmup_epochs": 0.2},
                    "progress": False,
                    "device": "cpu",
                    "output": str(out / (name or model)),
                },
            ),
            log=lambda _m: None,
        )
    return path


def int8_row(model: Path, out: Path, label: str, **settings) -> str:
    config = ExportConfig(model=str(model), format="onnx-int8", output=str(out), **settings)
    with contextlib.suppress(ExportValidationError):  # a result: export.json has it
        export(config, log=lambda _m: None)
    entry = json.loads((out / "export.json").read_text())["formats"]["onnx-int8"]
    v = entry["validation"]
    search = entry.get("auto_precision") or v.get("auto_precision") or {}
    speed = entry.get("speed_vs_fp32") or {}
    tries = len(search.get("tries", [])) - 1 if search else 0
    floats = len(search.get("float_nodes") or entry.get("calibration", {}).get("float_nodes") or [])
    return (
        f"| {label} | {entry['status']} | "
        f"{100 * v['accuracy_delta']:+.2f} | {100 * v['top1_agreement']:.2f}% | {floats} | {tries} | "
        f"{speed.get('fp32_ms', float('nan')):.2f} | {speed.get('int8_ms', float('nan')):.2f} | "
        f"{speed.get('speedup', float('nan')):.2f} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench/budget")
    ap.add_argument("--subset", type=int, default=8000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--finetune-epochs", type=int, default=1)
    ap.add_argument("--skip-prune", action="store_true", help="only the INT8 part")
    ap.add_argument("--skip-int8", action="store_true", help="only the pruning part")
    ap.add_argument("--rows", type=int, nargs="*", help="only these pruning rows (0-based)")
    args = ap.parse_args()
    out = Path(args.out)
    models = {m: trained(out, m, args) for m in ("resnet8x4", "mobilenetv2")}
    # the recipe of benchmarks/fashion_chain.py (lr 0.02), whose MobileNetV2 failed INT8
    chain = trained(out, "mobilenetv2", args, name="mobilenetv2-lr0.02", lr=0.02)
    # and one trained longer on all 60,000 images: wider activation ranges
    full = trained(out, "mobilenetv2", args, name="mobilenetv2-full", subset=None, epochs=5)

    if args.skip_int8:
        return prune_rows(models, out, args)
    print("MobileNetV2 INT8 (ONNX Runtime, this CPU, batch 64 for the speed):\n")
    print(
        "| export | status | top-1 change (points) | agreement | float nodes | tries | fp32 ms | int8 ms | speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    variants = {
        "default (first/last float)": {},
        "--float-depthwise": {"float_depthwise": True},
        "--auto-precision": {"auto_precision": True},
        "--all-int8": {"float_first_last": False},
        "--all-int8 --auto-precision": {"float_first_last": False, "auto_precision": True},
    }
    int8_models = {
        "lr 0.05": models["mobilenetv2"],
        "lr 0.02": chain,
        "60k, 5 ep": full,
    }
    for tag, path in int8_models.items():
        for i, (label, settings) in enumerate(variants.items()):
            print(
                int8_row(
                    path,
                    out / f"int8-{tag.replace(' ', '').replace(',', '')}-{i}",
                    f"{tag}: {label}",
                    **settings,
                )
            )

    if not args.skip_prune:
        prune_rows(models, out, args)


def prune_rows(models: dict[str, Path], out: Path, args) -> None:
    # one ONNX Runtime thread: on this 2-vCPU VM a 2-thread session's batch-1 time doubles for
    # seconds at a time when the second vCPU is taken away; one thread stays within 5 %
    print("\nLatency-budget pruning (ONNX Runtime, this CPU, 1 thread, batch 1):\n")
    print(
        "| model | unpruned p50 ms | target ms | achieved p50 ms (p90) | noise ms | met | ratio | probes (confirmations) | params | top-1 before → pruned → fine-tuned |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    # MobileNetV2's batch-1 time barely follows its channels: at the most pruning round_to 8
    # allows (ratio 0.333) it still takes about 80 % of its unpruned time, so its uniform budgets
    # are 90 % and 85 %; 75 % is asked of global pruning (per-layer ratios ranked by importance).
    rows = [
        ("resnet8x4", 0.7, False),
        ("resnet8x4", 0.5, False),
        ("mobilenetv2", 0.9, False),
        ("mobilenetv2", 0.85, False),
        ("mobilenetv2", 0.75, True),
    ]
    for index, (name, share, global_pruning) in enumerate(rows):
        if args.rows and index not in args.rows:
            continue
        path = models[name]
        run = out / f"prune-{name}-{share}{'-global' if global_pruning else ''}"
        summary = VERBS.get("prune")(
            build(
                PruneConfig,
                {
                    "model": str(path),
                    "target_latency": f"{100 * share:g}%",
                    "prune": {"global_pruning": global_pruning},
                    "budget": {"batch": 1, "iters": 200, "duration": 1.0, "threads": 1},
                    "finetune_epochs": args.finetune_epochs,
                    "data": {"train_subset": args.subset},
                    "latency": False,
                    "device": "cpu",
                    "progress": False,
                    "output": str(run),
                },
            ),
            log=lambda _m: None,
        )
        lb = summary["latency_budget"]
        base = min(p["p50_ms"] for p in lb["probes"] if p["ratio"] == 0.0)
        print(
            f"| {name}{' (global)' if global_pruning else ''} | {base:.3f} | {lb['target_ms']:.3f} ({100 * share:g}%) | "
            f"{lb['achieved_p50_ms']:.3f} ({lb['achieved_p90_ms']:.3f}) | "
            f"{lb['noise_ms']:.3f} | {'yes' if lb['met'] else 'no'} | {summary['ratio']:.3f} | "
            f"{len(lb['probes'])} ({sum(p['confirm'] for p in lb['probes'])}) | "
            f"{summary['params_before']:,} → {summary['params_after']:,} | "
            f"{100 * summary['top1_before']:.2f}% → {100 * summary['top1_pruned']:.2f}% → {100 * summary['top1']:.2f}% |"
        )


if __name__ == "__main__":
    main()
