"""Per-channel mean and std of an image folder (``compress datasets stats DIR``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compress.errors import DataNotFoundError


def folder_stats(
    directory: str | Path, *, image_size: int | None = None, limit: int | None = None
) -> dict[str, Any]:
    """Mean and std (0–1 scale) of every channel over the images of ``DIR/train`` (or ``DIR``).

    Pixels are counted exactly (float64 sums), each image at its own size unless `image_size`
    resizes it as the evaluation transform would.

    Returns:
        ``{"mean": [...], "std": [...], "images": N, "channels": C}``.

    Raises:
        DataNotFoundError: no class folders of images under the directory.
    """
    import torch
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    from compress.data.base import class_balanced_subset
    from compress.data.imagefolder import read_image, transforms_for

    root = Path(directory).expanduser()
    split = root / "train" if (root / "train").is_dir() else root
    transform = (
        transforms_for(image_size, train=False) if image_size else v2.Compose([v2.PILToTensor()])
    )
    try:
        dataset = ImageFolder(str(split), transform=transform, loader=read_image)
    except (FileNotFoundError, RuntimeError) as exc:
        raise DataNotFoundError(f"no class folders of images under '{split}': {exc}") from None
    indices = class_balanced_subset(torch.tensor(dataset.targets), limit)
    order = range(len(dataset)) if indices is None else indices.tolist()
    total = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    pixels = 0
    for i in order:
        image = dataset[i][0].to(torch.float64) / 255.0
        total += image.sum(dim=(1, 2))
        squares += (image * image).sum(dim=(1, 2))
        pixels += image.shape[1] * image.shape[2]
    mean = total / pixels
    std = (squares / pixels - mean * mean).clamp_min(0).sqrt()
    return {
        "mean": mean.tolist(),
        "std": std.tolist(),
        "images": len(order),
        "channels": 3,
    }
