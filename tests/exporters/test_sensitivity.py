"""The INT8 sensitivity ranking reads tensors by their float-graph names, a graph output too."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from compress.exporters.sensitivity import tensor_sqnr


def _models(tmp_path):
    """A float Gemm model and its Q/DQ form as ONNX Runtime's quantiser names it: the quantised
    graph output `logits` is renamed `logits_QuantizeLinear_Input` before its Q/DQ pair."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((3, 4)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(3, np.float32), "b")
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 4])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 3])
    gemm = helper.make_node("Gemm", ["input", "w", "b"], ["logits"], transB=1, name="fc")
    fp32 = helper.make_model(helper.make_graph([gemm], "f", [x], [y], [w, b]))
    fp32.opset_import[0].version = 17
    consts = [
        numpy_helper.from_array(np.array(0.05, np.float32), "in_scale"),
        numpy_helper.from_array(np.array(0, np.int8), "in_zero"),
        numpy_helper.from_array(np.array(0.5, np.float32), "out_scale"),
        numpy_helper.from_array(np.array(0, np.int8), "out_zero"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["input", "in_scale", "in_zero"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "in_scale", "in_zero"], ["xd"]),
        helper.make_node("Gemm", ["xd", "w", "b"], ["logits_QuantizeLinear_Input"], transB=1),
        helper.make_node(
            "QuantizeLinear", ["logits_QuantizeLinear_Input", "out_scale", "out_zero"], ["yq"]
        ),
        helper.make_node("DequantizeLinear", ["yq", "out_scale", "out_zero"], ["logits"]),
    ]
    int8 = helper.make_model(helper.make_graph(nodes, "q", [x], [y], [w, b, *consts]))
    int8.opset_import[0].version = 17
    paths = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    onnx.save(fp32, paths[0])
    onnx.save(int8, paths[1])
    return paths


def test_a_quantised_graph_output_is_ranked_under_its_float_name(tmp_path):
    fp32, int8 = _models(tmp_path)
    images = np.random.default_rng(1).standard_normal((16, 4)).astype(np.float32)
    ranked = dict(tensor_sqnr(fp32, int8, images))
    assert set(ranked) == {"input", "logits"}
    assert all(np.isfinite(db) and db > 0 for db in ranked.values())
    # the coarse output scale (0.5) hurts more than the input's (0.05)
    assert ranked["logits"] < ranked["input"]
