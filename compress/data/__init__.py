"""Datasets by name, device-resident loaders and batched augmentation."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from compress.data import cifar, digits, fashion_mnist, imagefolder  # noqa: F401  (registration)
from compress.data.base import (
    DATASETS,
    DatasetInfo,
    DataSettings,
    FolderData,
    TensorData,
    class_balanced_subset,
)

__all__ = [
    "DATASETS",
    "DataSettings",
    "DatasetInfo",
    "FolderData",
    "TensorData",
    "build_loaders",
    "list_datasets",
    "load_data",
    "sample_split",
]

_CACHE: dict[tuple[Any, ...], TensorData] = {}


def list_datasets() -> list[str]:
    """Registered dataset names."""
    return DATASETS.names()


def load_data(settings: DataSettings) -> TensorData | FolderData:
    """Load the dataset `settings.name`, applying ``train_subset`` / ``test_subset``.

    Tensor datasets are cached per process (they are never modified).

    Raises:
        UnknownNameError: unknown dataset name.
        DataNotFoundError: the files are not where the dataset looks (the message says where).
    """
    loader = DATASETS.get(settings.name)
    key = (settings.name, settings.data_dir, settings.image_size, settings.augment)
    data = _CACHE.get(key)
    if data is None:
        data = loader(settings)
        if isinstance(data, TensorData):
            _CACHE[key] = data
    return _subset(data, settings)


def _subset(data: TensorData | FolderData, settings: DataSettings) -> TensorData | FolderData:
    import torch

    if isinstance(data, TensorData):
        train_idx = class_balanced_subset(data.train_y, settings.train_subset)
        test_idx = class_balanced_subset(data.test_y, settings.test_subset)
        tx, ty = (
            (data.train_x, data.train_y)
            if train_idx is None
            else (data.train_x[train_idx], data.train_y[train_idx])
        )
        vx, vy = (
            (data.test_x, data.test_y)
            if test_idx is None
            else (data.test_x[test_idx], data.test_y[test_idx])
        )
        info = replace(data.info, train_size=len(ty), test_size=len(vy))
        return TensorData(info, tx, ty, vx, vy)
    train, test = data.train, data.test
    if settings.train_subset is not None:
        labels = torch.tensor(train.targets)
        idx = class_balanced_subset(labels, settings.train_subset)
        train = train if idx is None else torch.utils.data.Subset(train, idx.tolist())
    if settings.test_subset is not None:
        labels = torch.tensor(test.targets)
        idx = class_balanced_subset(labels, settings.test_subset)
        test = test if idx is None else torch.utils.data.Subset(test, idx.tolist())
    info = replace(data.info, train_size=len(train), test_size=len(test))
    return FolderData(info, train, test)


def augmentation(settings: DataSettings, info: DatasetInfo) -> tuple[int, bool]:
    """The (crop padding, flip) pair that `settings.augment` selects for this dataset."""
    padding = settings.crop_padding if settings.crop_padding is not None else info.crop_padding
    mode = settings.augment
    if mode == "default":
        return padding, info.flip
    if mode == "none":
        return 0, False
    return (padding if "crop" in mode else 0), ("flip" in mode)


def build_loaders(
    data: TensorData | FolderData,
    settings: DataSettings,
    *,
    device: Any = "cpu",
    seed: int = 0,
    channels_last: bool = False,
):
    """The training loader (shuffled, augmented) and the evaluation loader (test split).

    Returns:
        ``(train_loader, eval_loader)``; both yield ``(images, labels)`` on `device`, images
        normalised by the dataset's mean and std.
    """
    from compress.data.loader import DeviceLoader, FolderLoader

    info = data.info
    common = {"mean": info.mean, "std": info.std, "device": device, "channels_last": channels_last}
    if isinstance(data, TensorData):
        padding, flip = augmentation(settings, info)
        train = DeviceLoader(
            data.train_x,
            data.train_y,
            batch_size=settings.batch_size,
            shuffle=True,
            crop_padding=padding,
            flip=flip,
            seed=seed,
            **common,
        )
        test = DeviceLoader(data.test_x, data.test_y, batch_size=settings.eval_batch_size, **common)
        return train, test
    train = FolderLoader(
        data.train,
        batch_size=settings.batch_size,
        shuffle=True,
        workers=settings.workers,
        seed=seed,
        **common,
    )
    test = FolderLoader(
        data.test, batch_size=settings.eval_batch_size, workers=settings.workers, **common
    )
    return train, test


def sample_split(name: str, split: str, count: int, *, data_dir: str | None = None):
    """`count` class-balanced real images of a dataset split as uint8 numpy (N, C, H, W).

    Returns:
        ``(images, labels, info)``; for ``imagefolder`` the images go through the evaluation
        transform (resize and centre crop).
    """
    import numpy as np
    import torch

    key = "train_subset" if split == "train" else "test_subset"
    data = load_data(DataSettings(name=name, data_dir=data_dir, augment="none", **{key: count}))
    if isinstance(data, FolderData):
        dataset = data.train if split == "train" else data.test
        xs, ys = zip(*(dataset[i] for i in range(len(dataset))))
        images, labels = torch.stack(xs).numpy(), np.asarray(ys)
    else:
        images = (data.train_x if split == "train" else data.test_x).numpy()
        labels = (data.train_y if split == "train" else data.test_y).numpy()
    return images.astype(np.uint8), labels.astype(np.int64), data.info
