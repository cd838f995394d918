from __future__ import annotations

import torch

from compress.data import DataSettings, build_loaders, load_data
from compress.data.augment import random_crop, random_flip
from compress.data.loader import DeviceLoader, Normalizer


def test_random_crop_is_a_shifted_window_of_the_padded_image():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.uint8).view(2, 1, 6, 6)
    g = torch.Generator().manual_seed(0)
    out = random_crop(x, 2, g)
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        windows = [padded[i, :, dy : dy + 6, dx : dx + 6] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)
    assert torch.equal(random_crop(x, 0), x)


def test_random_flip_flips_about_half():
    x = torch.arange(1000 * 4, dtype=torch.float32).view(1000, 1, 1, 4)
    out = random_flip(x, torch.Generator().manual_seed(0))
    flipped = (out[:, 0, 0, 0] == x[:, 0, 0, 3]).sum().item()
    assert 400 < flipped < 600
    same = (out == x).all(dim=(1, 2, 3)) | (out == x.flip(3)).all(dim=(1, 2, 3))
    assert same.all()


def test_normalizer_matches_manual():
    x = torch.randint(0, 256, (3, 2, 4, 4), dtype=torch.uint8)
    n = Normalizer((0.5, 0.25), (0.2, 0.1))
    expected = (x.float() / 255 - torch.tensor([0.5, 0.25]).view(1, 2, 1, 1)) / torch.tensor(
        [0.2, 0.1]
    ).view(1, 2, 1, 1)
    assert torch.allclose(n(x), expected, atol=1e-5)


def test_device_loader_covers_each_sample_once_and_is_reproducible():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 2, 2).contiguous()
    labels = torch.arange(10)
    loader = DeviceLoader(
        images, labels, batch_size=4, mean=(0.0,), std=(1 / 255,), shuffle=True, seed=3
    )
    batches = list(loader)
    assert [len(y) for _, y in batches] == [4, 4, 2]
    seen = torch.cat([y for _, y in batches])
    assert sorted(seen.tolist()) == list(range(10))
    for x, y in batches:  # images stay paired with their labels through the shuffle
        assert torch.equal(x[:, 0, 0, 0].round().long(), y)
    again = torch.cat([y for _, y in loader])
    assert torch.equal(again, seen)
    loader.set_epoch(1)
    assert not torch.equal(torch.cat([y for _, y in loader]), seen)


def test_device_loader_drops_a_lone_last_sample_when_training():
    images = torch.zeros(9, 1, 2, 2, dtype=torch.uint8)
    loader = DeviceLoader(
        images,
        torch.zeros(9, dtype=torch.long),
        batch_size=4,
        mean=(0.0,),
        std=(1.0,),
        shuffle=True,
    )
    assert [len(y) for _, y in loader] == [4, 4]  # a batch of 1 would break BatchNorm
    evaluation = DeviceLoader(
        images, torch.zeros(9, dtype=torch.long), batch_size=4, mean=(0.0,), std=(1.0,)
    )
    assert [len(y) for _, y in evaluation] == [4, 4, 1]


def test_build_loaders_uses_dataset_augmentation_defaults():
    settings = DataSettings(name="digits", batch_size=64)
    data = load_data(settings)
    train, test = build_loaders(data, settings)
    assert train.crop_padding == 1 and train.flip is False
    assert sum(len(y) for _, y in test) == 360
    none = DataSettings(name="digits", augment="none")
    train_plain, _ = build_loaders(data, none)
    assert train_plain.crop_padding == 0 and not train_plain.flip


def test_the_loaders_normalisation_is_the_one_of_the_runtime():
    """compress.runtime.normalise (numpy, the device's and the exporters') and the training
    loader's torch Normalizer compute the same images."""
    import numpy as np
    import torch

    from compress.data.loader import Normalizer
    from compress.runtime.normalise import normalise

    images = np.random.default_rng(0).integers(0, 256, (4, 3, 5, 5), dtype=np.uint8)
    mean, std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
    ours = Normalizer(mean, std)(torch.from_numpy(images)).numpy()
    assert np.allclose(ours, normalise(images, mean, std), atol=1e-5)


def test_extra_views_draw_their_scalars_from_the_host_generator():
    """λ and the box come from the host generator (no device→host copy on a GPU), the partners
    from the device one; with one CPU generator for both, the stream is the one it always was."""
    import torch

    from compress.data import augment

    x = torch.randn(8, 3, 16, 16)
    same = augment.cutmix(x, 1.0, torch.Generator().manual_seed(1))
    also = augment.cutmix(x, 1.0, torch.Generator().manual_seed(1), None)
    assert torch.equal(same, also)
    boxes = set()
    for seed in range(4):  # the host seed moves the box; the device seed stays fixed
        out = augment.cutout(
            x, 6, torch.Generator().manual_seed(0), torch.Generator().manual_seed(seed)
        )
        boxes.add(tuple((out == 0).all(dim=(0, 1)).nonzero()[0].tolist()))
    assert len(boxes) > 1
