"""What every dataset returns: images as uint8 tensors (small sets) or a folder dataset (large)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from compress.config import NO_HASH
from compress.data.protocols import ImbalanceSettings
from compress.header import MEAN_RANGE, STD_RANGE
from compress.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: name → loader(settings: DataSettings) -> TensorData | FolderData
DATASETS: Registry = Registry("dataset")


@dataclass
class DataSettings:
    """Which dataset to use and how to batch and augment it.

    Attributes:
        name: registry name (``digits``, ``fashion-mnist``, ``cifar10``, ``cifar100``,
            ``imagefolder``).
        data_dir: where to look for the files (see each dataset); ``None`` uses the defaults.
        download: allow torchvision to download the files (the only path that uses a network).
        batch_size: training batch size.
        eval_batch_size: evaluation batch size.
        augment: ``default`` (the dataset's crop/flip), ``none``, or ``crop``/``flip``/``crop+flip``.
        crop_padding: random-crop padding in pixels; ``None`` = the dataset's default.
        image_size: output size for ``imagefolder`` images (square); ``None`` = the model's
            recorded size when measuring a model, else 224.
        mean: per-channel normalisation mean on the 0–1 scale (``None``: the dataset's, or the
            model's recorded one when measuring a model); recorded in the model file.
        std: per-channel normalisation std (as `mean`).
        workers: DataLoader worker processes (``imagefolder`` only; ``None`` = min(4, CPUs)).
        train_subset: use only this many training images (a fixed, class-balanced subset).
        test_subset: evaluate on only this many test images (a fixed, class-balanced subset).
        label_noise: σ, the fraction of *training* labels replaced by a random class (the seed
            study's symmetric noise; 0 = off). The test split is never touched.
        label_noise_mode: ``other`` (the new class is one of the C−1 others: the realised rate
            is exactly σ) or ``uniform`` (any of the C classes: realised rate σ·(C−1)/C).
        noise_seed: fixes the corruption and the imbalance draw (``null``: the run's seed, so
            every method of one seed sees the same data).
        imbalance: per-class training counts from a profile (`ImbalanceSettings`; ``null`` =
            balanced).
    """

    name: str = "digits"
    data_dir: str | None = field(default=None, metadata=NO_HASH)
    download: bool = field(default=False, metadata=NO_HASH)
    batch_size: int = 64
    eval_batch_size: int = field(default=500, metadata=NO_HASH)
    augment: Literal["default", "none", "crop", "flip", "crop+flip"] = "default"
    crop_padding: int | None = None
    image_size: int | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    workers: int | None = field(default=None, metadata=NO_HASH)
    train_subset: int | None = None
    test_subset: int | None = None
    label_noise: float = 0.0
    label_noise_mode: Literal["other", "uniform"] = "other"
    noise_seed: int | None = None
    imbalance: ImbalanceSettings | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ValueError("batch sizes must be ≥ 1")
        for name in ("train_subset", "test_subset"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be ≥ 1 or null")
        if self.image_size is not None and not 1 <= self.image_size <= 1024:
            raise ValueError(f"image_size must be between 1 and 1024, got {self.image_size}")
        if self.workers is not None and not 0 <= self.workers <= 64:
            raise ValueError(f"workers must be between 0 and 64, got {self.workers}")
        if self.crop_padding is not None and not 0 <= self.crop_padding <= 64:
            raise ValueError(f"crop_padding must be between 0 and 64, got {self.crop_padding}")
        if not 0.0 <= self.label_noise <= 1.0:
            raise ValueError(f"label_noise must be in [0, 1], got {self.label_noise}")
        if (self.mean is None) != (self.std is None):
            raise ValueError("give data.mean and data.std together")
        if self.std is not None and (not self.std or len(self.std) != len(self.mean or [])):
            raise ValueError("data.mean and data.std need one value per channel")
        check_normalisation(self.mean, self.std, "data.")

    @property
    def loader_workers(self) -> int:
        """DataLoader workers: as set, else min(4, CPU cores)."""
        return self.workers if self.workers is not None else min(4, os.cpu_count() or 1)


#: Bounds of a per-channel normalisation on the 0–1 pixel scale (`compress.header`): a mean or a
#: std outside them is a typo (a 0–255 value, an exponent) and would train or measure on garbage.
def check_normalisation(mean: Any, std: Any, prefix: str = "") -> None:
    """Raise `ValueError` for a mean or std that is not finite or outside its sane range."""
    import math

    for name, values, (lo, hi) in (("mean", mean, MEAN_RANGE), ("std", std, STD_RANGE)):
        for v in values or ():
            if not (isinstance(v, (int, float)) and math.isfinite(v) and lo <= v <= hi):
                raise ValueError(
                    f"{prefix}{name} value {v!r} is outside [{lo:g}, {hi:g}]; give per-channel "
                    "values on the 0–1 pixel scale (e.g. mean 0.5, std 0.25)"
                )


@dataclass
class DatasetInfo:
    """What a model needs to know about its data."""

    name: str
    num_classes: int
    in_channels: int
    input_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: list[str] | None = None
    train_size: int = 0
    test_size: int = 0
    crop_padding: int = 0
    flip: bool = False
    protocol: dict[str, Any] | None = None  # label noise / imbalance applied to the training split

    def header(self) -> dict[str, Any]:
        """The fields a model file records about its data."""
        return {
            "dataset": self.name,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "input_size": list(self.input_size),
            "mean": list(self.mean),
            "std": list(self.std),
            "class_names": self.class_names,
        }


@dataclass
class TensorData:
    """A small dataset held as uint8 image tensors (N, C, H, W) and int64 labels."""

    info: DatasetInfo
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


@dataclass
class FolderData:
    """A large dataset read from image files by a DataLoader (``imagefolder``)."""

    info: DatasetInfo
    train: Any  # torch Dataset yielding (uint8 CHW tensor, int)
    test: Any


def default_data_dirs(data_dir: str | None) -> list[Path]:
    """Directories to search: ``data_dir`` if given, else ``$COMPRESS_DATA_DIR`` and ``./data``."""
    if data_dir:
        return [Path(data_dir).expanduser()]
    dirs = []
    env = os.environ.get("COMPRESS_DATA_DIR")
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(Path("data"))
    return dirs


def class_balanced_subset(
    labels: torch.Tensor, n: int | None, seed: int = 0
) -> torch.Tensor | None:
    """Indices of a fixed subset of `n` samples with classes as balanced as the data allows.

    Returns ``None`` when no subset is asked for (or `n` covers everything).
    """
    import torch

    if n is None or n >= len(labels):
        return None
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(labels), generator=g)
    # round-robin over classes in a random order: take the i-th sample of every class in turn
    by_class = [perm[labels[perm] == c] for c in torch.unique(labels)]
    order = []
    depth = max(len(ix) for ix in by_class)
    for i in range(depth):
        order.extend(int(ix[i]) for ix in by_class if i < len(ix))
    return torch.tensor(sorted(order[:n]), dtype=torch.long)
