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
from compress.errors import CompressError, ConfigError
from compress.header import ModelHeader

__all__ = [
    "DATASETS",
    "DataSettings",
    "DatasetInfo",
    "FolderData",
    "TensorData",
    "build_loaders",
    "check_fits",
    "holdout_loader",
    "list_datasets",
    "load_data",
    "load_data_for_model",
    "sample_split",
    "settings_for_model",
]

_CACHE: dict[tuple[Any, ...], TensorData] = {}


def list_datasets() -> list[str]:
    """Registered dataset names."""
    return DATASETS.names()


def load_data(settings: DataSettings, *, seed: int = 0) -> TensorData | FolderData:
    """Load the dataset `settings.name` with its subsets and data protocols applied.

    ``train_subset`` / ``test_subset`` first, then the label-noise and imbalance protocols on
    the training split only (`seed` is the run's seed, used when ``noise_seed`` is unset).

    Tensor datasets are cached per process (they are never modified).

    Raises:
        UnknownNameError: unknown dataset name.
        DataNotFoundError: the files are not where the dataset looks (the message says where).
    """
    loader = DATASETS.get(settings.name)
    if settings.data_dir and not DATASETS.info(settings.name).get("reads_data_dir", True):
        raise CompressError(
            f"{settings.name} is bundled with its package and reads no --data-dir, so "
            f"'{settings.data_dir}' would be ignored; to use the images there pass --dataset "
            "imagefolder (or the dataset they are), or drop --data-dir"
        )
    key = (settings.name, settings.data_dir, settings.image_size, settings.augment)
    data = _CACHE.get(key)
    if data is None:
        data = loader(settings)
        if isinstance(data, TensorData):
            _CACHE[key] = data
    if settings.mean is not None and settings.std is not None:
        if len(settings.mean) != data.info.in_channels:
            raise ConfigError(
                f"data.mean has {len(settings.mean)} values but {data.info.name} images have "
                f"{data.info.in_channels} channels"
            )
        data = replace(
            data, info=replace(data.info, mean=tuple(settings.mean), std=tuple(settings.std))
        )
    return apply_protocols(_subset(data, settings), settings, seed)


class _Relabelled:
    """A folder dataset with replaced labels (label noise on an ImageFolder)."""

    def __init__(self, dataset: Any, labels: list[int]) -> None:
        self.dataset, self.targets = dataset, labels

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        return self.dataset[i][0], self.targets[i]


def apply_protocols(
    data: TensorData | FolderData, settings: DataSettings, seed: int
) -> TensorData | FolderData:
    """Class imbalance, then label noise, on the training split; facts in ``info.protocol``."""
    import torch

    from compress.data.protocols import corrupt_labels, imbalanced_indices

    if not settings.label_noise and settings.imbalance is None:
        return data
    noise_seed = settings.noise_seed if settings.noise_seed is not None else seed
    info = data.info
    facts: dict[str, Any] = {}
    if isinstance(data, TensorData):
        x, y = data.train_x, data.train_y
    else:
        train = data.train
        y = torch.tensor(
            train.targets if hasattr(train, "targets") else [train[i][1] for i in range(len(train))]
        )
    if settings.imbalance is not None:
        imb = settings.imbalance
        idx, facts["imbalance"] = imbalanced_indices(
            y, info.num_classes, imb, seed=imb.seed if imb.seed is not None else noise_seed
        )
        y = y[idx]
        if isinstance(data, TensorData):
            x = x[idx]
        else:
            train = torch.utils.data.Subset(train, idx.tolist())
    if settings.label_noise:
        y, facts["label_noise"] = corrupt_labels(
            y,
            settings.label_noise,
            info.num_classes,
            seed=noise_seed,
            mode=settings.label_noise_mode,
        )
    info = replace(info, train_size=len(y), protocol=facts)
    if isinstance(data, TensorData):
        return TensorData(info, x, y, data.test_x, data.test_y)
    return FolderData(info, _Relabelled(train, y.tolist()), data.test)


def settings_for_model(header: ModelHeader, settings: DataSettings | None = None) -> DataSettings:
    """The data a model is measured on: `settings` where set, else what its file records.

    The model file gives the dataset, the input size and the normalisation.

    Raises:
        CompressError: the model records no dataset and `settings` names none.
    """
    s = settings or DataSettings(name="")
    changes: dict[str, Any] = {}
    if not s.name:
        if not header.dataset:
            raise CompressError(
                "the model file records no dataset; pass --dataset (and --data-dir) to say "
                "which data to use"
            )
        changes["name"] = header.dataset
    if s.name and header.dataset and s.name != header.dataset:
        return s  # another dataset on purpose: its own geometry (`check_fits` compares them)
    if s.image_size is None and header.input_size and header.input_size[0] == header.input_size[1]:
        changes["image_size"] = header.input_size[0]
    if s.mean is None and header.mean is not None and header.std is not None:
        changes["mean"], changes["std"] = list(header.mean), list(header.std)
    return replace(s, **changes)


def load_data_for_model(
    header: ModelHeader,
    settings: DataSettings | None = None,
    *,
    what: str = "model",
    seed: int = 0,
) -> TensorData | FolderData:
    """`load_data` of `settings_for_model`, checked against the model's classes and geometry.

    Raises:
        CompressError: classes or channels differ (one line naming both), or the images have
            another size than the model was trained at while nobody asked for that size.
    """
    s = settings_for_model(header, settings)
    data = load_data(s, seed=seed)
    explicit = settings is not None and settings.image_size is not None
    check_fits(header, data.info, what=what, any_size=explicit)
    return data


def check_fits(
    header: ModelHeader, info: DatasetInfo, *, what: str, any_size: bool = False
) -> None:
    """Raise a one-line `CompressError` when a model cannot be fed this dataset.

    Args:
        header: the model's header.
        info: the dataset.
        what: how to name the model in the message (``model``, ``teacher``).
        any_size: the image size was asked for on purpose (``--image-size``): do not compare it.
    """
    if header.num_classes != info.num_classes:
        raise CompressError(
            f"the {what} has {header.num_classes} classes but {info.name} has {info.num_classes}; "
            f"use a {what} trained on {info.name} (or pass the dataset it was trained on)"
        )
    if header.in_channels != info.in_channels:
        raise CompressError(
            f"the {what} takes {header.in_channels}-channel images but {info.name} has "
            f"{info.in_channels}; use a {what} trained on {info.name}"
        )
    if (
        header.class_names
        and info.class_names
        and list(header.class_names) != list(info.class_names)
    ):
        mine, theirs = list(header.class_names), list(info.class_names)
        if sorted(mine) == sorted(theirs):
            problem = "the same class names in another order"
        else:
            pairs = [(i, a, b) for i, (a, b) in enumerate(zip(mine, theirs)) if a != b]
            i, a, b = pairs[0]
            problem = f"other class names (class {i} is '{a}' in the {what}, '{b}' in the data)"
        raise CompressError(
            f"the {what} and {info.name} have {problem}, so its outputs would be read as the "
            f"wrong classes; use the data it was trained on (its classes: {', '.join(mine[:5])}"
            + (", ..." if len(mine) > 5 else "")
            + ")"
        )
    if header.input_size and tuple(info.input_size) != tuple(header.input_size) and not any_size:
        raise CompressError(
            f"the {what} was trained on {header.input_size[0]}×{header.input_size[1]} images but "
            f"{info.name} gives {info.input_size[0]}×{info.input_size[1]}; use the dataset it was "
            "trained on, or pass --image-size to measure it at another size on purpose"
        )


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
    import torch

    from compress.data.loader import DeviceLoader, FolderLoader
    from compress.distributed import env

    info = data.info
    common = {"mean": info.mean, "std": info.std, "device": device, "channels_last": channels_last}
    dist = env()
    shards = {"world": dist.world_size, "rank": dist.rank}
    if dist.enabled:  # the test split in contiguous shares, every image counted once
        n = len(data.test_y) if isinstance(data, TensorData) else len(data.test)
        mine = torch.arange(n).tensor_split(dist.world_size)[dist.rank]
        if isinstance(data, TensorData):
            data = TensorData(
                info, data.train_x, data.train_y, data.test_x[mine], data.test_y[mine]
            )
        else:
            data = FolderData(info, data.train, torch.utils.data.Subset(data.test, mine.tolist()))
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
            **shards,
            **common,
        )
        test = DeviceLoader(data.test_x, data.test_y, batch_size=settings.eval_batch_size, **common)
        return train, test
    train = FolderLoader(
        data.train,
        batch_size=settings.batch_size,
        shuffle=True,
        workers=settings.loader_workers,
        seed=seed,
        **shards,
        **common,
    )
    test = FolderLoader(
        data.test, batch_size=settings.eval_batch_size, workers=settings.loader_workers, **common
    )
    return train, test


def holdout_loader(
    data: TensorData | FolderData, settings: DataSettings, count: int, *, device: Any = "cpu"
):
    """A loader over a fixed, class-balanced slice of `count` *training* images, unaugmented.

    For measurements that must not touch the test split (R2KD's ``target_drop``). The images
    are normalised as training sees them; they come in a fixed order.
    """
    from compress.data.loader import DeviceLoader, FolderLoader

    info = data.info
    common = {"mean": info.mean, "std": info.std, "device": device}
    if isinstance(data, TensorData):
        idx = class_balanced_subset(data.train_y, count, seed=1)
        x, y = (
            (data.train_x, data.train_y) if idx is None else (data.train_x[idx], data.train_y[idx])
        )
        return DeviceLoader(x, y, batch_size=settings.eval_batch_size, **common)
    import torch

    same = {"image_size": info.input_size[0], "mean": list(info.mean), "std": list(info.std)}
    plain = load_data(
        replace(settings, augment="none", train_subset=None, test_subset=None, **same)
    )
    labels = torch.tensor(plain.train.targets)
    idx = class_balanced_subset(labels, count, seed=1)
    subset = plain.train if idx is None else torch.utils.data.Subset(plain.train, idx.tolist())
    return FolderLoader(
        subset, batch_size=settings.eval_batch_size, workers=settings.loader_workers, **common
    )


def sample_split(settings: DataSettings, split: str, count: int):
    """`count` class-balanced real images of a dataset split as uint8 numpy (N, C, H, W).

    `settings` gives the dataset, its folder, the image size and normalisation (use
    `settings_for_model` to get a model's own). Augmentation is off.

    Returns:
        ``(images, labels, info)``; for ``imagefolder`` the images go through the evaluation
        transform (resize and centre crop); ``info`` carries the normalisation to apply.
    """
    import numpy as np
    import torch

    key = "train_subset" if split == "train" else "test_subset"
    data = load_data(replace(settings, augment="none", **{key: count}))
    if isinstance(data, FolderData):
        from compress.data.loader import read_folder_items

        dataset = data.train if split == "train" else data.test
        images, labels = read_folder_items(dataset)
    else:
        images = (data.train_x if split == "train" else data.test_x).numpy()
        labels = (data.train_y if split == "train" else data.test_y).numpy()
    if isinstance(images, torch.Tensor):
        images = images.numpy()
    return np.asarray(images, dtype=np.uint8), np.asarray(labels, dtype=np.int64), data.info
