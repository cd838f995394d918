"""The host's runners: the device runtime's (onnxruntime, tensorrt) plus ``torch``.

There is one runner registry and one `make_runner`, in `compress.runtime.runners`; importing
this package adds the torch runner to it (the device has no torch). Every runner shares the
`Runner` contract: ``infer()`` validates the input and times the call, a backend fills
``_infer_impl``.
"""

from __future__ import annotations

from typing import Any

from compress.runtime.runners import (
    Runner,
    make_runner,
    register_runner,
    runtime_for,
    runtime_names,
    runtime_summary,
)


def _torch(
    path: str,
    *,
    device: str = "auto",
    compile: bool = False,
    threads: int | None = None,
    **_: Any,
) -> Runner:
    from compress.deploy.runners.torch import TorchRunner

    return TorchRunner(path, device=device, compile=compile, threads=threads)


if "torch" not in runtime_names():
    register_runner("torch", _torch, (".safetensors",), "PyTorch eager (optionally torch.compile)")

__all__ = ["Runner", "make_runner", "runtime_for", "runtime_names", "runtime_summary"]
