"""No input makes compress allocate without bound: every size is checked before it is used.

The cases of the hardening report that allocated gigabytes or hung, each now a one-line refusal
(naming the bound) that comes back at once.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import compress
from tests.conftest import write_imagefolder
from tests.reliability.test_cli_errors import assert_one_line_error, run


@pytest.mark.parametrize(
    "flag,value,expected",
    [
        ("--num-classes", "1000000000", "--num-classes must be between 1 and 50,000"),
        ("--num-classes", "20000000", "--num-classes must be between 1 and 50,000"),
        ("--in-channels", "3000000", "--in-channels must be between 1 and 64"),
    ],
)
def test_import_bounds_classes_and_channels_before_building(tmp_path, flag, value, expected):
    state = compress.create_model("resnet8", num_classes=10, in_channels=1).state_dict()
    torch.save(state, tmp_path / "w.pt")
    args = {"--num-classes": "10", "--in-channels": "1", flag: value}
    result = run("import", tmp_path / "w.pt", "--arch", "resnet8",
                 *[x for kv in args.items() for x in kv], "-o", tmp_path / "m.safetensors")  # fmt: skip
    assert_one_line_error(result, expected)


def test_import_counts_the_architecture_on_the_meta_device_first(tmp_path):
    """A classifier of the wrong size would allocate before the shape check; now it is counted."""
    state = compress.create_model("resnet8", num_classes=10, in_channels=1).state_dict()
    torch.save(state, tmp_path / "w.pt")
    result = run("import", tmp_path / "w.pt", "--arch", "resnet8", "--num-classes", "50000",
                 "--in-channels", "1", "-o", tmp_path / "m.safetensors")  # fmt: skip
    assert_one_line_error(result, "shape mismatch")


def test_a_very_elongated_image_is_refused_before_it_is_resized(tmp_path):
    root = write_imagefolder(tmp_path / "tree", classes=2, train_per_class=2, val_per_class=1)
    Image.fromarray(np.zeros((1, 400_000), np.uint8)).save(root / "train" / "class_0" / "wide.png")
    result = run("train", "--model", "resnet8", "--dataset", "imagefolder", "--data-dir", root,
                 "--image-size", "32", "--epochs", "1", "--device", "cpu",
                 "--set", "data.workers=0", "-o", tmp_path / "t")  # fmt: skip
    assert_one_line_error(result, "more elongated than 64:1")


def test_latency_budget_and_profile_batches_are_bounded(digits_model, tmp_path):
    result = run("prune", digits_model, "--target-latency", "50%", "--latency-batch", "10000000",
                 "-o", tmp_path / "p")  # fmt: skip
    assert_one_line_error(result, "batch must be between 1 and 65,536")
    profile = run("profile", digits_model, "--batch", "10000000")
    assert_one_line_error(profile, "between 1 and 65,536")


def test_a_profile_batch_whose_input_alone_is_gigabytes_is_refused(tmp_path):
    model = compress.create_model("resnet8", num_classes=10, in_channels=3)
    path = compress.save_model(model, tmp_path / "m.safetensors", input_size=(1024, 1024))
    result = run("profile", path, "--runtime", "torch", "--batch", "1024", "--eval-images", "0")
    assert_one_line_error(result, "GiB for the input alone")
