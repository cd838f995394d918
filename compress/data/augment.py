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


# --------------------------------------------------------------------------- extra views for KD
# These follow R2KD's released code: one mixing coefficient, box or hole per batch (the partner
# images come from a random permutation of the batch). They work on normalised float batches.


def _host(
    generator: torch.Generator | None, host: torch.Generator | None
) -> torch.Generator | None:
    """The generator for scalar draws: `host` if given, else `generator` when it is a CPU one."""
    if host is not None:
        return host
    return generator if generator is None or generator.device.type == "cpu" else None


def _beta(alpha: float, generator: torch.Generator | None, device: torch.device,
          host: torch.Generator | None = None) -> float:  # fmt: skip
    # Beta(a, a) from two Gamma draws, using torch's generator so runs are reproducible; drawn on
    # the host when a host generator is at hand (no device→host copy in the step)
    cpu = _host(generator, host)
    where = torch.device("cpu") if cpu is not None else device
    g = torch._standard_gamma(
        torch.full((2,), float(alpha), device=where), generator=cpu or generator
    )
    return float(g[0] / g.sum())


def _centre(h: int, w: int, generator: torch.Generator | None, device: torch.device,
            host: torch.Generator | None) -> tuple[int, int]:  # fmt: skip
    cpu = _host(generator, host)
    where, gen = (torch.device("cpu"), cpu) if cpu is not None else (device, generator)
    cy = int(torch.randint(0, h, (1,), generator=gen, device=where))
    cx = int(torch.randint(0, w, (1,), generator=gen, device=where))
    return cy, cx


def cutmix(
    x: torch.Tensor, alpha: float = 1.0, generator: torch.Generator | None = None,
    host: torch.Generator | None = None,
) -> torch.Tensor:  # fmt: skip
    """Paste one random box (area ≈ 1−λ, λ ~ Beta(α, α)) from a shuffled partner into each image.

    λ and the box are drawn from `host` (a CPU generator; by default `generator` when it is a
    CPU one), so a CUDA batch needs no device→host copy; the partners from `generator`.
    """
    n, _, h, w = x.shape
    lam = _beta(alpha, generator, x.device, host)
    ratio = (1.0 - lam) ** 0.5
    cut_h, cut_w = int(h * ratio), int(w * ratio)
    cy, cx = _centre(h, w, generator, x.device, host)
    y1, y2 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    x1, x2 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    perm = torch.randperm(n, generator=generator, device=x.device)
    out = x.clone()
    out[:, :, y1:y2, x1:x2] = x[perm, :, y1:y2, x1:x2]
    return out


def entropy_pick(x_mixed: torch.Tensor, logits: torch.Tensor, count: int) -> torch.Tensor:
    """The `count` rows of `x_mixed` whose `logits` have the highest softmax entropy.

    R2KD's released ``cutmixpick``: the entropy is the teacher's on the *clean* batch, and the
    mixed images at those positions are kept (all of them when the batch holds ≤ `count`).
    """
    prob = logits.float().softmax(dim=1)
    entropy = -(prob * prob.clamp_min(1e-12).log()).sum(dim=1)
    keep = entropy.argsort()[-min(count, len(entropy)) :]
    return x_mixed[keep]


def mixup(
    x: torch.Tensor, alpha: float = 0.2, generator: torch.Generator | None = None,
    host: torch.Generator | None = None,
) -> torch.Tensor:  # fmt: skip
    """Blend each image with a shuffled partner: ``λ·x + (1−λ)·x[perm]``, λ ~ Beta(α, α)."""
    lam = _beta(alpha, generator, x.device, host)
    perm = torch.randperm(x.shape[0], generator=generator, device=x.device)
    return lam * x + (1.0 - lam) * x[perm]


def cutout(
    x: torch.Tensor, size: int, generator: torch.Generator | None = None,
    host: torch.Generator | None = None,
) -> torch.Tensor:  # fmt: skip
    """Zero one square hole of side `size` (clipped at the border) at a random centre."""
    _, _, h, w = x.shape
    cy, cx = _centre(h, w, generator, x.device, host)
    out = x.clone()
    out[
        :,
        :,
        max(cy - size // 2, 0) : min(cy + size // 2, h),
        max(cx - size // 2, 0) : min(cx + size // 2, w),
    ] = 0
    return out


def autoaugment(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """AutoAugment (torchvision) on a normalised batch (CIFAR-10 policy below 64 px, else ImageNet).

    As in R2KD's released code the batch is de-normalised to uint8, augmented as one tensor (one
    sampled sub-policy per batch), and normalised again.
    """
    from torchvision.transforms import AutoAugment, AutoAugmentPolicy

    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    images = ((x * s + m).clamp(0, 1) * 255).round().to(torch.uint8)
    policy = AutoAugmentPolicy.CIFAR10 if min(x.shape[-2:]) < 64 else AutoAugmentPolicy.IMAGENET
    if images.shape[1] == 1:  # colour ops expect 3 channels: run on a grey RGB copy
        out = AutoAugment(policy)(images.expand(-1, 3, -1, -1).contiguous())[:, :1]
    else:
        out = AutoAugment(policy)(images)
    return (out.float() / 255 - m) / s
