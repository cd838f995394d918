"""Where INT8 hurts most: the SQNR of each quantised activation, and the float units it implies.

ONNX Runtime's Q/DQ debugging utilities run the Q/DQ model on calibration images with every
tensor exposed, before and after its QuantizeLinear/DequantizeLinear pair; the signal-to-
quantisation-noise ratio between the two (``qdq_err``, in dB) is the damage INT8 does to that
tensor on its own. (The accumulated error against the float model, ``xmodel_err``, grows with
depth whatever the cause, so it would rank the last layers first.) A tensor stops being
quantised when the nodes that make and read it are kept in float, so `float_units` turns the
ranking into groups of nodes; `compress export --auto-precision` keeps the worst groups in
float until the export passes validation.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

#: Ops whose outputs are never quantised on their own (shape plumbing): not ranked.
SKIP = ("Shape", "Gather", "Unsqueeze", "Concat", "Reshape", "Flatten", "Constant")


def tensor_sqnr(
    fp32: Path, int8: Path, images: Any, *, limit: int = 128
) -> list[tuple[str, float]]:
    """``[(tensor name, SQNR dB)]`` of every quantised activation, the lowest SQNR first.

    Args:
        fp32: the float ONNX model the INT8 one was quantised from (after pre-processing).
        int8: the Q/DQ model.
        images: float32 calibration images (N, C, H, W), normalised.
        limit: images used (the first `limit`).
    """
    from onnxruntime.quantization import qdq_loss_debug as dbg

    from compress.exporters.calibration import Calibration

    data = images[:limit]
    with tempfile.TemporaryDirectory() as tmp:
        f_aug, q_aug = Path(tmp) / "f.onnx", Path(tmp) / "q.onnx"
        dbg.modify_model_output_intermediate_tensors(str(fp32), str(f_aug))
        dbg.modify_model_output_intermediate_tensors(str(int8), str(q_aug))
        f_act = dbg.collect_activations(str(f_aug), Calibration(data, "input"))
        q_act = dbg.collect_activations(str(q_aug), Calibration(data, "input"))
    errors = dbg.compute_activation_error(dbg.create_activation_matching(q_act, f_act))
    ranked = [(t, float(e["qdq_err"])) for t, e in errors.items() if "qdq_err" in e]
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
