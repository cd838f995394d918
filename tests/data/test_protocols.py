"""Label noise and class imbalance on the training split, seeded, the test split untouched."""

from __future__ import annotations

import pytest
import torch

from compress.config import build
from compress.data import DataSettings, load_data
from compress.data.protocols import ImbalanceSettings, class_counts, corrupt_labels


def test_noise_rate_is_exact_and_never_keeps_the_true_class_in_other_mode():
    labels = torch.arange(10_000) % 10
    noisy, facts = corrupt_labels(labels, 0.4, 10, seed=3, mode="other")
    changed = noisy != labels
    assert int(changed.sum()) == 4000 and facts["realised_rate"] == 0.4
    picked_again, _ = corrupt_labels(labels, 0.4, 10, seed=3)
    assert torch.equal(noisy, picked_again)  # same seed, same corruption
    other, _ = corrupt_labels(labels, 0.4, 10, seed=4)
    assert not torch.equal(noisy, other)
    assert noisy.min() >= 0 and noisy.max() <= 9
    _, facts = corrupt_labels(labels, 0.4, 10, seed=3, mode="uniform")
    assert 0.33 < facts["realised_rate"] < 0.39  # σ·(C−1)/C = 0.36 expected


def test_noise_touches_only_the_training_split():
    clean = load_data(DataSettings(name="digits"))
    noisy = load_data(DataSettings(name="digits", label_noise=0.2), seed=7)
    assert torch.equal(noisy.test_y, clean.test_y) and torch.equal(noisy.test_x, clean.test_x)
    changed = (noisy.train_y != clean.train_y).float().mean().item()
    assert changed == pytest.approx(0.2, abs=1 / len(clean.train_y))
    assert noisy.info.protocol["label_noise"]["realised_rate"] == pytest.approx(changed)
    fixed = load_data(DataSettings(name="digits", label_noise=0.2, noise_seed=1), seed=99)
    again = load_data(DataSettings(name="digits", label_noise=0.2, noise_seed=1), seed=5)
    assert torch.equal(fixed.train_y, again.train_y)  # noise_seed wins over the run seed


@pytest.mark.parametrize(
    ("settings", "check"),
    [
        (ImbalanceSettings(profile="exp", ratio=10), lambda c: c[0] == 100 and c[-1] == 10),
        (
            ImbalanceSettings(profile="step", ratio=4, minority=0.5),
            lambda c: c[:5] == [100] * 5 and c[5:] == [25] * 5,
        ),
        (
            ImbalanceSettings(profile="dirichlet", gamma=0.2),
            lambda c: max(c) == 100 and min(c) >= 1,
        ),
    ],
)
def test_imbalance_profiles(settings, check):
    counts = class_counts([100] * 10, settings, seed=0)
    assert check(counts), counts
    assert counts == class_counts([100] * 10, settings, seed=0)  # seeded


def test_larger_dirichlet_gamma_is_milder():
    spread = []
    for gamma in (0.2, 2.0, 50.0):
        counts = [
            class_counts([500] * 10, ImbalanceSettings(gamma=gamma), seed=s) for s in range(8)
        ]
        spread.append(sum(min(c) / max(c) for c in counts) / len(counts))
    assert spread == sorted(spread) and spread[-1] > 0.5 and spread[0] < 0.05


def test_imbalanced_digits_keep_the_test_set_balanced():
    data = load_data(
        build(DataSettings, {"name": "digits", "imbalance": {"profile": "exp", "ratio": 10}})
    )
    counts = torch.bincount(data.train_y, minlength=10).tolist()
    assert counts == data.info.protocol["imbalance"]["counts"]
    assert max(counts) / min(counts) == pytest.approx(10, rel=0.15)
    clean = load_data(DataSettings(name="digits"))
    assert torch.equal(data.test_y, clean.test_y)


def test_protocols_on_an_imagefolder(tmp_path):
    from tests.conftest import write_digits_folder

    root = write_digits_folder(tmp_path / "d", size=8, train_per_class=10, val_per_class=2)
    data = load_data(
        build(
            DataSettings,
            {"name": "imagefolder", "data_dir": str(root), "image_size": 8, "label_noise": 0.3,
             "imbalance": {"profile": "step", "ratio": 5}},
        )
    )  # fmt: skip
    assert len(data.train) == 5 * 10 + 5 * 2
    assert data.info.protocol["label_noise"]["corrupted"] == round(0.3 * 60)
    labels = [data.train[i][1] for i in range(len(data.train))]
    assert labels == data.train.targets
