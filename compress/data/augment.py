"""Batched augmentations that run on the training device (no Python workers)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop(
    x: torch.Tensor, padding: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Pad every image by `padding` (zeros) and crop back at a random offset per image.

    Args:
        x: images (N, C, H, W), any dtype.
        padding: pixels added on each side.
        generator: random source (on `x`'s device).
    """
    if padding <= 0:
        return x
    n, c, h, w = x.shape
    p = padding
    padded = F.pad(x, (p, p, p, p))
    dy = torch.randint(0, 2 * p + 1, (n,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * p + 1, (n,), device=x.device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=x.device)).view(n, 1, h, 1)
    strip = padded.gather(2, rows.expand(n, c, h, w + 2 * p))
    cols = (dx[:, None] + torch.arange(w, device=x.device)).view(n, 1, 1, w)
    return strip.gather(3, cols.expand(n, c, h, w))


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image horizontally with probability 1/2."""
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)
