"""Batch iterators that yield normalised float images and labels on the training device.

Small datasets live on the device as one uint8 tensor; crop and flip run batched there (the
airbench approach), so a GPU never waits for Python workers. Large ones (``imagefolder``) go
through a DataLoader with workers, and only the normalisation runs on the device.
Shuffling is a pure function of (seed, epoch), so a resumed run sees the same batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch

from compress.data.augment import random_crop, random_flip


class Normalizer:
    """uint8 (0–255) images → float, normalised by per-channel mean and std."""

    def __init__(
        self, mean: Sequence[float], std: Sequence[float], device: torch.device | str = "cpu"
    ) -> None:
        m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.scale = 1.0 / (255.0 * s)
        self.shift = m / s

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise a uint8 batch (N, C, H, W)."""
        return x.float() * self.scale - self.shift


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**63 - 1)


class DeviceLoader:
    """Iterate over a uint8 tensor dataset held on `device`, augmenting batches there."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device | str = "cpu",
        shuffle: bool = False,
        crop_padding: int = 0,
        flip: bool = False,
        seed: int = 0,
        channels_last: bool = False,
        world: int = 1,
        rank: int = 0,
    ) -> None:
        self.device = torch.device(device)
        self.world, self.rank = world, rank
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size = batch_size
        self.normalize = Normalizer(mean, std, self.device)
        self.shuffle = shuffle
        self.crop_padding = crop_padding
        self.flip = flip
        self.seed = seed
        self.epoch = 0
        self.channels_last = channels_last

    @property
    def num_samples(self) -> int:
        """Number of images per epoch."""
        return len(self.labels)

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffling/augmentation stream of `epoch`."""
        self.epoch = epoch

    def __len__(self) -> int:
        n, b, w = self.num_samples, self.batch_size, self.world
        full, rest = divmod(n, b * w)
        if w > 1:  # every rank must take the same number of steps: a short tail needs 2 a rank
            return full + (1 if rest >= 2 * w else 0)
        return full + (1 if rest >= 2 or (rest and not self.shuffle) or full == 0 else 0)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = torch.Generator(device=self.device).manual_seed(_epoch_seed(self.seed, self.epoch))
        n, size = self.num_samples, self.batch_size * self.world
        order = torch.randperm(n, device=self.device, generator=gen) if self.shuffle else None
        for b in range(len(self)):
            # the global batch, augmented as one, then this rank's share of it: W processes at
            # batch B see exactly what one process at batch W·B sees
            sl = slice(b * size, min(n, (b + 1) * size))
            if order is None:
                x, y = self.images[sl], self.labels[sl]
            else:
                idx = order[sl]
                x, y = self.images[idx], self.labels[idx]
            if self.crop_padding:
                x = random_crop(x, self.crop_padding, gen)
            if self.flip:
                x = random_flip(x, gen)
            if self.world > 1:
                mine = torch.arange(len(y), device=self.device).tensor_split(self.world)[self.rank]
                x, y = x[mine], y[mine]
            x = self.normalize(x)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y


def shuffled_batches(
    n: int, batch: int, world: int, rank: int, order: list[int]
) -> list[list[int]]:
    """This rank's index batches of one epoch (the same rule as `DeviceLoader`).

    Global batches of ``batch × world`` are taken from `order`, each split into `world`
    contiguous shares.
    """
    size = batch * world
    full, rest = divmod(n, size)
    if world > 1:
        steps = full + (1 if rest >= 2 * world else 0)
    else:
        steps = full + (1 if rest >= 2 or full == 0 else 0)
    out = []
    for b in range(steps):
        chunk = order[b * size : (b + 1) * size]
        share, extra = divmod(len(chunk), world)
        start = rank * share + min(rank, extra)
        out.append(chunk[start : start + share + (1 if rank < extra else 0)])
    return out


class _ShardedBatchSampler(torch.utils.data.Sampler):
    """Shuffled index batches seeded per epoch, this rank's share of every global batch."""

    def __init__(
        self, n: int, batch: int, world: int, rank: int, generator: torch.Generator
    ) -> None:
        self.n, self.batch, self.world, self.rank, self.generator = n, batch, world, rank, generator

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.n, generator=self.generator).tolist()
        yield from shuffled_batches(self.n, self.batch, self.world, self.rank, order)

    def __len__(self) -> int:
        return len(shuffled_batches(self.n, self.batch, self.world, self.rank, list(range(self.n))))


class FolderLoader:
    """A DataLoader over an image-folder dataset, normalising batches on `device`."""

    def __init__(
        self,
        dataset: torch.utils.data.Dataset,
        *,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device | str = "cpu",
        shuffle: bool = False,
        workers: int = 4,
        seed: int = 0,
        channels_last: bool = False,
        world: int = 1,
        rank: int = 0,
    ) -> None:
        self.device = torch.device(device)
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.generator = torch.Generator()
        self.normalize = Normalizer(mean, std, self.device)
        self.channels_last = channels_last
        # the workers' seeds (their random crops and flips) come from this loader's generator,
        # not from the process's global one: the same run gives the same batches
        common = {
            "num_workers": workers,
            "pin_memory": self.device.type == "cuda",
            "generator": self.generator,
        }
        if shuffle:  # a last batch of one image would break BatchNorm: dropped, as on the device
            sampler = _ShardedBatchSampler(len(dataset), batch_size, world, rank, self.generator)
            self.loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, **common)
        else:
            self.loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, **common)
        self.set_epoch(0)

    @property
    def num_samples(self) -> int:
        """Number of images per epoch."""
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffling stream of `epoch`."""
        self.generator.manual_seed(_epoch_seed(self.seed, epoch))

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in _clean_errors(self.loader):
            x = self.normalize(x.to(self.device, non_blocking=True))
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y.to(self.device, non_blocking=True)


def _clean_errors(batches: Iterable[Any]) -> Iterator[Any]:
    """Re-raise an unreadable image met in a worker as one line (workers add their traceback)."""
    from compress.data.imagefolder import ImageReadError

    try:
        yield from batches
    except ImageReadError as exc:
        last = (str(exc).strip().splitlines() or [""])[-1]
        raise ImageReadError(last.split("ImageReadError: ", 1)[-1]) from None


def read_folder_items(dataset: Any) -> tuple[Any, Any]:
    """Every item of a folder dataset as stacked uint8 images (numpy) and labels."""
    import numpy as np

    xs, ys = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(xs).numpy(), np.asarray(ys)
