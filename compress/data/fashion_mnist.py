"""Fashion-MNIST from its IDX files (60,000 train / 10,000 test, 28×28 grayscale)."""

from __future__ import annotations

import gzip
import struct
import zlib
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
#: The largest IDX file read (the real training images are 47 MB).
MAX_IDX_BYTES = 256 << 20
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
    try:
        with opener(path, "rb") as fh:
            data = fh.read(MAX_IDX_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:  # not gzip, truncated gzip, unreadable
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataNotFoundError(f"'{path}' cannot be read ({reason}); re-download it") from None
    if len(data) > MAX_IDX_BYTES:
        raise DataNotFoundError(f"'{path}' is larger than any Fashion-MNIST file; re-download it")
    if len(data) < 8:
        raise DataNotFoundError(f"'{path}' is too short to be an IDX file; re-download it")
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise DataNotFoundError(f"'{path}' is not a uint8 IDX file; re-download it")
    if not 1 <= ndim <= 4 or len(data) < 4 + 4 * ndim:
        raise DataNotFoundError(f"'{path}' has a corrupt IDX header; re-download it")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataNotFoundError(
            f"'{path}' is truncated ({body.size} of {int(np.prod(dims))} bytes)"
        )
    return body.reshape(dims)


def check_arrays(arrays: dict, files: dict[str, Path]) -> None:
    """The four IDX files must agree: images N×28×28, labels N, same N per split, labels < 10."""
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_x"], arrays[f"{split}_y"]
        img_file, lab_file = files[f"{split}_x"], files[f"{split}_y"]
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DataNotFoundError(
                f"'{img_file}' holds images of shape {images.shape[1:]}, not 28×28; it is not a "
                "Fashion-MNIST image file"
            )
        if labels.ndim != 1:
            raise DataNotFoundError(
                f"'{lab_file}' is not a label file (it has {labels.ndim} dimensions)"
            )
        if len(labels) != len(images):
            raise DataNotFoundError(
                f"'{img_file}' holds {len(images):,} images but '{lab_file}' {len(labels):,} labels; "
                "one of them is truncated or from another dataset: re-download both"
            )
        if len(labels) and int(labels.max()) >= len(CLASSES):
            raise DataNotFoundError(
                f"'{lab_file}' holds label {int(labels.max())}; Fashion-MNIST has classes 0–9"
            )


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
    arrays = {k: read_idx(p) for k, p in files.items()}
    check_arrays(arrays, files)
    arrays = {k: torch.from_numpy(v.copy()) for k, v in arrays.items()}
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
