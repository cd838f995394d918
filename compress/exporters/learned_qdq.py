"""ONNX Runtime's Q/DQ placement for a quantization-aware-trained model, with its learned scales.

A fake-quantized model exports to ONNX with QuantizeLinear/DequantizeLinear exactly where it
quantizes: at the inputs of convolutions and linear layers and of residual adds (TensorRT's
explicit-quantization placement, `compress.quantize.graph`). TensorRT fuses that; ONNX Runtime
on a CPU does not — a convolution whose output is not quantized runs in float on dequantized
weights, slower than fp32. ONNX Runtime's own quantiser instead puts a Q/DQ pair on every
tensor between INT8-able ops, so each convolution becomes one INT8 kernel.

This module joins the two: it reads the learned scales out of the fake-quant export
(`learned_params`), strips those pairs to get the float graph (BatchNorm already folded), and
lets ONNX Runtime's static quantiser place its pairs with the learned scale and zero point
wherever a learned quantizer covers the tensor (`TensorQuantOverrides`); the learned per-channel
weight scales are kept the same way. A tensor a learned quantizer sees through a ReLU, Clip,
MaxPool, Flatten, Reshape, Transpose or Slice gets that quantizer's parameters too —
quantizing before or after such an op is the same function (zero points at the range's bottom
or at 0, monotone or value-preserving ops). Only the tensors no learned quantizer covers (the
output of a pooling or a convolution that feeds no other quantized op) are calibrated, on real
training images. The model's outputs stay float (`float_outputs`), as in the fake-quantized
model: the classifier runs as an INT8 kernel with a float result.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Ops through which a learned quantizer's parameters hold for the op's input as well.
TRANSPARENT = ("Relu", "Clip", "MaxPool", "Flatten", "Reshape", "Transpose", "Slice")
#: Ops that only move or pick values: their outputs lie on their input's grid.
MOVES = ("Reshape", "Transpose", "Flatten", "Slice", "Split", "Squeeze", "Unsqueeze", "MaxPool")


def _values(graph: Any) -> dict[str, np.ndarray]:
    """Every constant of `graph` by tensor name: initializers, Constant nodes and their Identity."""
    from onnx import numpy_helper

    found = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:  # topological order: an Identity follows what it copies
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    found[node.output[0]] = numpy_helper.to_array(a.t)
        elif node.op_type == "Identity" and node.input[0] in found:
            found[node.output[0]] = found[node.input[0]]
    return found


def learned_params(
    proto: Any, *, unsigned: bool = True
) -> tuple[Any, dict[str, list[dict[str, Any]]]]:
    """Strip a fake-quant export's Q/DQ pairs; return the float graph and the learned parameters.

    Args:
        proto: the ONNX model torch wrote for a fake-quantized model (modified in place).
        unsigned: write every activation as uint8: a signed quantizer (zero point 0, −128…127)
            becomes the same grid in uint8 (zero point 128, 0…255) — the same function — so
            each INT8 kernel sees one type on all its inputs (ONNX Runtime fuses an Add or a
            Conv only then; mixed int8/uint8 inputs left 15 of MobileNetV2's 53 convolutions
            and all 10 adds in float).

    Returns:
        ``(proto, overrides)``: the float model and ONNX Runtime ``TensorQuantOverrides`` —
        per tensor name a one-entry list (``scale``, ``zero_point``, ``quant_type``) for an
        activation, one entry per output channel (with ``axis``) for a weight.
    """
    from onnx import numpy_helper
    from onnxruntime.quantization import QuantType

    graph = proto.graph
    values = _values(graph)
    producer = {o: n for n in graph.node for o in n.output}
    overrides: dict[str, list[dict[str, Any]]] = {}
    rename: dict[str, str] = {}
    drop: list[Any] = []
    weights: list[Any] = []
    for dq in graph.node:
        if dq.op_type != "DequantizeLinear":
            continue
        scale = values[dq.input[1]].astype(np.float32)
        zp = values[dq.input[2]] if len(dq.input) > 2 else np.zeros_like(scale, dtype=np.int8)
        qtype = QuantType.QUInt8 if zp.dtype == np.uint8 else QuantType.QInt8
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        q = producer.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear":
            raise ValueError(f"{dq.name} dequantizes no QuantizeLinear; not a fake-quant export")
        source = q.input[0]
        drop += [q, dq]
        if scale.ndim == 0 or scale.size == 1:
            if source in values:
                raise ValueError(f"per-tensor Q/DQ on a constant ({dq.name}) is not expected")
            point, kind = zp.reshape(()), qtype
            if unsigned and zp.dtype == np.int8:  # the same grid, shifted by 128
                point, kind = np.uint8(int(point) + 128), QuantType.QUInt8
            overrides[source] = [
                {"scale": np.array(scale.reshape(())), "zero_point": np.array(point),
                 "quant_type": kind}
            ]  # fmt: skip
            rename[dq.output[0]] = source
            continue
        if source not in values:
            raise ValueError(f"per-channel Q/DQ on an activation ({dq.name}) is not expected")
        name = dq.output[0]  # the float weight, named as its consumers read it
        weights.append(numpy_helper.from_array(values[source].astype(np.float32), name))
        overrides[name] = [
            {"axis": axis, "scale": np.array(s), "zero_point": np.array(z), "quant_type": qtype}
            for s, z in zip(scale.reshape(-1), zp.reshape(-1), strict=True)
        ]
    for node in drop:
        graph.node.remove(node)
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    graph.initializer.extend(weights)
    _drop_unused(graph)
    _see_through(graph, overrides)
    return proto, overrides


def _see_through(graph: Any, overrides: dict[str, list[dict[str, Any]]]) -> None:
    """Carry learned parameters across ops that keep values on their grid.

    The input of a transparent op (`TRANSPARENT`) gets the parameters learned for its output,
    the outputs of an op that only moves values (`MOVES`) those of its input. The second is a channel shuffle's: a concatenation's learned quantizer, then a Reshape, a
    Transpose, a Reshape and a split. In the fake-quantized model the values stay on the
    concatenation's grid through them; left to calibration, ONNX Runtime put each of those
    tensors on a grid of its own (88 calibrated tensors in a ShuffleNetV2).
    """
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    changed = True
    while changed:
        changed = False
        for node in graph.node:
            if node.op_type not in TRANSPARENT or node.output[0] not in overrides:
                continue
            source = node.input[0]
            if source not in overrides and readers.get(source) == 1:
                overrides[source] = overrides[node.output[0]]
                changed = True
        for node in graph.node:
            if node.op_type not in MOVES or node.input[0] not in overrides:
                continue
            for out in node.output:
                if out and out not in overrides:
                    overrides[out] = overrides[node.input[0]]
                    changed = True


def _drop_unused(graph: Any) -> None:
    """Remove constants (and Identity copies of them) and initializers nothing reads any more."""
    outputs = {o.name for o in graph.output}
    changed = True
    while changed:  # an unread Identity frees the constant it copied
        changed = False
        read = {i for n in graph.node for i in n.input} | outputs
        for node in list(graph.node):
            if node.op_type in ("Constant", "Identity") and node.output[0] not in read:
                graph.node.remove(node)
                changed = True
    read = {i for n in graph.node for i in n.input} | outputs
    for init in list(graph.initializer):
        if init.name not in read:
            graph.initializer.remove(init)


def float_outputs(proto: Any) -> list[str]:
    """Drop the Q/DQ pair ONNX Runtime's quantiser puts on each graph output; return their names.

    The fake-quantized model's logits are float; a pair there rounds them to 256 levels of a
    calibrated range, which on a weak classifier moved 4 % of its argmaxes (MobileNetV2,
    Fashion-MNIST). Without it ONNX Runtime still runs the last Gemm as one INT8 kernel (QGemm
    with a float output).
    """
    graph = proto.graph
    producer = {o: n for n in graph.node for o in n.output}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    freed = []
    for out in graph.output:
        dq = producer.get(out.name)
        if dq is None or dq.op_type != "DequantizeLinear":
            continue
        q = producer.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear" or readers.get(q.output[0]) != 1:
            continue
        source = producer.get(q.input[0])
        if source is None or readers.get(q.input[0]) != 1:
            continue  # the float value is read elsewhere too: keep the pair
        source.output[list(source.output).index(q.input[0])] = out.name
        graph.node.remove(q)
        graph.node.remove(dq)
        freed.append(out.name)
    _drop_unused(graph)
    return freed


def merge_clipping_relus(proto: Any) -> int:
    """Drop each ``DequantizeLinear → Relu → QuantizeLinear`` whose two quantizations are one.

    Where the Quantize before and the one after a ReLU are the same uint8 grid with zero point
    0, the dequantized value is never negative, the ReLU is the identity and the second
    quantization gives back the first's integers: readers of the second pair can read the
    first. ONNX Runtime's optimiser removes such a ReLU itself only where it is the sole
    reader; a ReLU read by two convolutions (a ResNet block's output, read by the next block
    and its downsampling shortcut) kept a Dequantize/Quantize pair between the two INT8 kernels
    (3 on a ResNet-8×4: 1.14× PTQ's time). The float graph keeps its ReLUs, so calibration
    sees the clipped values; this runs on the quantized graph. Returns the number merged.
    """
    from onnx import numpy_helper

    graph = proto.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}

    def grid(q: Any) -> tuple[float, int] | None:
        scale, zero = (consts.get(q.input[i]) if len(q.input) > i else None for i in (1, 2))
        if scale is None or zero is None or zero.dtype != np.uint8 or scale.size != 1:
            return None
        return float(scale.reshape(())), int(zero.reshape(()))

    merged = 0
    for relu in [n for n in graph.node if n.op_type == "Relu"]:
        dq = producer.get(relu.input[0])
        after = readers.get(relu.output[0], [])
        if dq is None or dq.op_type != "DequantizeLinear" or len(after) != 1:
            continue
        q2, q1 = after[0], producer.get(dq.input[0])
        if q2.op_type != "QuantizeLinear" or q1 is None or q1.op_type != "QuantizeLinear":
            continue
        if len(readers.get(dq.output[0], [])) != 1 or relu.output[0] in outputs:
            continue
        first, second = grid(q1), grid(q2)
        if first is None or first != second or first[1] != 0 or q2.output[0] in outputs:
            continue
        for reader in readers.get(q2.output[0], []):
            for i, name in enumerate(reader.input):
                if name == q2.output[0]:
                    reader.input[i] = q1.output[0]
        for node in (dq, relu, q2):
            graph.node.remove(node)
        merged += 1
    _drop_unused(graph)
    return merged


def shapes_of_quantized(proto: Any) -> int:
    """Let each ``Shape`` of a dequantized tensor read the quantized one; returns how many.

    A channel shuffle reshapes with sizes taken from ``Shape`` of its input (the batch is
    dynamic, so they do not fold). Reading a ``DequantizeLinear``'s output, it kept that
    Dequantize in the optimised graph — a float copy of the tensor for its shape alone (29 in a
    ShuffleNetV2). The quantized tensor has the same shape; a Dequantize nothing else reads
    goes.
    """
    graph = proto.graph
    producer = {o: n for n in graph.node for o in n.output}
    moved = 0
    for node in graph.node:
        source = producer.get(node.input[0]) if node.op_type == "Shape" else None
        if source is not None and source.op_type == "DequantizeLinear":
            node.input[0] = source.input[0]
            moved += 1
    read = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    for node in list(graph.node):
        if node.op_type == "DequantizeLinear" and node.output[0] not in read:
            graph.node.remove(node)
    _drop_unused(graph)
    return moved


def calibrated_tensors(proto: Any, overrides: dict[str, Any]) -> list[str]:
    """The activations of a quantized model that got calibrated, not learned, parameters."""
    inits = {t.name for t in proto.graph.initializer}
    return sorted(
        {
            n.input[0]
            for n in proto.graph.node
            if n.op_type == "QuantizeLinear" and n.input[0] not in inits
        }
        - set(overrides)
    )
