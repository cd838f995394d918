"""scikit-learn's bundled handwritten digits: 1,797 real 8×8 images, zero set-up."""

from __future__ import annotations

from compress.data.base import DATASETS, DatasetInfo, DataSettings, TensorData


@DATASETS.register(
    "digits",
    summary="1,797 8×8 handwritten digits bundled with scikit-learn",
    size="small",
    reads_data_dir=False,
)
def load_digits(settings: DataSettings) -> TensorData:
    """Load the digits with a fixed stratified 80/20 split (1,437 train / 360 test)."""
    import numpy as np
    import torch
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # N,1,8,8
    labels = bunch.target.astype(np.int64)
    idx_train, idx_test = train_test_split(
        np.arange(len(labels)), test_size=0.2, random_state=0, stratify=labels
    )
    train_x = torch.from_numpy(images[idx_train])
    mean = float(train_x.float().mean() / 255)
    std = float(train_x.float().std() / 255)
    info = DatasetInfo(
        name="digits",
        num_classes=10,
        in_channels=1,
        input_size=(8, 8),
        mean=(mean,),
        std=(std,),
        class_names=[str(i) for i in range(10)],
        crop_padding=1,
        flip=False,  # a flipped digit is another symbol
    )
    return TensorData(
        info,
        train_x,
        torch.from_numpy(labels[idx_train]),
        torch.from_numpy(images[idx_test]),
        torch.from_numpy(labels[idx_test]),
    )
