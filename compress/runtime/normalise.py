"""The one normalisation of images: uint8 (0–255) → float32 ``(x / 255 − mean) / std``.

Standard library and numpy only (the device runtime uses it too). The training loader's
`compress.data.loader.Normalizer` computes the same on the device with torch, as
``x · 1/(255·std) − mean/std`` (tested equal to this within float32 rounding).
"""

from typing import Any, Sequence


def normalise(images: Any, mean: Sequence[float], std: Sequence[float]) -> Any:
    """float32 (N, C, H, W) images from uint8 ones, per-channel `mean` and `std` (0–1 scale)."""
    import numpy as np

    m = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
    return ((np.asarray(images).astype(np.float32) / 255.0 - m) / s).astype(np.float32)
