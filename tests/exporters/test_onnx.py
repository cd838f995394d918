from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import compress
from compress.exporters.onnx import export_onnx, onnx_metadata
from compress.exporters.validate import weight_elements_onnx, weight_elements_torch
from compress.models import create_model, list_models, model_info
from compress.prune import PruneSettings, append_record, prune_channels
from compress.runtime.runners import make_runner


def realistic(model: torch.nn.Module, channels: int = 3, size: int = 32) -> torch.nn.Module:
    """Give BatchNorm running statistics that match the activations, as training does.

    A freshly initialised deep network in eval mode has BN statistics of 0/1 whatever its
    activations are, so its logits reach 1e8 and an absolute tolerance means nothing.
    """
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(8, channels, size, size))
    return model.eval()


#: the four largest zoo models take 7-10 s each to export on 2 cores: the slow set
BIG = ("resnet152", "wrn_28_10", "wide_resnet50_2", "resnet101")


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in BIG else n for n in list_models()]
)
def test_every_zoo_model_exports_and_matches_pytorch(name, tmp_path):
    """CIFAR zoo: max |Δ| ≤ 1e-4. torchvision's 50–150-layer ImageNet models: within the fp32
    validation bound (1e-4 + 2e-3·max|logit|) with identical top-1."""
    torch.manual_seed(0)
    model = realistic(create_model(name, num_classes=10, in_channels=3))
    path = export_onnx(model, tmp_path / "m.onnx", (3, 32, 32))
    runner = make_runner("onnxruntime", str(path))
    cifar = model_info(name).get("source") == "cifar"
    for batch in (1, 7):
        x = torch.randn(batch, 3, 32, 32)
        with torch.no_grad():
            ref = model(x).numpy()
        got = runner.infer(x.numpy())
        assert got.shape == (batch, 10)
        err = np.abs(got - ref).max()
        bound = 1e-4 if cifar else 1e-4 + 2e-3 * np.abs(ref).max()
        assert err <= bound, (name, batch, err, bound)
        assert (got.argmax(1) == ref.argmax(1)).all()


def test_pruned_model_exports_at_its_pruned_size(tmp_path):
    model = create_model("resnet8x4", num_classes=10).eval()
    full = weight_elements_torch(model)
    record = prune_channels(model, (3, 32, 32), PruneSettings(ratio=0.5))
    path = compress.save_model(
        model, tmp_path / "p.safetensors", pruning=append_record(None, record)
    )
    reloaded = compress.load_model(path)
    onnx_path = export_onnx(reloaded, tmp_path / "p.onnx", (3, 32, 32))
    assert weight_elements_onnx(onnx_path) == weight_elements_torch(reloaded) < 0.3 * full


def test_metadata_round_trip(tmp_path):
    model = create_model("resnet8").eval()
    path = export_onnx(
        model, tmp_path / "m.onnx", (3, 32, 32), metadata={"compress": {"a": 1}, "note": "x"}
    )
    meta = onnx_metadata(path)
    assert json.loads(meta["compress"]) == {"a": 1} and meta["note"] == "x"
