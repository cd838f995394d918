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
        CompressError: `limit` below 1 or `image_size` outside 1–1024.
    """
    from compress.errors import CompressError

    if limit is not None and limit < 1:
        raise CompressError(f"--limit must be at least 1 image, got {limit}")
    if image_size is not None and not 1 <= image_size <= 1024:
        raise CompressError(f"--image-size must be between 1 and 1024, got {image_size}")
    import torch
    from torchvision.transforms import v2

    from compress.data.base import class_balanced_subset
    from compress.data.imagefolder import safe_image_folder, transforms_for

    root = Path(directory).expanduser()
    split = root / "train" if (root / "train").is_dir() else root
    transform = (
        transforms_for(image_size, train=False) if image_size else v2.Compose([v2.PILToTensor()])
    )
    try:
        dataset = safe_image_folder(str(split), transform)
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
