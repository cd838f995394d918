"""Which tensors `compress quantize` quantizes (rules 2: concatenations, shuffles, poolings),
how the first scales are calibrated, and a ShuffleNetV2 whose ONNX Runtime file computes its
fake-quantized function."""

from __future__ import annotations

import json
import operator
from collections import Counter

import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from compress.artifacts import load_model, read_header
from compress.cli import cli
from compress.config import build
from compress.errors import CompressError
from compress.models.registry import MODELS
from compress.quantize import graph as G
from tests.conftest import FAST_DIGITS


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def input_quantizer(model):
    return model.get_submodule("act_fake_quant_0")


def test_calibration_averages_steps_of_32_images_whatever_the_batch():
    """One image far out of range in the first batch sets 1/3 of the range of 96 images, not
    all of it (the observers' moving average kept the first batch's range), and the scales do
    not depend on how the loader batches the same images."""
    torch.manual_seed(0)
    model = MODELS.get("resnet8")(num_classes=10, in_channels=1).eval()
    x = torch.randn(96, 1, 8, 8)
    x[0] *= 20.0  # the outlier, in the first step
    one, _ = G.insert(model)
    three, _ = G.insert(model)
    assert G.calibrate(one, [(x, None)], 96) == 96
    assert G.calibrate(three, [(x[:40], None), (x[40:], None)], 96) == 96
    assert G.scales(one) == G.scales(three)
    steps = x.split(G.CALIBRATION_CHUNK)
    low = sum(float(s.min()) for s in steps) / len(steps)
    high = sum(float(s.max()) for s in steps) / len(steps)
    expected = max(-low, high) / 127  # symmetric, amax / 127
    assert input_quantizer(one).scale.item() == pytest.approx(expected, rel=1e-5)
    assert expected < 0.5 * float(x.abs().max()) / 127  # the outlier did not set it
    # the observers keep their moving average for training with `observe`
    assert input_quantizer(one).activation_post_process.averaging_constant == 0.01
    # the limit counts images, not batches; a short last step counts by its images
    part, _ = G.insert(model)
    assert G.calibrate(part, [(x, None)], 50) == 50
    a, b = x[:32], x[32:50]
    low = (32 * float(a.min()) + 18 * float(b.min())) / 50
    high = (32 * float(a.max()) + 18 * float(b.max())) / 50
    assert input_quantizer(part).scale.item() == pytest.approx(max(-low, high) / 127, rel=1e-5)


def test_shufflenet_concatenations_and_shuffles_keep_their_grids():
    """Rules 2: each input and the output of a concatenation is quantized, a shuffled or split
    value is not quantized again (it is on the concatenation's grid), the pooling's input is;
    rules 1 (files from before the rules entry) replays as it was."""
    model = MODELS.get("shufflenetv2")(num_classes=10, in_channels=1).eval()
    gm, record = G.insert(model, "uint8")
    assert record["rules"] == 2 and record["concats"] == 16 and record["pools"] == 1
    code = gm.code
    # the shuffle's output goes to the convolutions and the next concatenation as it is
    assert "chunk = reshape.chunk(2, dim = 1)" in code
    assert "self.act_fake_quant_" not in code.split("chunk = reshape.chunk")[1].split("\n")[1]
    # a concatenation of ReLU values (and of shuffled halves of such) is unsigned, in and out
    cats = [n for n in gm.graph.nodes if n.target is torch.cat]
    around = [a for n in cats for a in (*n.args[0], *n.users)]
    moved = [a for a in around if a.op != "call_module"]  # a shuffled half: not again
    assert len(around) == 3 * 16 and len(moved) == 13  # one per block after the first of a stage
    assert all(a.target is operator.getitem for a in moved)
    assert {gm.get_submodule(a.target).dtype for a in around if a not in moved} == {torch.quint8}
    old, before = G.insert(model, "uint8", rules=1)
    assert before["activations"] < record["activations"]
    legacy = {k: v for k, v in before.items() if k != "rules"}
    again = G.rebuild(MODELS.get("shufflenetv2")(num_classes=10, in_channels=1).eval(), legacy)
    assert len(G.quantizers(again)) == len(G.quantizers(old))
    with pytest.raises(CompressError, match="newer than this compress"):
        G.rebuild(model, {**record, "rules": 3})


@pytest.fixture(scope="module")
def shufflenet(tmp_path_factory):
    """A ShuffleNetV2 trained 4 epochs on digits, then quantized for ONNX Runtime (uint8
    activations, 7-bit weights) for 1 epoch."""
    from compress.train import TrainConfig, train

    root = tmp_path_factory.mktemp("shuffle")
    cfg = {**FAST_DIGITS, "model": "shufflenetv2", "epochs": 4, "device": "cpu",
           "output": str(root / "m")}  # fmt: skip
    train(build(TrainConfig, cfg), log=lambda _m: None)
    result = run("quantize", root / "m" / "model.safetensors", "--epochs", "1", "--device", "cpu",
                 "--activation-type", "uint8", "--reduce-range", "-o", root / "q",
                 "--set", "progress=false")  # fmt: skip
    assert result.exit_code == 0, result.output
    return root / "q" / "model.safetensors"


def test_shufflenet_ort_file_is_its_fake_quantized_function(shufflenet, tmp_path):
    """No tensor of the file is calibrated (88 were, before rules 2: its agreement with the
    model was 91.7 %), every convolution and concatenation is an INT8 kernel, nothing is
    dequantized between them, and the file agrees with the fake-quantized model."""
    from compress.exporters.api import dataset_images

    result = run("export", shufflenet, "--format", "onnx-int8", "--no-compare-speed",
                 "-o", tmp_path / "e")  # fmt: skip
    assert result.exit_code == 0, result.output
    entry = json.loads((tmp_path / "e" / "export.json").read_text())["formats"]["onnx-int8"]
    calibration = entry["calibration"]
    assert calibration["placement"] == "ort" and calibration["calibrated_tensors"] == []
    assert calibration["shapes_of_quantized"] > 0
    path = tmp_path / "e" / "model.int8.onnx"
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    ops = Counter(n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node)
    assert ops["QLinearConv"] == 56 and ops["QLinearConcat"] == 16, ops
    assert ops["QLinearGlobalAveragePool"] == 1 and ops["QGemm"] == 1, ops
    assert ops["Conv"] == 0 and ops["DequantizeLinear"] == 0, ops
    assert ops["QuantizeLinear"] == 1, ops  # the input
    model = load_model(shufflenet)
    images, _ = dataset_images(read_header(shufflenet), split="test", count=400, data_dir=None)
    with torch.no_grad():
        fq = model(torch.from_numpy(images)).numpy().argmax(1)
    got = ort.InferenceSession(str(path)).run(None, {"input": images})[0].argmax(1)
    assert float((got == fq).mean()) >= 0.99
