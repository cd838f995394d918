"""Quick CPU latency of a model in torch eager and in ONNX Runtime (used by ``compress prune``)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from compress.runtime.timing import percentile, time_calls


def cpu_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    batches: Sequence[int] = (1, 64),
    repeats: int = 10,
    warmup: int = 3,
) -> dict[str, dict[int, float]]:
    """Median latency (ms) per batch size in torch eager and in onnxruntime, on the CPU.

    The model is exported to a temporary ONNX file for onnxruntime. Returns
    ``{"torch": {batch: ms}, "onnxruntime": {batch: ms}}``.
    """
    from compress.deploy.runners import make_runner
    from compress.exporters.onnx import export_onnx

    model = model.eval().cpu()
    out: dict[str, dict[int, float]] = {"torch": {}, "onnxruntime": {}}
    with torch.inference_mode():
        for b in batches:
            x = torch.randn(b, *input_shape)
            out["torch"][b] = percentile(
                time_calls(lambda x=x: model(x), warmup=warmup, repeats=repeats), 50
            )
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, Path(tmp) / "m.onnx", input_shape)
        with make_runner("onnxruntime", str(path)) as runner:
            for b in batches:
                x = torch.randn(b, *input_shape).numpy()
                out["onnxruntime"][b] = percentile(
                    time_calls(lambda x=x: runner.infer(x), warmup=warmup, repeats=repeats), 50
                )
    return out
