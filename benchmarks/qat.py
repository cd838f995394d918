"""INT8 that keeps fp32's accuracy? PTQ, PTQ + auto-precision, QAT and QAD on Fashion-MNIST.

For each student architecture and seed: a float student is trained, then made INT8 six ways —
fp32 (the reference), PTQ (``onnx-int8``, every layer INT8), PTQ + ``--auto-precision``,
QAT (``compress quantize --method none``), QAD with KD and QAD with R2KD (both from the float
model itself) — each exported to ONNX and run in ONNX Runtime on the full test set: top-1, top-1
agreement with the float model, latency at batch 1 and 64 on one thread (median of interleaved
calls), and the time each took. Every row prints as soon as it is measured.

``--placement`` picks the deployment the QAT/QAD rows are made for: ``ort`` (the default)
quantizes with ``--activation-type uint8`` and exports with ``--qdq-placement ort`` (Q/DQ on
every INT8-able tensor: fused INT8 kernels in ONNX Runtime); ``trt`` quantizes with symmetric
int8 activations and exports the fake-quantized graph as it is (TensorRT's explicit
quantization, which ONNX Runtime on a CPU runs as float work around Q/DQ).

``--reduce-range`` gives the QAT/QAD rows 7-bit weights and adds a PTQ row with them
(``ptq-7bit``): on x86 CPUs without VNNI (AVX2) ONNX Runtime's INT8 kernels saturate with
8-bit weights, and only 7-bit ones compute there what the fake-quantized model does.

    python benchmarks/qat.py --out runs/bench/qat --students mobilenetv2 shufflenetv2 resnet8x4
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from compress.config import build
from compress.errors import CompressError
from compress.verbs import VERBS

VARIANTS = ("fp32", "ptq", "ptq+auto", "qat", "qad-kd", "qad-r2kd")


def latency(paths: dict[str, Path], shape: list[int], batch: int, calls: int) -> dict[str, float]:
    """Median ms per call of each ONNX file at `batch`, one thread, the files called in turn."""
    from compress.runtime.runners import make_runner

    runners = {k: make_runner("onnxruntime", str(p), threads=1) for k, p in paths.items()}
    x = np.random.default_rng(0).standard_normal((batch, *shape), dtype=np.float32)
    times: dict[str, list[float]] = {k: [] for k in runners}
    for r in runners.values():  # warm-up
        for _ in range(3):
            r.infer(x)
    for _ in range(calls):
        for k, r in runners.items():
            t0 = time.perf_counter()
            r.infer(x)
            times[k].append(1000 * (time.perf_counter() - t0))
    return {k: statistics.median(v) for k, v in times.items()}


def predictions(path: Path, images: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate(
        [
            session.run(None, {"input": images[i : i + 500]})[0].argmax(1)
            for i in range(0, len(images), 500)
        ]
    )


def export(model: Path, out: Path, fmt: str, extra: dict) -> tuple[Path | None, str]:
    from compress.exporters.base import ExportConfig
    from compress.exporters.validate import ExportValidationError

    cfg = build(ExportConfig, {"model": str(model), "format": fmt, "output": str(out), **extra})
    try:
        result = VERBS.get("export")(cfg, log=lambda _m: None)["formats"][fmt]
    except ExportValidationError:  # still measured: its file is set aside, not deleted
        rejected = json.loads((out / "export.json").read_text())["rejected"][fmt]
        return Path(rejected["path"]), "validation failed"
    return Path(result["path"]), result["status"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench/qat")
    ap.add_argument("--students", nargs="+", default=["mobilenetv2", "shufflenetv2", "resnet8x4"])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--train-subset", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--qat-epochs", type=int, default=3)
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument(
        "--placement",
        choices=("ort", "trt"),
        default="ort",
        help="QAT/QAD rows for ONNX Runtime (uint8, ort placement) or TensorRT",
    )
    ap.add_argument("--reduce-range", action="store_true",
                    help="7-bit weights in the QAT/QAD rows, and a PTQ row with them (ptq-7bit): "
                         "exact INT8 kernels on x86 CPUs without VNNI")  # fmt: skip
    args = ap.parse_args()
    variants = (*VARIANTS[:2], "ptq-7bit", *VARIANTS[2:]) if args.reduce_range else VARIANTS
    tag = args.placement + ("-7bit" if args.reduce_range else "")
    activations = "uint8" if args.placement == "ort" else "int8"
    from compress.artifacts import read_header
    from compress.exporters.api import dataset_images
    from compress.train import TrainConfig

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = {"name": "fashion-mnist", "train_subset": args.train_subset, "batch_size": 64}
    rows = []
    print("| student | seed | variant | status | top-1 (%) | agreement with fp32 (%) "
          "| batch 1 ms | batch 64 ms | time (s) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for seed in range(args.seeds):  # seed-major: a cut-short run still has every student once
        for student in args.students:
            base = out / f"{student}-s{seed}"
            t0 = time.perf_counter()
            if not (base / "fp32" / "summary.json").exists():
                cfg = {"model": student, "data": data, "epochs": args.epochs, "seed": seed,
                       "optim": {"lr": 0.05}, "schedule": {"name": "cosine"},
                       "progress": False, "device": "cpu", "output": str(base / "fp32"),
                       "resume": (base / "fp32").exists()}  # fmt: skip
                VERBS.get("train")(build(TrainConfig, cfg), log=lambda _m: None)
            fp32_model = base / "fp32" / "last.safetensors"  # not its best epoch on the test set
            seconds = {"fp32": time.perf_counter() - t0}
            header = read_header(fp32_model)
            images, labels = dataset_images(header, split="test", count=10000, data_dir=None)
            files: dict[str, Path | None] = {}
            status: dict[str, str] = {}
            t0 = time.perf_counter()
            files["fp32"], status["fp32"] = export(fp32_model, base / "onnx", "onnx", {})
            seconds["fp32"] += time.perf_counter() - t0
            ptq = [
                ("ptq", {"float_first_last": False, "compare_speed": False}),
                ("ptq+auto", {"float_first_last": False, "auto_precision": True,
                              "auto_precision_min_speedup": 0, "compare_speed": False}),
            ]  # fmt: skip
            if args.reduce_range:
                ptq.insert(1, ("ptq-7bit", {"float_first_last": False, "reduce_range": True,
                                            "compare_speed": False}))  # fmt: skip
            for name, extra in ptq:
                t0 = time.perf_counter()
                files[name], status[name] = export(fp32_model, base / name, "onnx-int8", extra)
                seconds[name] = time.perf_counter() - t0
            for name, method in (("qat", "none"), ("qad-kd", "kd"), ("qad-r2kd", "r2kd")):
                from compress.quantize.config import QuantizeConfig

                t0 = time.perf_counter()
                run_dir = base / f"{name}-{tag}"
                try:
                    if not (run_dir / "summary.json").exists():
                        cfg = {"model": str(fp32_model), "method": method,
                               "epochs": args.qat_epochs, "seed": seed, "data": data,
                               "activation_type": activations,
                               "reduce_range": args.reduce_range,
                               "progress": False, "device": "cpu", "output": str(run_dir),
                               "resume": run_dir.exists()}  # fmt: skip
                        VERBS.get("quantize")(build(QuantizeConfig, cfg), log=lambda _m: None)
                    files[name], status[name] = export(
                        run_dir / "model.safetensors", base / f"{name}-{tag}-onnx", "onnx-int8",
                        {"compare_speed": False, "qdq_placement": args.placement},
                    )  # fmt: skip
                except CompressError as exc:  # e.g. R2KD's structured copy of a ShuffleNet
                    files[name], status[name] = None, f"not run: {str(exc).splitlines()[0]}"
                seconds[name] = time.perf_counter() - t0
            ran = {k: p for k, p in files.items() if p is not None and p.exists()}
            ref = predictions(ran["fp32"], images)
            lat1 = latency(ran, list(header.input_shape), 1, args.calls)
            lat64 = latency(ran, list(header.input_shape), 64, max(5, args.calls // 3))
            for name in variants:
                path = ran.get(name)
                pred = predictions(path, images) if path else None
                row = {
                    "student": student, "seed": seed, "variant": name, "status": status[name],
                    "placement": args.placement if name.startswith("qa") else None,
                    "reduce_range": args.reduce_range and (name.startswith("qa") or name == "ptq-7bit"),
                    "top1": float((pred == labels).mean()) if pred is not None else None,
                    "agreement": float((pred == ref).mean()) if pred is not None else None,
                    "batch1_ms": lat1.get(name), "batch64_ms": lat64.get(name),
                    "seconds": seconds[name],
                }  # fmt: skip
                rows.append(row)
                (out / f"results-{tag}.json").write_text(json.dumps(rows, indent=2))

                def fmt(v, scale=1.0, digits=2):
                    return "–" if v is None else f"{scale * v:.{digits}f}"

                print(f"| {student} | {seed} | {name} | {status[name][:90]} | {fmt(row['top1'], 100)} "
                      f"| {fmt(row['agreement'], 100)} | {fmt(row['batch1_ms'], 1, 3)} "
                      f"| {fmt(row['batch64_ms'], 1, 2)} | {row['seconds']:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
