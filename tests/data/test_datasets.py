from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from compress.data import DATASETS, DataSettings, build_loaders, list_datasets, load_data
from compress.data.fashion_mnist import SYSTEM_DIR, read_idx
from compress.errors import DataNotFoundError, UnknownNameError

HAS_FASHION = (SYSTEM_DIR / "train-images-idx3-ubyte.gz").is_file()


def test_digits_real_data_and_fixed_split():
    data = load_data(DataSettings(name="digits"))
    assert data.train_x.shape == (1437, 1, 8, 8) and data.train_x.dtype == torch.uint8
    assert data.test_x.shape == (360, 1, 8, 8)
    assert set(data.train_y.tolist()) == set(range(10))
    assert data.info.num_classes == 10 and data.info.in_channels == 1
    again = load_data(DataSettings(name="digits"))
    assert torch.equal(again.test_y, data.test_y)


@pytest.mark.skipif(not HAS_FASHION, reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_mnist_real_files():
    data = load_data(DataSettings(name="fashion-mnist"))
    assert data.train_x.shape == (60000, 1, 28, 28)
    assert data.test_x.shape == (10000, 1, 28, 28)
    assert torch.bincount(data.train_y).tolist() == [6000] * 10
    assert torch.bincount(data.test_y).tolist() == [1000] * 10
    assert data.info.class_names[9] == "Ankle boot"


def test_fashion_mnist_from_data_dir_in_torchvision_layout(tmp_path, monkeypatch):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for stem, n, is_img in [
        ("train-images-idx3-ubyte", 20, True),
        ("train-labels-idx1-ubyte", 20, False),
        ("t10k-images-idx3-ubyte", 10, True),
        ("t10k-labels-idx1-ubyte", 10, False),
    ]:
        if is_img:
            header = np.array([0x00000803, n, 28, 28], dtype=">u4").tobytes()
            body = rng.integers(0, 256, n * 28 * 28, dtype=np.uint8).tobytes()
        else:
            header = np.array([0x00000801, n], dtype=">u4").tobytes()
            body = (np.arange(n) % 10).astype(np.uint8).tobytes()
        (raw / stem).write_bytes(header + body)
    data = load_data(DataSettings(name="fashion-mnist", data_dir=str(tmp_path)))
    assert data.train_x.shape == (20, 1, 28, 28) and data.test_y.tolist() == list(range(10))
    (raw / "t10k-labels-idx1-ubyte").write_bytes(
        np.array([0x00000801, 10], dtype=">u4").tobytes() + b"\x01"
    )
    with pytest.raises(DataNotFoundError, match="truncated"):
        read_idx(raw / "t10k-labels-idx1-ubyte")


def test_missing_dataset_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataNotFoundError, match=r"looked in .*--download"):
        load_data(DataSettings(name="cifar100", data_dir=str(tmp_path / "nope")))
    monkeypatch.setattr("compress.data.fashion_mnist.SYSTEM_DIR", tmp_path / "absent")
    with pytest.raises(DataNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_data(DataSettings(name="fashion-mnist", data_dir=str(tmp_path / "nope")))
    with pytest.raises(UnknownNameError, match="Did you mean 'cifar10'"):
        load_data(DataSettings(name="cifar11"))


def test_cifar10_pickles(cifar10_dir):
    data = load_data(DataSettings(name="cifar10", data_dir=str(cifar10_dir)))
    assert data.train_x.shape == (60, 3, 32, 32) and data.test_x.shape == (12, 3, 32, 32)
    # the generator wrote each image's label into its first red pixel
    assert torch.equal(data.train_x[:, 0, 0, 0].long(), data.train_y)
    assert data.info.class_names[3] == "class3"


def test_cifar100_pickles(cifar100_dir):
    data = load_data(DataSettings(name="cifar100", data_dir=str(cifar100_dir)))
    assert data.info.num_classes == 100
    assert data.train_x.shape == (30, 3, 32, 32)
    assert torch.equal(data.test_x[:, 0, 0, 0].long(), data.test_y)


def test_cifar_loader_refuses_code_in_pickles(cifar10_dir, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(cifar10_dir / "cifar-10-batches-py" / "test_batch", "wb") as fh:
        pickle.dump({b"data": Evil(), b"labels": [0]}, fh)
    with pytest.raises(DataNotFoundError, match="not a valid CIFAR batch"):
        load_data(DataSettings(name="cifar10", data_dir=str(cifar10_dir)))
    assert not marker.exists()


def test_imagefolder_tree(imagefolder_dir):
    settings = DataSettings(
        name="imagefolder", data_dir=str(imagefolder_dir), image_size=32, batch_size=4, workers=0
    )
    data = load_data(settings)
    assert data.info.num_classes == 3 and data.info.class_names == ["class_0", "class_1", "class_2"]
    assert data.info.train_size == 12 and data.info.test_size == 6
    train, test = build_loaders(data, settings)
    xs, ys = zip(*test)
    x, y = torch.cat(xs), torch.cat(ys)
    assert x.shape == (6, 3, 32, 32) and x.dtype == torch.float32
    assert y.tolist() == [0, 0, 1, 1, 2, 2]
    # each class folder holds flat images of one grey level: the normalised means must differ
    means = [float(x[y == c].mean()) for c in range(3)]
    assert means[0] < means[1] < means[2]
    assert sum(len(b[1]) for b in train) == 12


def test_imagefolder_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match="--data-dir"):
        load_data(DataSettings(name="imagefolder"))
    (tmp_path / "train").mkdir()
    with pytest.raises(DataNotFoundError, match="no val/ folder"):
        load_data(DataSettings(name="imagefolder", data_dir=str(tmp_path)))


def test_subsets_are_class_balanced_and_fixed():
    data = load_data(DataSettings(name="digits", train_subset=100, test_subset=50))
    assert len(data.train_y) == 100 and len(data.test_y) == 50
    counts = torch.bincount(data.train_y, minlength=10)
    assert counts.min() >= 9 and counts.max() <= 11
    again = load_data(DataSettings(name="digits", train_subset=100, test_subset=50))
    assert torch.equal(again.train_x, data.train_x)


def test_every_registered_dataset_is_tested():
    tested = {"digits", "fashion-mnist", "cifar10", "cifar100", "imagefolder"}
    assert set(list_datasets()) == tested == set(DATASETS.names())
