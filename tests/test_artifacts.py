from __future__ import annotations

import json
import os

import pytest
import torch

import compress
from compress.artifacts import (
    atomic_path,
    atomic_write_text,
    file_sha256,
    read_header,
)
from compress.errors import CompressError, ModelFileError
from tests.conftest import reloads_identically


def _metadata(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return fh.metadata()


def test_save_load_round_trip_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = compress.create_model("resnet8", num_classes=7, in_channels=1)
    model.eval()
    x = torch.randn(3, 1, 28, 28)
    path = compress.save_model(
        model, tmp_path / "m.safetensors", input_size=[28, 28], mean=[0.5], std=[0.25], dataset="x"
    )
    loaded = compress.load_model(path)
    assert torch.equal(model(x), loaded(x))
    header = read_header(path)
    assert header.arch == "resnet8"
    assert header.arch_kwargs == {"num_classes": 7, "in_channels": 1}
    assert header.num_classes == 7 and header.in_channels == 1
    assert header.input_size == (28, 28) and header.mean == (0.5,)
    assert header.provenance["toolkit_version"] == compress.__version__
    assert header.pruning is None and not header.pruned
    raw = json.loads(_metadata(path)["compress"])
    assert raw["pruning"] is None  # the slot exists in the file, empty for an unpruned model


def test_reload_in_fresh_process(tmp_path):
    model = compress.create_model("wrn_16_1", num_classes=5).eval()
    path = compress.save_model(model, tmp_path / "m.safetensors")
    x = torch.randn(2, 3, 32, 32)
    assert reloads_identically(path, x, model(x))


def test_parent_provenance_and_carried_header(tmp_path):
    model = compress.create_model("resnet8", num_classes=10)
    first = compress.save_model(
        model, tmp_path / "a.safetensors", dataset="digits", mean=[0.1] * 3, std=[0.2] * 3
    )
    loaded = compress.load_model(first)
    second = compress.save_model(loaded, tmp_path / "b.safetensors", parent=first)
    header = read_header(second)
    assert header.dataset == "digits" and header.mean == (0.1,) * 3  # carried over
    assert header.provenance["parent"]["sha256"] == file_sha256(first)


def test_truncated_and_foreign_files_give_clear_errors(tmp_path):
    model = compress.create_model("resnet8")
    good = compress.save_model(model, tmp_path / "m.safetensors")
    blob = good.read_bytes()
    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        compress.load_model(truncated)
    from safetensors.torch import save_file

    foreign = tmp_path / "f.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ModelFileError, match=r"no compress header.*compress import"):
        compress.load_model(foreign)
    with pytest.raises(ModelFileError, match="does not exist"):
        compress.load_model(tmp_path / "missing.safetensors")
    with pytest.raises(ModelFileError, match="directory"):
        compress.load_model(tmp_path)


def test_unbuilt_model_cannot_be_saved(tmp_path):
    with pytest.raises(CompressError, match="create_model"):
        compress.save_model(torch.nn.Linear(2, 2), tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="unknown header fields"):
        compress.save_model(
            compress.create_model("resnet8"), tmp_path / "x.safetensors", colour="red"
        )


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "f.json"
    atomic_write_text(target, json.dumps({"v": 1}))
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["f.json"]  # no temp file left behind
