"""Shared fixtures: small real-format datasets built in temp dirs, a trained digits model."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip hardware tests with a reason where the hardware is absent."""
    import torch

    has_cuda = torch.cuda.is_available()
    try:
        import tensorrt  # noqa: F401

        has_trt = has_cuda
    except ImportError:
        has_trt = False
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU (none visible)"))
        if "trt" in item.keywords and not has_trt:
            item.add_marker(pytest.mark.skip(reason="needs TensorRT and a CUDA GPU"))
        if "slow" in item.keywords and not config.getoption("-m"):
            item.add_marker(pytest.mark.skip(reason="slow test: run with -m slow"))


def write_cifar(root: Path, *, classes: int = 10, per_batch: int = 12, seed: int = 0) -> Path:
    """Write a tiny CIFAR-10/100 python-format folder (real pickle layout) under `root`."""
    rng = np.random.default_rng(seed)
    if classes == 10:
        folder = root / "cifar-10-batches-py"
        train_files = [f"data_batch_{i}" for i in range(1, 6)]
        test_files = ["test_batch"]
        label_key = b"labels"
        meta = ("batches.meta", {b"label_names": [f"class{i}".encode() for i in range(10)]})
    else:
        folder = root / "cifar-100-python"
        train_files, test_files = ["train"], ["test"]
        label_key = b"fine_labels"
        meta = ("meta", {b"fine_label_names": [f"fine{i}".encode() for i in range(100)]})
    folder.mkdir(parents=True)
    for name in train_files + test_files:
        labels = [int(v) for v in rng.integers(0, classes, per_batch)]
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        data[:, 0] = labels  # first red pixel encodes the label, so tests can check pairing
        with open(folder / name, "wb") as fh:
            pickle.dump(
                {b"batch_label": name.encode(), label_key: labels, b"data": data}, fh, protocol=2
            )
    with open(folder / meta[0], "wb") as fh:
        pickle.dump(meta[1], fh, protocol=2)
    return folder


def write_imagefolder(
    root: Path, *, classes: int = 3, train_per_class: int = 4, val_per_class: int = 2
) -> Path:
    """Write a train/ + val/ class-folder tree of small PNG and JPEG images of varied sizes."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for c in range(classes):
            d = root / split / f"class_{c}"
            d.mkdir(parents=True)
            for i in range(count):
                h, w = int(rng.integers(20, 48)), int(rng.integers(20, 48))
                pixels = np.full((h, w, 3), 40 + 80 * c, dtype=np.uint8)
                ext = "png" if i % 2 == 0 else "jpg"
                Image.fromarray(pixels).save(d / f"img_{i}.{ext}")
    return root


def write_digits_folder(root: Path, *, size: int, train_per_class: int, val_per_class: int) -> Path:
    """scikit-learn's real handwritten digits as a 10-class ImageFolder of RGB PNGs at `size` px."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    seen: dict[int, int] = {}
    for image, label in zip(digits.images, digits.target):
        k = seen.get(int(label), 0)
        seen[int(label)] = k + 1
        if k >= train_per_class + val_per_class:
            continue
        split = "train" if k < train_per_class else "val"
        gray = (image / 16.0 * 255).astype(np.uint8)
        rgb = np.stack([gray, gray // 2 + 60, 255 - gray], axis=-1)
        folder = root / split / f"digit_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).resize((size, size), Image.BILINEAR).save(folder / f"{k}.png")
    return root


@pytest.fixture
def cifar10_dir(tmp_path: Path) -> Path:
    write_cifar(tmp_path, classes=10)
    return tmp_path


@pytest.fixture
def cifar100_dir(tmp_path: Path) -> Path:
    write_cifar(tmp_path, classes=100, per_batch=30)
    return tmp_path


@pytest.fixture
def imagefolder_dir(tmp_path: Path) -> Path:
    return write_imagefolder(tmp_path / "tree")


@pytest.fixture(scope="session")
def digits_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A resnet8 trained 2 epochs on digits (≈95 %), shared by the tests that need a model file."""
    from compress.config import build
    from compress.train import TrainConfig, train

    out = tmp_path_factory.mktemp("digits_model") / "run"
    config = build(TrainConfig, {**FAST_DIGITS, "output": str(out)})
    train(config, log=lambda _m: None)
    return out / "model.safetensors"


#: A 2-epoch digits recipe that reaches > 90 % test top-1 (about 2 s on 2 cores).
FAST_DIGITS = {
    "model": "resnet8",
    "epochs": 2,
    "data": {"name": "digits", "batch_size": 32},
    "optim": {"name": "sgd", "lr": 0.1},
    "schedule": {"name": "cosine"},
    "progress": False,
}


def reloads_identically(path: Path, x, expected, *, params: int | None = None) -> bool:
    """Whether a fresh Python process loads `path` and reproduces `expected` = model(x) exactly
    (and, if given, has `params` parameters)."""
    import subprocess
    import sys
    import tempfile

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        torch.save(x, f"{tmp}/x.pt")
        torch.save(expected.detach(), f"{tmp}/y.pt")
        code = (
            "import sys, torch, compress; m = compress.load_model(sys.argv[1]);"
            "x = torch.load(sys.argv[2], weights_only=True); y = torch.load(sys.argv[3], weights_only=True);"
            "n = sum(p.numel() for p in m.parameters()); want = int(sys.argv[4]);"
            "sys.exit(0 if torch.equal(m(x), y) and (want < 0 or n == want) else 1)"
        )
        args = [
            sys.executable,
            "-c",
            code,
            str(path),
            f"{tmp}/x.pt",
            f"{tmp}/y.pt",
            str(-1 if params is None else params),
        ]
        return subprocess.run(args).returncode == 0


def _default_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interruptible(args: list[str], **kwargs):
    """`subprocess.Popen(args)` whose process takes SIGINT as a Ctrl-C, however the tests run.

    A shell starts a background job (`bash .ci/run &`, `nohup make test &`) with SIGINT ignored,
    its children inherit that, and Python installs its KeyboardInterrupt handler only where
    SIGINT is not ignored: a SIGINT sent to such a `compress` process does nothing, and a test
    waiting for it to stop runs into its deadline. The child restores the default action
    before it starts Python, as a process started from a terminal has it.
    """
    import subprocess

    return subprocess.Popen(args, preexec_fn=_default_sigint, **kwargs)
