"""PyTorch eager runner for ``.safetensors`` model files."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from compress.runtime.runners.base import Runner


class TorchRunner(Runner):
    """`compress.load_model` + ``model(x)`` under ``inference_mode`` (optionally ``torch.compile``)."""

    name = "torch"

    def __init__(
        self,
        path: str,
        *,
        device: str = "cpu",
        compile: bool = False,
        threads: int | None = None,
        **_: Any,
    ) -> None:
        super().__init__()
        from compress.artifacts import load_model
        from compress.engine.device import resolve_device

        if threads:
            torch.set_num_threads(threads)
        self.device = resolve_device(device)
        self.model = load_model(path, device=self.device)
        self.input_shape = (None, *self.model.compress_header.input_shape)
        self.forward = torch.compile(self.model) if compile else self.model

    def gpu_memory_bytes(self) -> int | None:
        """Peak CUDA memory torch allocated (None on the CPU)."""
        return torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda" else None

    def prepare(self, images: np.ndarray) -> torch.Tensor:
        """The batch as a tensor on the runner's device."""
        self.infer(images)
        return torch.from_numpy(images).to(self.device)

    def run_prepared(self, prepared: torch.Tensor) -> None:
        """Forward pass only (synchronised on CUDA)."""
        with torch.inference_mode():
            self.forward(prepared)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _infer_impl(self, images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = self.forward(torch.from_numpy(images).to(self.device))
            return out.float().cpu().numpy()
