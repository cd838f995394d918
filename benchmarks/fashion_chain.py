"""Fashion-MNIST on this CPU: pruning sweep, INT8 vs fp32 vs torch, and the whole chain.

Three measurements, all through the public API, in one run:

1. **Models** (cached in ``--out``): a resnet32x4 teacher, a resnet8x4 student distilled from it
   with R2KD, and a mobilenetv2 trained alone. They train on a fixed class-balanced subset of
   ``--subset`` training images so that a 2-core CPU finishes; every accuracy is on the full
   10,000-image test set.
2. **Pruning sweep** (issue: ``compress prune``): each model at ratios 0.3 / 0.5 / 0.7, the MACs
   ratio next to the *measured* onnxruntime CPU latency ratio at batch 1 and 64, and top-1
   before pruning, after pruning, and after ``--finetune-epochs`` of KD fine-tuning from the
   unpruned model.
3. **INT8** (issue: ``compress export``): torch eager vs onnxruntime fp32 vs onnxruntime INT8
   latency at batch 1 and 64 for the three models, and the INT8 accuracy change.
4. **Chain** (issue: ``compress benchmark``): teacher → R2KD student → 50 % pruned + KD, as
   torch / onnx / onnx-int8 in one benchmark table and Pareto plot.

Latency is the median of ``--repeats`` calls after warm-up; keep the machine otherwise idle.

    python benchmarks/fashion_chain.py --out runs/bench/fashion-chain
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from compress.deploy.agent import OnnxRuntimeRunner, percentile, time_calls

from compress.artifacts import load_model
from compress.config import build
from compress.deploy.benchmark import BenchmarkConfig, benchmark
from compress.deploy.latency import cpu_latency
from compress.distill.api import distill
from compress.distill.config import DistillConfig
from compress.exporters.api import export
from compress.exporters.base import ExportConfig
from compress.exporters.validate import ExportValidationError
from compress.models.stats import count_macs
from compress.prune.config import PruneConfig
from compress.train import TrainConfig, train
from compress.verbs import VERBS

SHAPE = (1, 28, 28)


def _log(msg: str) -> None:
    print(msg, flush=True)


def models(args, out: Path) -> dict[str, Path]:
    data = {"name": "fashion-mnist", "batch_size": 64, "train_subset": args.subset}
    common = {
        "optim": {"name": "sgd", "lr": 0.05, "weight_decay": 5e-4},
        "schedule": {"name": "cosine", "warmup_epochs": 0.2},
        "progress": False,
        "data": data,
    }
    paths = {}
    jobs = [
        (
            "resnet32x4",
            TrainConfig,
            {"model": "resnet32x4", "epochs": args.teacher_epochs, **common},
        ),
        (
            "mobilenetv2",
            TrainConfig,
            {
                "model": "mobilenetv2",
                "epochs": args.teacher_epochs,
                **{**common, "optim": {"name": "sgd", "lr": 0.02, "weight_decay": 5e-4}},
            },
        ),
    ]
    for name, cls, cfg in jobs:
        run = out / name
        if not (run / "summary.json").exists():
            shutil.rmtree(run, ignore_errors=True)
            train(build(cls, {**cfg, "output": str(run)}), log=_log)
        paths[name] = run / "model.safetensors"
    run = out / "resnet8x4"
    if not (run / "summary.json").exists():
        shutil.rmtree(run, ignore_errors=True)
        distill(
            build(
                DistillConfig,
                {
                    "student": "resnet8x4",
                    "teacher": str(paths["resnet32x4"]),
                    "method": "r2kd",
                    "epochs": args.student_epochs,
                    **common,
                    "output": str(run),
                },
            ),
            log=_log,
        )
    paths["resnet8x4"] = run / "model.safetensors"
    return paths


def pruning_sweep(args, out: Path, paths: dict[str, Path]) -> list[dict]:
    rows = []
    for name, path in paths.items():
        for ratio in args.ratios:
            run = out / "prune" / f"{name}-{ratio}"
            if not (run / "summary.json").exists():
                shutil.rmtree(run, ignore_errors=True)
                cfg = {
                    "model": str(path),
                    "prune": {"ratio": ratio},
                    "finetune_epochs": args.finetune_epochs,
                    "teacher": str(path),
                    "method": "kd",
                    "latency": False,
                    "output": str(run),
                    "progress": False,
                    "data": {
                        "name": "fashion-mnist",
                        "batch_size": 64,
                        "train_subset": args.subset,
                    },
                }
                VERBS.get("prune")(build(PruneConfig, cfg), log=_log)
            s = json.loads((run / "summary.json").read_text())
            rows.append(
                {
                    "model": name,
                    "ratio": ratio,
                    "params_before": s["params_before"],
                    "params_after": s["params_after"],
                    "macs_before": s["macs_before"],
                    "macs_after": s["macs_after"],
                    "top1_before": s["top1_before"],
                    "top1_pruned": s["top1_pruned"],
                    "top1_finetuned": s["top1_finetuned"],
                    "path": str(run / "model.safetensors"),
                }
            )
    return rows


def ort_median(path: Path, batch: int, repeats: int) -> float:
    runner = OnnxRuntimeRunner(str(path))
    x = np.random.default_rng(0).standard_normal((batch, *SHAPE), dtype=np.float32)
    return percentile(time_calls(lambda: runner.infer(x), warmup=3, repeats=repeats), 50)


def latency_sweep(args, rows: list[dict], paths: dict[str, Path]) -> None:
    base = {
        name: cpu_latency(load_model(p), SHAPE, repeats=args.repeats)["onnxruntime"]
        for name, p in paths.items()
    }
    for row in rows:
        lat = cpu_latency(load_model(row["path"]), SHAPE, repeats=args.repeats)["onnxruntime"]
        row["ort_ms"] = {str(b): lat[b] for b in (1, 64)}
        row["ort_ms_before"] = {str(b): base[row["model"]][b] for b in (1, 64)}
        row["macs_ratio"] = row["macs_after"] / row["macs_before"]
        row["latency_ratio"] = {str(b): lat[b] / base[row["model"]][b] for b in (1, 64)}
        _log(
            f"{row['model']} {row['ratio']}: MACs ×{row['macs_ratio']:.2f}, latency ×{row['latency_ratio']['1']:.2f} (b1) "
            f"×{row['latency_ratio']['64']:.2f} (b64)"
        )


def int8_compare(args, out: Path, paths: dict[str, Path]) -> list[dict]:
    rows = []
    for name, path in paths.items():
        exp_dir = out / "int8" / name
        try:
            export(
                ExportConfig(
                    model=str(path),
                    format="onnx,onnx-int8",
                    output=str(exp_dir),
                    validate_images=10000,
                    calib_images=args.calib_images,
                    activation_type=args.activation_type,
                ),
                log=_log,
            )
        except ExportValidationError as exc:  # a result to record, not a crash
            _log(str(exc))
        res = json.loads((exp_dir / "export.json").read_text())["formats"]
        torch_ms = cpu_latency(load_model(path), SHAPE, repeats=args.repeats)["torch"]
        row = {"model": name, "macs": count_macs(load_model(path), SHAPE)}
        for b in (1, 64):
            row[f"torch_b{b}"] = torch_ms[b]
            row[f"fp32_b{b}"] = ort_median(Path(res["onnx"]["path"]), b, args.repeats)
            row[f"int8_b{b}"] = ort_median(Path(res["onnx-int8"]["path"]), b, args.repeats)
        row["top1_fp32"] = res["onnx"]["validation"]["top1_export"]
        row["top1_int8"] = res["onnx-int8"]["validation"]["top1_export"]
        row["int8_status"] = res["onnx-int8"]["status"]
        rows.append(row)
        _log(json.dumps(row))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench/fashion-chain")
    ap.add_argument("--subset", type=int, default=8000)
    ap.add_argument("--teacher-epochs", type=int, default=3)
    ap.add_argument("--student-epochs", type=int, default=2)
    ap.add_argument("--finetune-epochs", type=int, default=1)
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.3, 0.5, 0.7])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--calib-images", type=int, default=512)
    ap.add_argument("--activation-type", default="uint8", choices=["uint8", "int8"])
    ap.add_argument("--docs", default="docs", help="where the Pareto plot is copied")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    paths = models(args, out)
    sweep = pruning_sweep(args, out, paths)
    _log(
        f"training and pruning done in {time.perf_counter() - t0:.0f} s; timing starts (keep the machine idle)"
    )
    latency_sweep(args, sweep, paths)
    int8 = int8_compare(args, out, paths)
    pruned = next(r["path"] for r in sweep if r["model"] == "resnet8x4" and r["ratio"] == 0.5)
    chain_paths = [str(paths["resnet32x4"]), str(paths["resnet8x4"]), pruned]
    with tempfile.TemporaryDirectory() as tmp:
        names = ["teacher-resnet32x4", "student-resnet8x4-r2kd", "pruned-resnet8x4-0.5"]
        for src, name in zip(chain_paths, names):  # readable names in the table
            (Path(tmp) / name).mkdir()
            shutil.copy(src, Path(tmp) / name / "model.safetensors")
        result = benchmark(
            build(
                BenchmarkConfig,
                {
                    "models": [str(Path(tmp) / n / "model.safetensors") for n in names],
                    "formats": ["torch", "onnx", "onnx-int8"],
                    "batches": [1, 64],
                    "profile": {"iters": args.repeats, "eval_images": 10000},
                    "export": {
                        "calib_images": args.calib_images,
                        "activation_type": args.activation_type,
                        "validate_images": 10000,
                    },
                    "output": str(out / "chain"),
                },
            ),
            log=_log,
        )
    Path(args.docs).mkdir(parents=True, exist_ok=True)
    shutil.copy(out / "chain" / "pareto.png", Path(args.docs) / "fashion_chain_pareto.png")
    (out / "results.json").write_text(
        json.dumps({"sweep": sweep, "int8": int8, "chain": result["rows"]}, indent=2, default=str)
    )
    _print_tables(sweep, int8, result["table"])
    _log(f"total {time.perf_counter() - t0:.0f} s")


def _print_tables(sweep: list[dict], int8: list[dict], chain: str) -> None:
    print("\n## pruning sweep\n")
    print(
        "| model | ratio | params | MACs ratio | ORT latency ratio b1 | ORT latency ratio b64 | top-1 before | pruned | + KD fine-tune |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in sweep:
        print(
            f"| {r['model']} | {r['ratio']} | {r['params_before'] / 1e6:.3f} → {r['params_after'] / 1e6:.3f} M | "
            f"{r['macs_ratio']:.2f} | {r['latency_ratio']['1']:.2f} | {r['latency_ratio']['64']:.2f} | "
            f"{100 * r['top1_before']:.2f}% | {100 * r['top1_pruned']:.2f}% | {100 * r['top1_finetuned']:.2f}% |"
        )
    print("\n## int8\n")
    print(
        "| model | MACs | torch b1 | ORT fp32 b1 | ORT int8 b1 | torch b64 | ORT fp32 b64 | ORT int8 b64 | top-1 fp32 → int8 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in int8:
        print(
            f"| {r['model']} | {r['macs'] / 1e6:.1f} M | {r['torch_b1']:.2f} | {r['fp32_b1']:.2f} | {r['int8_b1']:.2f} | "
            f"{r['torch_b64']:.1f} | {r['fp32_b64']:.1f} | {r['int8_b64']:.1f} | "
            f"{100 * r['top1_fp32']:.2f}% → {100 * r['top1_int8']:.2f}% ({r['int8_status']}) |"
        )
    print("\n## chain\n")
    print(chain)


if __name__ == "__main__":
    main()
