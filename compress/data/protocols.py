"""The seed study's data protocols: symmetric label noise and class imbalance, training split only.

Both are pure functions of the labels and a seed, applied after the dataset is loaded and
subset; the test split is never touched. What was done (the realised noise rate, the per-class
counts) is returned so that it goes into ``summary.json``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

#: Imbalance profiles by name.
PROFILES = ("dirichlet", "exp", "step")


@dataclass
class ImbalanceSettings:
    """Per-class training counts from a named profile.

    Attributes:
        profile: ``dirichlet``: class proportions drawn from Dir(γ·1) with a fixed seed, scaled
            so the largest class keeps all its images (our reading of the seed study's γ: it
            does not state its model; larger γ is milder); ``exp``: long-tailed, counts fall
            exponentially from the largest class to the smallest, N_max/N_min = `ratio` (CIFAR-LT,
            Cui et al. 2019); ``step``: the last `minority` fraction of the classes keep
            N_max/`ratio` images.
        gamma: the Dirichlet concentration (``dirichlet``).
        ratio: N_max / N_min (``exp``, ``step``).
        minority: fraction of classes that are minority classes (``step``).
        seed: seeds the proportions and which images are kept (``null``: the noise seed, i.e.
            the run seed unless ``data.noise_seed`` is set).
    """

    profile: Literal["dirichlet", "exp", "step"] = "dirichlet"
    gamma: float = 1.0
    ratio: float = 10.0
    minority: float = 0.5
    seed: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.gamma) and self.gamma > 0):
            raise ValueError(f"imbalance.gamma must be > 0, got {self.gamma}")
        if not (math.isfinite(self.ratio) and self.ratio >= 1):
            raise ValueError(f"imbalance.ratio must be ≥ 1, got {self.ratio}")
        if not 0 < self.minority < 1:
            raise ValueError(f"imbalance.minority must be in (0, 1), got {self.minority}")

    def label(self) -> str:
        """A short name for tables: ``dirichlet γ=0.2``, ``exp ρ=10``."""
        if self.profile == "dirichlet":
            return f"dirichlet γ={self.gamma:g}"
        return f"{self.profile} ρ={self.ratio:g}"


def corrupt_labels(
    labels: Any, rate: float, num_classes: int, *, seed: int, mode: str = "other"
) -> tuple[Any, dict[str, Any]]:
    """Replace a fraction `rate` of `labels` by random classes (symmetric label noise).

    Args:
        labels: int64 tensor of training labels.
        rate: σ, the fraction of labels to corrupt (exactly ``round(σ·N)`` of them).
        num_classes: C.
        seed: fixes which labels and which new classes.
        mode: ``other``: the new class is drawn uniformly from the C−1 *other* classes, so the
            realised noise rate is σ; ``uniform``: drawn from all C classes, so about σ/C of the
            picked labels keep their class and the realised rate is σ·(C−1)/C.

    Returns:
        ``(noisy labels, facts)`` with facts ``rate``, ``mode``, ``seed``, ``corrupted`` (labels
        that changed) and ``realised_rate``.
    """
    import torch

    if not 0 <= rate <= 1:
        raise ValueError(f"label_noise must be in [0, 1], got {rate}")
    g = torch.Generator().manual_seed(seed)
    n = len(labels)
    picked = torch.randperm(n, generator=g)[: round(rate * n)]
    noisy = labels.clone()
    if mode == "other":
        shift = torch.randint(1, num_classes, (len(picked),), generator=g)
        noisy[picked] = (labels[picked] + shift) % num_classes
    else:
        noisy[picked] = torch.randint(0, num_classes, (len(picked),), generator=g)
    changed = int((noisy != labels).sum())
    facts = {
        "rate": rate,
        "mode": mode,
        "seed": seed,
        "corrupted": changed,
        "realised_rate": changed / max(1, n),
    }
    return noisy, facts


def class_counts(available: list[int], settings: ImbalanceSettings, *, seed: int) -> list[int]:
    """How many training images each class keeps under `settings` (largest class full, ≥ 1 each)."""
    import torch

    c = len(available)
    top = max(available)
    if settings.profile == "dirichlet":
        g = torch.Generator().manual_seed(seed)
        gamma = torch.full((c,), float(settings.gamma))
        # Dirichlet from Gamma draws with torch's seeded generator (reproducible everywhere)
        draws = torch._standard_gamma(gamma, generator=g)
        share = (draws / draws.sum()).tolist()
        biggest = max(share)
        wanted = [top * s / biggest for s in share]
    elif settings.profile == "exp":
        wanted = [top * settings.ratio ** (-i / max(1, c - 1)) for i in range(c)]
    else:
        first_minor = c - max(1, round(settings.minority * c))
        wanted = [top if i < first_minor else top / settings.ratio for i in range(c)]
    return [max(1, min(n, math.floor(w + 1e-9))) for n, w in zip(available, wanted)]


def imbalanced_indices(
    labels: Any, num_classes: int, settings: ImbalanceSettings, *, seed: int
) -> tuple[Any, dict[str, Any]]:
    """Indices of the training images an imbalance profile keeps, and the realised counts.

    Returns:
        ``(indices, facts)``; facts: ``profile``, ``gamma``/``ratio``, ``seed``, ``counts`` (per
        class, kept), ``available`` (per class, before).
    """
    import torch

    available = [int((labels == k).sum()) for k in range(num_classes)]
    counts = class_counts(available, settings, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    keep = []
    for k, n in enumerate(counts):
        idx = (labels == k).nonzero().flatten()
        keep.append(idx[torch.randperm(len(idx), generator=g)[:n]])
    indices = torch.cat(keep).sort().values
    facts = {
        "profile": settings.profile,
        "gamma": settings.gamma if settings.profile == "dirichlet" else None,
        "ratio": settings.ratio if settings.profile != "dirichlet" else None,
        "seed": seed,
        "counts": counts,
        "available": available,
    }
    return indices, facts
