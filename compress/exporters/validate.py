"""Every export proves itself against PyTorch on real evaluation images.

Checks, all collected before one typed error is raised: max absolute and relative output error
within a tolerance set by precision, top-1 agreement with PyTorch, the accuracy change, and for
pruned models that the exported weights have the pruned size. The accuracy figures are judged
with their statistics (`compress.exporters.gate`): a verdict of passed, failed or inconclusive
that depends on how many images it rests on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compress.errors import CompressError
from compress.exporters.gate import judge

#: Per precision: the bound on the logit error (``max_abs``, ``max_rel``), the least top-1
#: agreement with PyTorch, the largest accuracy drop, and what the verdict rests on
#: (``logits``: the deterministic error bound; ``accuracy``: the statistical accuracy gate).
TOLERANCES = {
    "fp32": {"max_abs": 1e-4, "agreement": 0.999, "accuracy_drop": 0.001, "judged_by": "logits"},
    "fp16": {
        "max_abs": None,
        "max_rel": 2e-2,
        "agreement": 0.99,
        "accuracy_drop": 0.005,
        "judged_by": "logits",
    },
    "int8": {"max_abs": None, "agreement": 0.95, "accuracy_drop": 0.01, "judged_by": "accuracy"},
    # a quantization-aware-trained model against its own fake-quantized PyTorch graph: the
    # same function up to rounding where the CPU's INT8 kernels are exact (VNNI, AMX); on AVX2
    # without VNNI ONNX Runtime's u8s8 products saturate in 16 bits (its documented caveat), and
    # 2-3 % of the predictions of a small model moved there, so the agreement floor is INT8's
    # (7-bit weights, `compress quantize --reduce-range`, make those kernels exact too)
    "int8-learned": {
        "max_abs": None,
        "agreement": 0.95,
        "accuracy_drop": 0.01,
        "judged_by": "accuracy",
    },
}


class ExportValidationError(CompressError):
    """An export differs from PyTorch beyond its precision's tolerance (all failures listed)."""

    def __init__(self, fmt: str, failures: list[str], report: dict[str, Any]) -> None:
        super().__init__(f"{fmt} export failed validation: " + "; ".join(failures))
        self.failures = failures
        self.report = report


@dataclass
class Reference:
    """PyTorch's logits on the validation images, with their labels."""

    images: np.ndarray  # float32 (N, C, H, W), normalised
    labels: np.ndarray
    logits: np.ndarray


def torch_reference(
    model: Any, images: np.ndarray, labels: np.ndarray, batch: int = 256
) -> Reference:
    """Run the PyTorch model (fp32, CPU) on `images`."""
    import torch

    model = model.eval().cpu()
    outs = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            outs.append(model(torch.from_numpy(images[i : i + batch])).numpy())
    return Reference(images, labels, np.concatenate(outs).astype(np.float32))


def weight_elements_onnx(path: Path) -> int:
    """Elements of the Conv/Gemm/MatMul weight initializers of an ONNX file (INT8: the quantised ones).

    Export folds BatchNorm into the convolutions and adds biases, so this counts only weight
    tensors; it equals the PyTorch Conv2d/Linear weight count when nothing was lost or padded.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}

    def source(name: str) -> Any:
        # follow DequantizeLinear / Cast back to the stored initializer
        while (
            name not in inits
            and name in producer
            and producer[name].op_type in ("DequantizeLinear", "QuantizeLinear", "Cast", "Identity")
        ):
            name = producer[name].input[0]
        return inits.get(name)

    total = 0
    seen: set[str] = set()
    for node in graph.node:
        if node.op_type in ("Conv", "Gemm", "MatMul") and len(node.input) > 1:
            init = source(node.input[1])
            if init is not None and init.name not in seen:
                seen.add(init.name)
                total += int(np.prod(numpy_helper.to_array(init).shape))
    return total


def weight_elements_torch(model: Any) -> int:
    """Elements of the Conv/Linear weights of a PyTorch model."""
    from torch import nn

    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def run_all(runner: Any, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """Logits of `runner` (a `compress.runtime.runners.Runner`) for every image, in batches.

    Batches respect the runner's fixed, maximum and minimum batch sizes (a TensorRT engine's
    optimisation profile); a short last batch is padded up to the minimum and trimmed after.
    """
    fixed = runner.input_shape[0] if getattr(runner, "input_shape", None) else None
    size = fixed or min(batch, getattr(runner, "max_batch", None) or batch)
    low = fixed or getattr(runner, "min_batch", 1) or 1
    outs = []
    for i in range(0, len(images), size):
        chunk = images[i : i + size]
        n = len(chunk)
        if n < low:  # pad with copies of the last image, then keep only the real rows
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], low - n, axis=0)])
        outs.append(np.asarray(runner.infer(chunk))[:n])
    return np.concatenate(outs).astype(np.float32)


def validate(
    runner: Any,
    ref: Reference,
    *,
    precision: str,
    fmt: str,
    model: Any = None,
    onnx_path: Path | None = None,
    batch: int = 64,
) -> dict[str, Any]:
    """Compare an exported model with PyTorch; returns the report or raises `ExportValidationError`.

    The report's ``verdict`` is ``passed`` or ``inconclusive`` (too few images to judge, or a
    drop beyond tolerance that is not significant; ``doubts`` says which); a ``failed`` verdict
    raises.

    `runner` is any `compress.runtime.runners.Runner`: the export runs through ``infer()``, the
    same contract the profiler, the benchmark and the device runtime use.
    """
    got = run_all(runner, ref.images, batch)
    diff = np.abs(got - ref.logits)
    scale = float(np.abs(ref.logits).max()) or 1.0
    report: dict[str, Any] = {
        "images": len(ref.labels),
        "max_abs_error": float(diff.max()),
        "max_rel_error": float(diff.max() / scale),
        "top1_agreement": float((got.argmax(1) == ref.logits.argmax(1)).mean()),
        "top1_torch": float((ref.logits.argmax(1) == ref.labels).mean()),
        "top1_export": float((got.argmax(1) == ref.labels).mean()),
    }
    report["accuracy_delta"] = report["top1_export"] - report["top1_torch"]
    tol = TOLERANCES[precision]
    failures = []
    if not np.isfinite(got).all():
        bad = int((~np.isfinite(got)).any(axis=1).sum())
        failures.append(f"the export gives NaN or infinite logits for {bad} of {len(got)} images")
        report["max_abs_error"] = report["max_rel_error"] = float("inf")
    if not np.isfinite(ref.logits).all():
        failures.append("PyTorch itself gives NaN or infinite logits: the model is broken")
    if tol.get("max_abs") is not None:
        bound = tol["max_abs"] + tol.get("rtol", 0.0) * scale
        if report["max_abs_error"] > bound:
            failures.append(f"max |Δlogit| {report['max_abs_error']:.2e} > {bound:.2e}")
    if tol.get("max_rel") is not None and report["max_rel_error"] > tol["max_rel"]:
        failures.append(f"max relative error {report['max_rel_error']:.2e} > {tol['max_rel']:.0e}")
    if model is not None and onnx_path is not None and onnx_path.suffix == ".onnx":
        report["weights_torch"] = weight_elements_torch(model)
        report["weights_export"] = weight_elements_onnx(onnx_path)
        if report["weights_torch"] != report["weights_export"]:
            failures.append(
                f"exported weights have {report['weights_export']:,} elements, PyTorch {report['weights_torch']:,}"
            )
    torch_right = ref.logits.argmax(1) == ref.labels
    export_right = got.argmax(1) == ref.labels
    verdict = judge(
        images=len(ref.labels),
        disagreements=int((got.argmax(1) != ref.logits.argmax(1)).sum()),
        lost=int((torch_right & ~export_right).sum()),
        gained=int((~torch_right & export_right).sum()),
        min_agreement=tol["agreement"],
        max_drop=tol["accuracy_drop"],
        judged_by=tol["judged_by"],
        deterministic_failures=failures,
    )
    report["verdict"] = verdict.status
    report["bounds"] = verdict.bounds
    if verdict.doubts:
        report["doubts"] = verdict.doubts
    report["tolerance"] = tol
    report["passed"] = verdict.passed
    if verdict.status == "failed":
        raise ExportValidationError(fmt, verdict.failures, report)
    return report
