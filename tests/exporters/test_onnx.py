from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import compress
from compress.exporters.onnx import export_onnx, onnx_metadata, ort_session
from compress.exporters.validate import weight_elements_onnx, weight_elements_torch
from compress.models import create_model, list_models
from compress.prune import PruneSettings, append_record, prune_channels


@pytest.mark.parametrize("name", list_models())
def test_every_zoo_model_exports_and_matches_pytorch(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_channels=3).eval()
    path = export_onnx(model, tmp_path / "m.onnx", (3, 32, 32))
    session = ort_session(path)
    for batch in (1, 7):
        x = torch.randn(batch, 3, 32, 32)
        with torch.no_grad():
            ref = model(x).numpy()
        got = session.run(None, {"input": x.numpy()})[0]
        assert got.shape == (batch, 10)
        assert np.abs(got - ref).max() <= 1e-4, (name, batch, np.abs(got - ref).max())


def test_pruned_model_exports_at_its_pruned_size(tmp_path):
    model = create_model("resnet8x4", num_classes=10).eval()
    full = weight_elements_torch(model)
    record = prune_channels(model, (3, 32, 32), PruneSettings(ratio=0.5))
    model.compress_header["pruning"] = append_record(None, record)
    path = compress.save_model(model, tmp_path / "p.safetensors")
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
