"""CIFAR-10 / CIFAR-100 from torchvision's python-format folders.

The batches are Python pickles of dicts of numpy arrays (the dataset's official format). They
are read with a restricted unpickler that can only rebuild numpy arrays, so a tampered file
cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from compress.data.base import DATASETS, DatasetInfo, DataSettings, TensorData, default_data_dirs
from compress.errors import DataNotFoundError

_SPECS = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "label_key": "labels",
        "meta": ("batches.meta", "label_names"),
        "classes": 10,
        "mean": (0.4914, 0.4822, 0.4465),
        "std": (0.2470, 0.2435, 0.2616),
        "tv": "CIFAR10",
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "label_key": "fine_labels",
        "meta": ("meta", "fine_label_names"),
        "classes": 100,
        "mean": (0.5071, 0.4865, 0.4409),
        "std": (0.2673, 0.2564, 0.2762),
        "tv": "CIFAR100",
    },
}

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset file")


def read_batch(path: Path) -> dict[str, Any]:
    """Read one CIFAR python batch with the numpy-only unpickler; keys come back as str."""
    try:
        with open(path, "rb") as fh:
            raw = _NumpyOnlyUnpickler(fh, encoding="latin1").load()
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
    ) as exc:
        raise DataNotFoundError(
            f"'{path}' is not a valid CIFAR batch file ({exc}); re-download it"
        ) from None
    if not isinstance(raw, dict):
        raise DataNotFoundError(f"'{path}' is not a valid CIFAR batch file; re-download it")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


def batch_arrays(batch: dict[str, Any], path: Path, spec: dict[str, Any]) -> tuple[Any, Any]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of one batch, checked.

    Raises:
        DataNotFoundError: a key is missing, the data is not N×3072 bytes, labels are not
            integers in range, or their count differs from the images'.
    """
    import numpy as np

    key = spec["label_key"]
    bad = f"'{path}' is not a valid CIFAR batch file"
    if "data" not in batch or key not in batch:
        missing = [k for k in ("data", key) if k not in batch]
        raise DataNotFoundError(f"{bad} (no '{missing[0]}' entry); re-download it")
    data = batch["data"]
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != 3072
    ):
        shape = getattr(data, "shape", None)
        dtype = getattr(data, "dtype", type(data).__name__)
        raise DataNotFoundError(
            f"{bad} ('data' is {dtype} of shape {shape}, not uint8 N×3072); re-download it"
        )
    raw = batch[key]
    if not isinstance(raw, (list, np.ndarray)) or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in raw
    ):
        raise DataNotFoundError(f"{bad} ('{key}' must be a list of integers); re-download it")
    labels = np.asarray(raw, dtype=np.int64)
    if len(labels) != len(data):
        raise DataNotFoundError(
            f"{bad} ({len(data)} images but {len(labels)} labels); re-download it"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= spec["classes"]):
        raise DataNotFoundError(f"{bad} (labels outside 0–{spec['classes'] - 1}); re-download it")
    return data.reshape(-1, 3, 32, 32), labels


def _find(name: str, data_dir: str | None) -> tuple[Path | None, list[Path]]:
    spec = _SPECS[name]
    looked = []
    for base in default_data_dirs(data_dir):
        for d in (base / spec["folder"], base):
            looked.append(d)
            if all((d / f).is_file() for f in spec["train"] + spec["test"]):
                return d, looked
    return None, looked


def _load(name: str, settings: DataSettings) -> TensorData:
    import numpy as np
    import torch

    spec = _SPECS[name]
    folder, looked = _find(name, settings.data_dir)
    if folder is None and settings.download:
        import torchvision

        root = default_data_dirs(settings.data_dir)[0]
        getattr(torchvision.datasets, spec["tv"])(str(root), train=True, download=True)
        folder, looked = _find(name, str(root))
    if folder is None:
        raise DataNotFoundError(
            f"{name} not found (looked in {', '.join(map(str, looked))}); put torchvision's "
            f"'{spec['folder']}' folder under --data-dir (default ./data) or pass --download"
        )

    def split(files: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for f in files:
            images, labels = batch_arrays(read_batch(folder / f), folder / f, spec)
            xs.append(images)
            ys.append(labels)
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))

    train_x, train_y = split(spec["train"])
    test_x, test_y = split(spec["test"])
    class_names = None
    meta_file, meta_key = spec["meta"]
    if (folder / meta_file).is_file():
        names = read_batch(folder / meta_file).get(meta_key)
        if names is not None:
            class_names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    info = DatasetInfo(
        name=name,
        num_classes=spec["classes"],
        in_channels=3,
        input_size=(32, 32),
        mean=spec["mean"],
        std=spec["std"],
        class_names=class_names,
        crop_padding=4,
        flip=True,
    )
    return TensorData(info, train_x, train_y, test_x, test_y)


@DATASETS.register(
    "cifar10", summary="CIFAR-10, torchvision's python-format folder under --data-dir", size="small"
)
def load_cifar10(settings: DataSettings) -> TensorData:
    """Load CIFAR-10 (50,000 / 10,000 32×32 colour images, 10 classes)."""
    return _load("cifar10", settings)


@DATASETS.register(
    "cifar100",
    summary="CIFAR-100, torchvision's python-format folder under --data-dir",
    size="small",
)
def load_cifar100(settings: DataSettings) -> TensorData:
    """Load CIFAR-100 (50,000 / 10,000 32×32 colour images, 100 fine classes)."""
    return _load("cifar100", settings)
