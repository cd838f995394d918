"""Any ``train/`` + ``val/`` class-folder tree (TinyImageNet, ImageNet, CUB-200, Cars, Aircraft)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from compress.data.base import DATASETS, DatasetInfo, DataSettings, FolderData
from compress.errors import CompressError, DataNotFoundError


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageReadError(CompressError):
    """An image file of the dataset cannot be decoded (corrupt, truncated, or a decompression bomb)."""


#: The most elongated image accepted (long side / short side): resizing the short side of a
#: 4,000,000×1 PNG to 32 px would ask for 128 M pixels.
MAX_ASPECT = 64
#: Extensions torchvision's ImageFolder reads.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def to_rgb(image):
    """An RGB image, 16-bit and 32-bit grayscale scaled to 8 bits (not clipped to white)."""
    import numpy as np
    from PIL import Image

    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() <= 65535 else values.max()
        if image.mode == "I" and values.max() <= 255:
            top = 255.0  # an 8-bit image stored as 32-bit integers
        image = Image.fromarray(np.clip(np.rint(values / top * 255), 0, 255).astype(np.uint8))
    elif image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        top = 1.0 if values.max() <= 1.0 else 255.0
        image = Image.fromarray(np.clip(np.rint(values / top * 255), 0, 255).astype(np.uint8))
    return image.convert("RGB")


def read_image(path: str):
    """Open an image as RGB, turning every decoding problem into a one-line `ImageReadError`.

    Images past Pillow's pixel limit (``Image.MAX_IMAGE_PIXELS``, about 89 M) are refused as
    decompression bombs instead of being decoded, and so are images more elongated than
    `MAX_ASPECT` : 1. 16-bit grayscale is scaled to 8 bits.
    """
    import stat
    import warnings

    from PIL import Image

    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ImageReadError(f"cannot read image '{path}' ({exc.strerror})") from None
    if not stat.S_ISREG(mode):  # a FIFO or device would block the reader forever
        raise ImageReadError(f"'{path}' is not a regular file; remove it from the dataset")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open(path, "rb") as fh:
                image = Image.open(fh)
                w, h = image.size
                if min(w, h) < 1 or max(w, h) > MAX_ASPECT * min(w, h):
                    raise ImageReadError(
                        f"image '{path}' is {w}×{h} pixels, more elongated than {MAX_ASPECT}:1; "
                        "remove it from the dataset (a classifier's images are roughly square)"
                    )
                return to_rgb(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageReadError(
            f"image '{path}' has more pixels than Pillow's safety limit (a decompression bomb?); "
            "remove it from the dataset"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ImageReadError(
            f"cannot read image '{path}' ({first}); remove or replace it"
        ) from None


def image_files(directory: str, *, warn=None) -> list[str]:
    """The image files under `directory` (sorted), found without following linked folders.

    A symbolic link to a folder inside a class folder can lead back up the tree (``a/loop ->
    ..``) or into another class, so linked folders are skipped; linked files are kept when they
    point at a regular file. Anything that is not a regular file (a FIFO, a socket, a device) is
    skipped: reading it would block or never end. `warn` receives one line per skipped entry.
    """
    import stat

    found = []
    for root, dirs, files in os.walk(directory, followlinks=False):
        for d in list(dirs):
            if os.path.islink(os.path.join(root, d)):
                dirs.remove(d)
                if warn:
                    warn(f"skipped the linked folder '{os.path.join(root, d)}'")
        for name in files:
            path = os.path.join(root, name)
            if not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            try:
                regular = stat.S_ISREG(os.stat(path).st_mode)
            except OSError:
                regular = False
            if not regular:
                if warn:
                    warn(f"skipped '{path}': not a regular file")
                continue
            found.append(path)
    return sorted(found)


def safe_image_folder(root: str, transform: Any, *, warn=None) -> Any:
    """Torchvision's `ImageFolder` over `root`, its files found by `image_files`.

    Class folders may themselves be links (a common way to assemble a dataset); inside them,
    nothing is followed out of the tree.
    """
    from torchvision.datasets import ImageFolder

    class SafeImageFolder(ImageFolder):
        @staticmethod
        def make_dataset(directory, class_to_idx, extensions=None, is_valid_file=None,
                         allow_empty=False):  # fmt: skip
            samples = []
            for name, index in sorted(class_to_idx.items(), key=lambda kv: kv[1]):
                files = image_files(os.path.join(directory, name), warn=warn)
                samples += [(f, index) for f in files]
            if not samples:
                raise FileNotFoundError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) found")
            return samples

    return SafeImageFolder(root, transform=transform, loader=read_image)


def transforms_for(image_size: int, *, train: bool, augment: bool = True):
    """uint8 CHW tensors: random-resized crop (≥128 px) or pad-and-crop (small) for training."""
    from torchvision.transforms import v2

    if train and augment:
        if image_size >= 128:
            ops = [v2.PILToTensor(), v2.RandomResizedCrop(image_size, antialias=True)]
        else:
            ops = [
                v2.PILToTensor(),
                v2.Resize(image_size, antialias=True),
                v2.CenterCrop(image_size),
                v2.RandomCrop(image_size, padding=max(1, image_size // 8)),
            ]
        ops.append(v2.RandomHorizontalFlip())
    else:
        resize = image_size if image_size < 128 else round(image_size / 0.875)
        ops = [v2.PILToTensor(), v2.Resize(resize, antialias=True), v2.CenterCrop(image_size)]
    return v2.Compose(ops)


@DATASETS.register(
    "imagefolder",
    summary="a train/ + val/ class-folder tree under --data-dir (ImageNet layout)",
    size="large",
)
def load_imagefolder(settings: DataSettings) -> FolderData:
    """Read ``<data_dir>/train/<class>/*`` and ``<data_dir>/val/<class>/*``."""
    if not settings.data_dir:
        raise DataNotFoundError(
            "imagefolder needs --data-dir pointing at a folder with train/ and val/ class folders"
        )
    root = Path(settings.data_dir).expanduser()
    missing = [s for s in ("train", "val") if not (root / s).is_dir()]
    if missing:
        raise DataNotFoundError(
            f"'{root}' has no {' or '.join(m + '/' for m in missing)} folder; imagefolder expects "
            "<data-dir>/train/<class>/<image> and <data-dir>/val/<class>/<image>"
        )
    size = settings.image_size or 224
    augment = settings.augment != "none"
    try:
        train = safe_image_folder(
            str(root / "train"), transforms_for(size, train=True, augment=augment), warn=_warn
        )
        test = safe_image_folder(str(root / "val"), transforms_for(size, train=False), warn=_warn)
    except (FileNotFoundError, RuntimeError) as exc:
        raise DataNotFoundError(f"cannot read image folders under '{root}': {exc}") from None
    if train.classes != test.classes:
        only = sorted(set(train.classes) ^ set(test.classes))
        raise DataNotFoundError(
            f"train/ and val/ under '{root}' have different class folders (e.g. {only[:3]}); "
            "both must hold the same classes"
        )
    info = DatasetInfo(
        name="imagefolder",
        num_classes=len(train.classes),
        in_channels=3,
        input_size=(size, size),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        class_names=list(train.classes),
        train_size=len(train),
        test_size=len(test),
        flip=True,
    )
    return FolderData(info, train, test)
