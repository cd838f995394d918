"""Which nodes of an INT8 export hurt most: per-node SQNR of INT8 against float activations.

ONNX Runtime's Q/DQ debugging utilities run the float model and the Q/DQ model on the same
calibration images with every node's output exposed; the signal-to-quantisation-noise
ratio between the two (``xmodel_err``, in dB) ranks the nodes, worst first. `compress export
--auto-precision` keeps the worst nodes in float until the export passes validation.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

#: Ops whose outputs are never quantised on their own (shape plumbing): not ranked.
SKIP = ("Shape", "Gather", "Unsqueeze", "Concat", "Reshape", "Flatten", "Constant")


def node_sqnr(fp32: Path, int8: Path, images: Any, *, limit: int = 128) -> list[tuple[str, float]]:
    """``[(node name, SQNR dB)]`` of every quantised node output, the lowest SQNR first.

    Args:
        fp32: the float ONNX model the INT8 one was quantised from (after pre-processing).
        int8: the Q/DQ model.
        images: float32 calibration images (N, C, H, W), normalised.
        limit: images used (the first `limit`).
    """
    import onnx
    from onnxruntime.quantization import qdq_loss_debug as dbg

    from compress.exporters.calibration import Calibration

    graph = onnx.load(str(fp32), load_external_data=False).graph
    producer = {
        out: node.name for node in graph.node for out in node.output if node.op_type not in SKIP
    }
    data = images[:limit]
    with tempfile.TemporaryDirectory() as tmp:
        f_aug, q_aug = Path(tmp) / "f.onnx", Path(tmp) / "q.onnx"
        dbg.modify_model_output_intermediate_tensors(str(fp32), str(f_aug))
        dbg.modify_model_output_intermediate_tensors(str(int8), str(q_aug))
        f_act = dbg.collect_activations(str(f_aug), Calibration(data, "input"))
        q_act = dbg.collect_activations(str(q_aug), Calibration(data, "input"))
    errors = dbg.compute_activation_error(dbg.create_activation_matching(q_act, f_act))
    ranked = [
        (producer[tensor], float(err["xmodel_err"]))
        for tensor, err in errors.items()
        if tensor in producer and "xmodel_err" in err
    ]
    return sorted(ranked, key=lambda item: item[1])
