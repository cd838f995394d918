"""Runners by name.

All share `compress.deploy.agent.Runner`: its public ``infer()`` validates the input and times
the call; each backend fills ``_infer_impl``.

``onnxruntime`` and ``tensorrt`` are defined in the agent (they also run on devices without
torch); ``torch`` is here.
"""

from __future__ import annotations

from typing import Any

from compress.registry import Registry

#: runtime name → factory(path, **options) -> Runner
RUNNERS: Registry = Registry("runtime")


def _torch(path: str, **options: Any) -> Any:
    from compress.deploy.runners.torch import TorchRunner

    return TorchRunner(path, **options)


def _onnxruntime(path: str, **options: Any) -> Any:
    from compress.deploy.agent import OnnxRuntimeRunner

    return OnnxRuntimeRunner(
        path, providers=options.get("providers"), threads=options.get("threads")
    )


def _tensorrt(path: str, **options: Any) -> Any:
    from compress.deploy.agent import TensorRTRunner, check_engine

    check_engine(path)
    return TensorRTRunner(path)


RUNNERS.add(
    "torch", _torch, suffixes=(".safetensors",), summary="PyTorch eager (optionally torch.compile)"
)
RUNNERS.add(
    "onnxruntime",
    _onnxruntime,
    suffixes=(".onnx",),
    summary="ONNX Runtime (CPU; CUDA/TensorRT providers if present)",
)
RUNNERS.add(
    "tensorrt",
    _tensorrt,
    suffixes=(".plan", ".engine"),
    summary="TensorRT engine (device buffers via libcudart)",
)


def make_runner(runtime: str, path: str, **options: Any) -> Any:
    """A runner for `path` in `runtime` (unknown runtimes get a suggestion)."""
    return RUNNERS.get(runtime)(path, **options)
