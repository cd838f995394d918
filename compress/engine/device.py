"""Device selection."""

from __future__ import annotations

import torch

from compress.errors import CompressError


def resolve_device(spec: str | None = "auto") -> torch.device:
    """``auto`` → the first CUDA GPU if there is one, else the CPU; otherwise check availability.

    Raises:
        CompressError: when CUDA is asked for but not available, or the spec is not a device.
    """
    from compress.distributed import launched, setup

    spec = (spec or "auto").strip().lower()
    if launched():  # under torchrun: one process per GPU (its LOCAL_RANK), or Gloo on the CPU
        kind = "cuda" if torch.cuda.is_available() and spec != "cpu" else "cpu"
        place = setup(kind)
        return torch.device("cuda", place.local_rank) if kind == "cuda" else torch.device("cpu")
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        raise CompressError(f"unknown device '{spec}'; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise CompressError(
                "--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise CompressError(
                f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise CompressError("--device mps was asked for but MPS is not available; use --device cpu")
    return device
