"""Any ``train/`` + ``val/`` class-folder tree (TinyImageNet, ImageNet, CUB-200, Cars, Aircraft)."""

from __future__ import annotations

from pathlib import Path

from compress.data.base import DATASETS, DatasetInfo, DataSettings, FolderData
from compress.errors import CompressError, DataNotFoundError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageReadError(CompressError):
    """An image file of the dataset cannot be decoded (corrupt, truncated, or a decompression bomb)."""


def read_image(path: str):
    """Open an image as RGB, turning every decoding problem into a one-line `ImageReadError`.

    Images past Pillow's pixel limit (``Image.MAX_IMAGE_PIXELS``, about 89 M) are refused as
    decompression bombs instead of being decoded.
    """
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open(path, "rb") as fh:
                image = Image.open(fh)
                return image.convert("RGB")
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
    from torchvision.datasets import ImageFolder

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
        train = ImageFolder(
            str(root / "train"),
            transform=transforms_for(size, train=True, augment=augment),
            loader=read_image,
        )
        test = ImageFolder(
            str(root / "val"), transform=transforms_for(size, train=False), loader=read_image
        )
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
