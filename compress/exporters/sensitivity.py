"""Where INT8 hurts most: each quantised activation alone, and the float units it implies.

For every activation the Q/DQ model quantises, the float model is run with that one tensor
passed through its QuantizeLinear/DequantizeLinear pair (the scale and zero point the INT8
export chose) and everything else in float, with ONNX Runtime's graph optimisations off: the
SQNR of the logits against the float model's (in dB) is the damage that tensor's INT8 does on
its own. Quantise/dequantise are exact element-wise ops and the rest is float, so the ranking is
the same on every CPU (the INT8 kernels differ between CPU families — VNNI or not — and a
ranking taken from them, or from errors accumulated with depth, is not). A tensor stops being
quantised when the nodes that make and read it are kept in float, so `float_units` turns the
ranking into groups of nodes; `compress export --auto-precision` keeps the worst groups in
float until the export passes validation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Ops whose outputs are never quantised on their own (shape plumbing): not ranked.
SKIP = ("Shape", "Gather", "Unsqueeze", "Concat", "Reshape", "Flatten", "Constant")


def _quantised_activations(int8: Any) -> dict[str, tuple[Any, Any]]:
    """``{tensor: (scale, zero point)}`` of every activation the Q/DQ graph quantises."""
    from onnx import numpy_helper

    graph = int8.graph
    inits = {i.name: i for i in graph.initializer}
    out = {}
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in inits:
            continue  # a weight's Q/DQ (its initializer) is not an activation
        scale = numpy_helper.to_array(inits[node.input[1]]) if node.input[1] in inits else None
        zero = numpy_helper.to_array(inits[node.input[2]]) if len(node.input) > 2 else None
        if scale is not None and scale.size == 1:
            out[_float_name(node.input[0])] = (scale, zero)
    return out


#: The suffix ONNX Runtime's quantiser gives a tensor it renames to put a Q/DQ pair behind it
#: (a quantised graph output: ``logits`` is then the DequantizeLinear's output).
RENAMED = "_QuantizeLinear_Input"


def _float_name(name: str) -> str:
    """The name a quantised tensor has in the float graph."""
    return name[: -len(RENAMED)] if name.endswith(RENAMED) else name


def _with_one_qdq(fp32: Any, tensor: str, scale: Any, zero: Any) -> bytes:
    """The float model with `tensor` alone through Quantize/DequantizeLinear."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(fp32)
    graph = model.graph
    q, dq = f"{tensor}__solo_q", f"{tensor}__solo_dq"
    graph.initializer.extend(
        [numpy_helper.from_array(scale, q + "_scale")]
        + ([numpy_helper.from_array(zero, q + "_zero")] if zero is not None else [])
    )
    ins = [tensor, q + "_scale"] + ([q + "_zero"] if zero is not None else [])
    pair = [
        helper.make_node("QuantizeLinear", ins, [q], name=q),
        helper.make_node("DequantizeLinear", [q, *ins[1:]], [dq], name=dq),
    ]
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == tensor:
                node.input[i] = dq
    for out in graph.output:
        if out.name == tensor:  # a quantised graph output: compare its dequantised value
            out.name = dq
    at = next((i + 1 for i, n in enumerate(graph.node) if tensor in n.output), 0)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes[:at] + pair + nodes[at:])
    return model.SerializeToString()


def _logits(model: Any, images: Any) -> Any:
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: images[i : i + 64]})[0]
                           for i in range(0, len(images), 64)])  # fmt: skip


def tensor_sqnr(
    fp32: Path, int8: Path, images: Any, *, limit: int = 128
) -> list[tuple[str, float]]:
    """``[(tensor name, logit SQNR dB)]`` of every quantised activation alone, the lowest first.

    Args:
        fp32: the float ONNX model the INT8 one was quantised from (after pre-processing).
        int8: the Q/DQ model (where each activation's scale and zero point are read).
        images: float32 calibration images (N, C, H, W), normalised.
        limit: images used (the first `limit`).
    """
    import numpy as np
    import onnx

    data = np.ascontiguousarray(images[:limit], dtype=np.float32)
    base_model = onnx.load(str(fp32))
    base = _logits(base_model.SerializeToString(), data).astype(np.float64)
    signal = float((base**2).sum())
    ranked = []
    known = {i.name for i in base_model.graph.input}
    known |= {name for node in base_model.graph.node for name in node.output}
    for tensor, (scale, zero) in _quantised_activations(onnx.load(str(int8))).items():
        if tensor not in known:  # a tensor the quantiser made itself: nothing to rank
            continue
        got = _logits(_with_one_qdq(base_model, tensor, scale, zero), data)
        noise = float(((got - base) ** 2).sum())
        db = 10.0 * float(np.log10(signal / noise)) if noise > 0 else float("inf")
        ranked.append((tensor, db))
    return sorted(ranked, key=lambda item: item[1])


#: Element-wise activations that ONNX Runtime folds into the quantised node before them: kept in
#: float together with that node (a float Conv before a quantised Relu would otherwise have its
#: output quantised over the whole signed range, the Relu's own input).
ACTIVATIONS = ("Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh")


def float_units(
    fp32: Path, ranking: list[tuple[str, float]], already: list[str]
) -> list[list[str]]:
    """The groups of nodes `--auto-precision` keeps in float together, in the order it adds them.

    A unit is a computing node and the activations that follow it alone. A damaged tensor stops
    being quantised when the unit that makes it and the units that read it are in float, so
    for each tensor of `ranking` (the most damaged first) those units are added, then every
    other unit of the graph in graph order: the float set grows to the whole model, which then
    computes fp32 exactly (`compress.exporters.onnx_int8.float_inputs_unquantized`).
    """
    import onnx

    graph = onnx.load(str(fp32), load_external_data=False).graph
    producer = {out: node for node in graph.node for out in node.output}
    readers: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node.name)
    owner: dict[str, str] = {}
    units: dict[str, list[str]] = {}
    for node in graph.node:
        if not node.name or node.op_type in SKIP:
            continue
        source = producer.get(node.input[0]) if node.input else None
        if node.op_type in ACTIVATIONS and source is not None and source.name in units:
            owner[node.name] = source.name
            units[source.name].append(node.name)
            continue
        owner[node.name] = node.name
        units[node.name] = [node.name]
    order: list[str] = []
    for tensor, _ in ranking:
        made_by = producer.get(tensor)
        for name in [made_by.name if made_by is not None else "", *readers.get(tensor, [])]:
            head = owner.get(name)
            if head is not None and head not in order:
                order.append(head)
    order += [head for head in units if head not in order]
    done = set(already)
    out = []
    for head in order:
        unit = [n for n in units[head] if n not in done]
        if unit:
            out.append(unit)
    return out
