"""No wrong answer that looks right: inputs that used to give a number, and now give a refusal.

Each case is one from the hardening report, replayed with real files and the real command line.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import compress
from compress.config import build
from compress.errors import CompressError
from tests.conftest import write_imagefolder
from tests.reliability.test_cli_errors import assert_one_line_error, run

IMPORT = ["--arch", "resnet8", "--num-classes", "10", "--in-channels", "1"]


@pytest.mark.parametrize(
    "kind,expected",
    [
        ("int64", "stored as int64"),
        ("bool", "stored as bool"),
        ("complex", "stored as complex64"),
        ("huge", "values up to"),
        ("nan", "NaN or infinite"),
        ("sparse", "sparse_coo tensor"),
    ],
)
def test_import_refuses_weights_that_would_load_wrongly(tmp_path, kind, expected):
    state = compress.create_model("resnet8", num_classes=10, in_channels=1).state_dict()
    change = {
        "int64": lambda t: t.long(),
        "bool": lambda t: t.bool(),
        "complex": lambda t: t.to(torch.complex64),
        "huge": lambda t: t * 1e30,
        "nan": lambda t: t * float("nan"),
    }
    if kind == "sparse":
        state["fc.weight"] = state["fc.weight"].to_sparse()
    else:
        state = {k: change[kind](v) if v.is_floating_point() else v for k, v in state.items()}
    torch.save(state, tmp_path / "w.pt")
    result = run("import", tmp_path / "w.pt", *IMPORT, "-o", tmp_path / "m.safetensors")
    assert_one_line_error(result, expected)
    assert not (tmp_path / "m.safetensors").exists()


def test_import_of_a_meta_tensor_is_refused(tmp_path):
    from safetensors.torch import save_file

    from compress.importer import WeightsImportError, check_tensors

    model = compress.create_model("resnet8", num_classes=10, in_channels=1)
    state = {k: v.to("meta") for k, v in model.state_dict().items()}
    with pytest.raises(WeightsImportError, match="meta tensor"):
        check_tensors(state, model, tmp_path / "w.pt")
    save_file({"a": torch.zeros(1)}, tmp_path / "unused.safetensors")  # the format itself is fine


def test_a_symlink_loop_in_an_imagefolder_is_not_followed(tmp_path):
    from compress.data import DataSettings, load_data

    root = write_imagefolder(tmp_path / "tree", classes=3, train_per_class=6, val_per_class=2)
    os.symlink("..", root / "train" / "class_0" / "loop")
    data = load_data(DataSettings(name="imagefolder", data_dir=str(root), image_size=16))
    assert data.info.train_size == 18
    assert sorted(data.train.targets) == [0] * 6 + [1] * 6 + [2] * 6
    stats = run("datasets", "stats", root)
    assert stats.exit_code == 0 and "18 training images" in stats.output


def test_a_fifo_named_like_an_image_is_skipped_not_read(tmp_path):
    from compress.data import DataSettings, load_data

    root = write_imagefolder(tmp_path / "tree", classes=2, train_per_class=4, val_per_class=2)
    os.mkfifo(root / "train" / "class_0" / "pipe.png")
    data = load_data(DataSettings(name="imagefolder", data_dir=str(root), image_size=16))
    assert data.info.train_size == 8
    images = [data.train[i][0] for i in range(len(data.train))]  # reading never blocks
    assert len(images) == 8


def test_a_16_bit_grayscale_png_is_scaled_not_clipped_to_white(tmp_path):
    from compress.data.imagefolder import read_image

    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    pixels = np.asarray(read_image(str(tmp_path / "deep.png")))
    assert pixels.shape == (8, 8, 3)
    expected = np.rint(ramp / 65535 * 255).astype(np.uint8)
    assert np.array_equal(pixels[..., 0], expected) and pixels.max() < 255


def test_a_model_and_a_folder_with_other_class_names_are_refused(tmp_path):
    root = write_imagefolder(tmp_path / "a", classes=3, train_per_class=4, val_per_class=2)
    out = tmp_path / "m"
    trained = run("train", "--model", "resnet8", "--dataset", "imagefolder", "--data-dir", root,
                  "--image-size", "16", "--epochs", "1", "--device", "cpu", "-o", out)  # fmt: skip
    assert trained.exit_code == 0, trained.output
    other = tmp_path / "b"
    for split in ("train", "val"):
        (other / split).mkdir(parents=True)
        for i, name in enumerate(("dog", "cat", "emu")):  # three classes, other names
            os.symlink(root / split / f"class_{i}", other / split / name)
    for verb in (["eval"], ["profile", "--batch", "1", "--iters", "1", "--duration", "0"]):
        result = run(*verb, out / "model.safetensors", "--data-dir", other)
        assert_one_line_error(result, "other class names")
    swapped = tmp_path / "c"
    for split in ("train", "val"):
        (swapped / split).mkdir(parents=True)
        for i, j in enumerate((1, 0, 2)):  # the same names, two folders swapped
            os.symlink(root / split / f"class_{j}", swapped / split / f"class_{i}x")
    result = run("eval", out / "model.safetensors", "--data-dir", swapped)
    assert_one_line_error(result, "other class names")


def test_profile_of_a_model_on_data_that_does_not_fit_is_refused(digits_model, tmp_path):
    two = write_imagefolder(tmp_path / "two", classes=2)
    result = run("profile", digits_model, "--batch", "1", "--iters", "1", "--duration", "0",
                 "--set", "data_dir=" + str(two))  # fmt: skip
    assert_one_line_error(result, "reads no --data-dir")
    result = run("profile", digits_model, "--data-dir", two, "--batch", "1")
    assert_one_line_error(result, "reads no --data-dir")


@pytest.mark.parametrize(
    "study,expected",
    [
        ({"methods": ["none", "none"]}, "methods repeat"),
        ({"values": [0.0, 0.0]}, "the same setting"),
        ({"values": [0.1, 0.1000001]}, "the same setting"),
        ({"values": [1.5]}, "label_noise must be in [0, 1]"),
        ({"values": [-0.1]}, "label_noise must be in [0, 1]"),
        ({"values": [".nan"]}, "finite"),
        ({"axis": "imbalance", "values": [0]}, "gamma must be > 0"),
        ({"axis": "imbalance", "values": [-1]}, "gamma must be > 0"),
        ({"axis": "imbalance", "values": [".inf"]}, "finite"),
        ({"axis": "imbalance", "imbalance": {"profile": "exp"}, "values": [0.5]}, "ratio must be"),
    ],
)
def test_a_study_grid_with_repeats_or_impossible_values_is_refused(tmp_path, study, expected):
    recipe = tmp_path / "s.yaml"
    text = yaml.safe_dump({"data": {"name": "digits"}, **study}).replace("'.nan'", ".nan")
    recipe.write_text(text.replace("'.inf'", ".inf"))
    for extra in ([], ["--dry-run"]):
        assert_one_line_error(run("study", recipe, "-o", tmp_path / "o", *extra), expected)
    assert not (tmp_path / "o").exists()


def test_prune_never_prints_one_share_and_prunes_to_another(digits_model, tmp_path):
    result = run("prune", digits_model, "--target-params", "0.9", "--no-latency",
                 "-o", tmp_path / "p")  # fmt: skip
    assert_one_line_error(result, "no channel ratio keeps 90.0%")
    assert not (tmp_path / "p" / "model.safetensors").exists()
    both = run("prune", digits_model, "--target-macs", "0.5", "--ratio", "0.3",
               "-o", tmp_path / "q")  # fmt: skip
    assert_one_line_error(both, "--ratio and --target-macs both choose")


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--limit", "-5"], "--limit must be at least 1"),
        (["--limit", "0"], "--limit must be at least 1"),
        (["--image-size", "100000"], "--image-size must be between 1 and 1024"),
    ],
)
def test_datasets_stats_bounds(tmp_path, args, expected):
    root = write_imagefolder(tmp_path / "tree")
    assert_one_line_error(run("datasets", "stats", root, *args), expected)


@pytest.mark.parametrize(
    "mean,std,expected",
    [
        ("1e308", "1e-308", "mean value 1e+308"),
        ("0.5", "1e-308", "std value"),
        ("0.5", "inf", "std value"),
    ],
)
def test_normalisation_out_of_range_is_refused_at_the_boundary(digits_model, tmp_path, mean, std,
                                                               expected):  # fmt: skip
    state = compress.load_model(digits_model).state_dict()
    torch.save(state, tmp_path / "w.pt")
    result = run("import", tmp_path / "w.pt", *IMPORT, "--mean", mean, "--std", std,
                 "-o", tmp_path / "m.safetensors")  # fmt: skip
    assert_one_line_error(result, expected)
    train = run("train", "--dataset", "digits", "--epochs", "1", "--set", f"data.mean=[{mean}]",
                "--set", f"data.std=[{std}]", "-o", tmp_path / "t")  # fmt: skip
    assert_one_line_error(train, expected)


def test_nan_mean_is_a_config_error_not_a_learning_rate_hint(tmp_path):
    result = run("train", "--dataset", "digits", "--epochs", "1", "--set", "data.mean=[.nan]",
                 "--set", "data.std=[0.3]", "-o", tmp_path / "t")  # fmt: skip
    assert_one_line_error(result, "data.mean value nan")
    assert "learning rate" not in result.output


def test_configs_that_could_never_run_are_refused_when_built(digits_model):
    from compress.distill.config import DistillConfig

    cases = [
        ({"method": "dml", "teacher": str(digits_model)}, "without a pretrained teacher"),
        ({"method": "one", "teacher": str(digits_model)}, "without a pretrained teacher"),
        ({"device": 0}, "device must be"),
        ({"student": "resnet9"}, "Did you mean 'resnet8'"),
        ({"method": "fsp", "student": "vgg8", "teacher": str(digits_model)}, "pairs stages"),
    ]
    for data, expected in cases:
        with pytest.raises(CompressError, match=expected):
            build(DistillConfig, data)


def test_the_notebook_api_takes_dotted_keys_paths_and_refuses_a_list(tmp_path):
    from compress.api import _settings
    from compress.errors import ConfigError
    from compress.train import TrainConfig

    config = _settings(TrainConfig, {"data.name": "digits", "optim.lr": 0.2}, {"epochs": 3})
    assert config.data.name == "digits" and config.optim.lr == 0.2 and config.epochs == 3
    from pathlib import Path

    assert _settings(TrainConfig, None, {"output": Path(tmp_path)}).output == str(tmp_path)
    with pytest.raises(ConfigError, match="must be a dict"):
        _settings(TrainConfig, ["model", "resnet8"], {})


def test_study_json_counts_each_cell_once(tmp_path):
    """The report's [none, none] case: refused; a valid grid's n equals its seeds."""
    from compress.study import StudyConfig

    with pytest.raises(CompressError, match="methods repeat"):
        build(StudyConfig, {"methods": ["none", "none"], "data": {"name": "digits"}})
    assert json.dumps(build(StudyConfig, {"data": {"name": "digits"}}).methods) == '["none", "kd"]'
