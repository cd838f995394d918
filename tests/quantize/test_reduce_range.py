"""7-bit weights (``--reduce-range``): the remedy for ONNX Runtime's saturating INT8 kernels on
x86 CPUs without VNNI, for quantization-aware and post-training INT8 alike."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from compress.artifacts import load_model, read_header
from compress.cli import cli
from compress.quantize.graph import insert, quantizers, weight_quantizer
from compress.runtime.machine import int8_products_saturate
from tests.reliability.test_cli_errors import assert_one_line_error


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def int8_weights(path) -> list[np.ndarray]:
    """The int8 arrays a Q/DQ file dequantizes as weights (constant DequantizeLinear inputs; the
    int32 ones are biases)."""
    proto = onnx.load(str(path))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    return [inits[n.input[0]] for n in proto.graph.node
            if n.op_type == "DequantizeLinear" and n.input[0] in inits
            and inits[n.input[0]].dtype == np.int8]  # fmt: skip


def test_seven_bit_weights_reach_63_and_never_beyond():
    torch.manual_seed(0)
    w = torch.randn(8, 4, 3, 3)
    for reduce_range, top in ((False, 127), (True, 63)):
        fq = weight_quantizer(reduce_range)
        fq(w)  # observes the range
        q = torch.round(w / fq.scale.view(-1, 1, 1, 1))
        assert q.abs().amax() == top  # each channel's largest weight lands on the top level
        assert torch.equal(q.abs().amax(dim=(1, 2, 3)), torch.full((8,), float(top)))


def test_the_record_replays_the_weight_range(digits_model, tmp_path):
    from compress.artifacts import save_model

    model = load_model(digits_model)
    qmodel, record = insert(model, "uint8", reduce_range=True)
    assert record["reduce_range"] is True and "7-bit" in record["weights"]
    x = torch.randn(4, 1, 8, 8)
    qmodel(x)  # observers see a batch
    for q in quantizers(qmodel):
        q.disable_observer()
    qmodel.compress_header = read_header(digits_model).replace(quantization=record)
    path = save_model(qmodel, tmp_path / "q.safetensors")
    again = load_model(path)
    with torch.no_grad():
        assert torch.equal(again(x), qmodel(x))
    scales = [m.weight_fake_quant.scale for m in again.modules() if hasattr(m, "weight_fake_quant")]
    weights = [m.conv.weight if hasattr(m, "conv") else m.linear.weight
               for m in again.modules() if hasattr(m, "weight_fake_quant")]  # fmt: skip
    for s, w in zip(scales, weights, strict=True):
        top = (w.detach().flatten(1).abs().amax(1) / s).max()
        assert abs(float(top) - 63.0) < 1e-3


def test_post_training_reduce_range_writes_7_bit_weights(digits_model, tmp_path):
    result = run("export", digits_model, "--format", "onnx-int8", "--all-int8", "--reduce-range",
                 "--no-compare-speed", "-o", tmp_path / "e")  # fmt: skip
    assert result.exit_code == 0, result.output
    entry = json.loads((tmp_path / "e" / "export.json").read_text())["formats"]["onnx-int8"]
    assert entry["calibration"]["reduce_range"] is True
    weights = int8_weights(tmp_path / "e" / "model.int8.onnx")
    assert weights and max(int(np.abs(w.astype(np.int32)).max()) for w in weights) <= 64
    # on every CPU the 7-bit file runs exact INT8 kernels: it passes the INT8 gate
    assert entry["validation"]["passed"], entry["validation"]


def test_reduce_range_is_refused_for_a_model_that_learned_its_range(digits_model, tmp_path):
    q = tmp_path / "q"
    assert run("quantize", digits_model, "--epochs", "1", "--device", "cpu", "--reduce-range",
               "-o", q, "--set", "progress=false").exit_code == 0  # fmt: skip
    assert_one_line_error(
        run("export", q / "model.safetensors", "--format", "onnx-int8", "--reduce-range",
            "-o", tmp_path / "e"),
        "learned its own",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "machine", "saturates"),
    [
        (["avx2", "fma"], "x86_64", True),  # AMD EPYC before Zen 4, Intel before Cascade Lake
        (["avx2", "fma", "avx512f", "avx512_vnni"], "x86_64", False),  # Zen 4, Sapphire Rapids
        (["avx2", "fma", "avx_vnni"], "x86_64", False),  # Alder Lake
        (["avx2", "fma", "avx512f", "avx512_vnni", "amx_tile"], "x86_64", False),
        ([], "aarch64", False),  # Jetson, Graviton: dot products accumulate in int32
    ],
)
def test_which_cpus_saturate(flags, machine, saturates):
    assert int8_products_saturate(flags, machine) is saturates
