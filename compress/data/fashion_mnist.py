"""Fashion-MNIST from its IDX files (60,000 train / 10,000 test, 28×28 grayscale)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

from compress.data.base import DATASETS, DatasetInfo, DataSettings, TensorData, default_data_dirs
from compress.errors import DataNotFoundError

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def read_idx(path: Path):
    """Read an IDX file (optionally gzipped) into a numpy uint8 array."""
    import numpy as np

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 8:
        raise DataNotFoundError(f"'{path}' is too short to be an IDX file; re-download it")
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise DataNotFoundError(f"'{path}' is not a uint8 IDX file; re-download it")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataNotFoundError(
            f"'{path}' is truncated ({body.size} of {int(np.prod(dims))} bytes)"
        )
    return body.reshape(dims)


def _find_in(directory: Path) -> dict[str, Path] | None:
    found = {}
    for key, stem in FILES.items():
        for candidate in (directory / stem, directory / f"{stem}.gz"):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            return None
    return found


def candidate_dirs(data_dir: str | None) -> list[Path]:
    """Where Fashion-MNIST is looked for, in order: --data-dir, the Debian package, ./data."""
    dirs = []
    if data_dir:
        base = Path(data_dir).expanduser()
        dirs += [base, base / "fashion-mnist", base / "FashionMNIST" / "raw"]
    dirs.append(SYSTEM_DIR)
    if not data_dir:
        for base in default_data_dirs(None):
            dirs += [base / "fashion-mnist", base / "FashionMNIST" / "raw"]
    return dirs


@DATASETS.register(
    "fashion-mnist",
    summary="70,000 28×28 clothing images (IDX files; Debian dataset-fashion-mnist)",
    size="small",
)
def load_fashion_mnist(settings: DataSettings) -> TensorData:
    """Find and load the Fashion-MNIST IDX files (see `candidate_dirs` for the search order)."""
    import torch

    dirs = candidate_dirs(settings.data_dir)
    files = next((f for f in map(_find_in, dirs) if f), None)
    if files is None and settings.download:
        import torchvision

        root = default_data_dirs(settings.data_dir)[0]
        torchvision.datasets.FashionMNIST(str(root), train=True, download=True)
        torchvision.datasets.FashionMNIST(str(root), train=False, download=True)
        files = _find_in(root / "FashionMNIST" / "raw")
    if files is None:
        looked = ", ".join(str(d) for d in dirs)
        raise DataNotFoundError(
            f"Fashion-MNIST not found (looked in {looked}); install it with "
            "'apt-get install dataset-fashion-mnist', put the four IDX files in --data-dir, "
            "or pass --download"
        )
    arrays = {k: torch.from_numpy(read_idx(p).copy()) for k, p in files.items()}
    info = DatasetInfo(
        name="fashion-mnist",
        num_classes=10,
        in_channels=1,
        input_size=(28, 28),
        mean=(0.2860,),
        std=(0.3530,),
        class_names=CLASSES,
        crop_padding=2,
        flip=True,
    )
    return TensorData(
        info,
        arrays["train_x"][:, None],
        arrays["train_y"].long(),
        arrays["test_x"][:, None],
        arrays["test_y"].long(),
    )
