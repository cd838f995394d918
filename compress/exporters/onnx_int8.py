"""INT8 ONNX by explicit quantisation (ONNX Runtime's static Q/DQ quantiser).

Weights are symmetric per-channel int8; activations are calibrated on real training images.

The file runs in ONNX Runtime on any CPU, and TensorRT ≥ 8.5 builds its INT8 engine from it
(explicit quantisation; TensorRT needs ``activation_type: int8``, symmetric).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from compress.artifacts import atomic_path
from compress.exporters.base import EXPORTERS, BatchSpec, ExportContext, Exporter, Int8Settings
from compress.exporters.calibration import Calibration
from compress.exporters.onnx import export_onnx, provenance

#: The largest batch the export times (a 1024-image profile batch would take minutes on a CPU).
SPEED_BATCH_CAP = 64
#: Timed calls of each file in the speed comparison (fewer for a slow model).
SPEED_REPEATS = 50


def compare_speed(
    fp32: Path, int8: Path, shape: tuple[int, ...], *, batch: int, budget_s: float = 3.0
) -> dict[str, Any]:
    """Median ONNX Runtime CPU latency of the fp32 and INT8 files at one batch size, same inputs.

    INT8 is not always faster (quantise/dequantise nodes cost more than they save on tiny models
    and on CPUs without int8 dot-product instructions), so the export records what it measured.
    Each file gets 2 warm-up calls, then 50 timed calls, or fewer (at least 3) when one fp32 call
    shows that 50 of each would take longer than `budget_s`. The files are timed one after the
    other, not in turn: each ONNX Runtime session's threads spin for a while after a call, and
    two sessions called in turn slowed each other by 1.4× on this 2-core CPU.

    Returns:
        ``{"batch", "repeats", "fp32_ms", "int8_ms", "speedup"}`` (speedup = fp32 / int8).
    """
    import numpy as np

    from compress.runtime.runners import make_runner
    from compress.runtime.timing import percentile, time_calls

    x = np.random.default_rng(0).standard_normal((batch, *shape), dtype=np.float32)
    runners = {
        "fp32_ms": make_runner("onnxruntime", str(fp32)),
        "int8_ms": make_runner("onnxruntime", str(int8)),
    }
    first_ms = time_calls(lambda: runners["fp32_ms"].infer(x), warmup=1, repeats=1)[0]
    repeats = max(3, min(SPEED_REPEATS, int(1000 * budget_s / max(2 * first_ms, 1e-3))))
    ms = {
        key: percentile(time_calls(lambda run=run: run.infer(x), warmup=2, repeats=repeats), 50)
        for key, run in runners.items()
    }
    return {"batch": batch, "repeats": repeats, **ms, "speedup": ms["fp32_ms"] / ms["int8_ms"]}


def float_boundary_nodes(path: Path) -> list[str]:
    """Names of the first Conv and the last Gemm/MatMul node (kept in float by ``float_first_last``)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    convs = [n.name for n in graph.node if n.op_type == "Conv"]
    heads = [n.name for n in graph.node if n.op_type in ("Gemm", "MatMul")]
    return ([convs[0]] if convs else []) + ([heads[-1]] if heads else [])


def grouped_convs(path: Path) -> list[str]:
    """Names of the Conv nodes with ``group`` > 1 (depthwise and grouped convolutions)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return [
        n.name
        for n in graph.node
        if n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)
    ]


def float_inputs_unquantized(proto: Any, float_nodes: list[str], original: dict[str, str]) -> int:
    """Feed every float node the float tensor itself, not its quantised-dequantised copy.

    ONNX Runtime's Q/DQ quantiser leaves a node excluded from quantisation reading the
    ``DequantizeLinear(QuantizeLinear(x))`` of an input that a quantised neighbour produced, so
    a node "kept in float" still sees INT8 rounding and keeping more nodes in float need not
    bring the model back towards fp32. Here such inputs are rewired to ``x``; pairs no node reads
    any more are removed. With every node in float the graph computes fp32 exactly.

    An input is rewired only when the tensor before the pair comes from the node that made it
    in the float graph (`original`: tensor name → producing node name before quantisation).
    ONNX Runtime removes a Relu after a quantised Conv, gives the Conv's output the Relu's
    name and lets the quantiser's clipping stand for the Relu; that pair stays.

    Returns:
        How many inputs were rewired.
    """
    graph = proto.graph
    producer = {out: node for node in graph.node for out in node.output}
    initializers = {t.name for t in graph.initializer}
    wanted = set(float_nodes)
    rewired = 0
    for node in graph.node:
        if node.name not in wanted:
            continue
        for i, name in enumerate(node.input):
            dq = producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = producer.get(dq.input[0])
            if q is None or q.op_type != "QuantizeLinear" or q.input[0] in initializers:
                continue
            made_by = producer.get(q.input[0])
            if original.get(q.input[0]) != (made_by.name if made_by is not None else None):
                continue  # the pair stands for a removed activation: keep it
            node.input[i] = q.input[0]
            rewired += 1
    # drop Q/DQ nodes whose outputs nobody reads any more (repeat: a DQ frees its Q)
    outputs = {o.name for o in graph.output}
    changed = True
    while changed:
        changed = False
        read = {i for node in graph.node for i in node.input} | outputs
        for node in list(graph.node):
            if node.op_type in ("QuantizeLinear", "DequantizeLinear") and not (
                set(node.output) & read
            ):
                graph.node.remove(node)
                changed = True
    used = {i for node in graph.node for i in node.input}
    for init in list(graph.initializer):  # the removed pairs' scales and zero points
        if init.name not in used and init.name not in outputs:
            graph.initializer.remove(init)
    return rewired


def save_stamped(proto: Any, meta: dict[str, Any], path: Path) -> None:
    """Write `proto` to `path` atomically with `meta` as its ``compress`` metadata (JSON)."""
    import json

    import onnx

    entry = proto.metadata_props.add()
    entry.key, entry.value = "compress", json.dumps(meta)
    with atomic_path(path) as out:
        onnx.save(proto, str(out))


def quantize_qdq(
    source: Path,
    target: Path,
    calib_images: Any,
    settings: Int8Settings,
    *,
    exclude: list[str] | None = None,
    extra: dict[str, Any] | None = None,
    reduce_range: bool = False,
) -> None:
    """ONNX Runtime's static Q/DQ quantiser as every INT8 export here calls it.

    Weights symmetric int8 per channel (7-bit with `reduce_range`); activations as `settings`
    say, calibrated on `calib_images`; `exclude` names nodes kept in float; `extra` adds
    quantiser options.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(
        str(source),
        str(target),
        Calibration(calib_images, "input"),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        reduce_range=reduce_range,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QInt8 if settings.activation_type == "int8" else QuantType.QUInt8,
        calibrate_method={
            "minmax": CalibrationMethod.MinMax,
            "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile,
        }[settings.calib_method],
        nodes_to_exclude=exclude or [],
        extra_options={
            "WeightSymmetric": True,
            "ActivationSymmetric": settings.activation_type == "int8",
            **(extra or {}),
        },
    )


def pre_processed(source: Path, target: Path, names: set[str]) -> bool:
    """ONNX Runtime's quantisation pre-processing of `source`, optimised where `names` survive.

    The optimisation folds constant subgraphs: a ShuffleNetV2's channel shuffle computes its
    reshape sizes from ``Shape`` of the activations, and those extra readers of a dequantized
    tensor kept 38 of its 56 convolutions out of ONNX Runtime's INT8 kernels. The learned
    parameters are keyed by tensor name, so should the optimisation rename a tensor that
    carries one, the graph is pre-processed without it (shapes only). Returns whether it was
    optimised.
    """
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(source), str(target), skip_optimization=False, skip_symbolic_shape=True)
    graph = onnx.load(str(target), load_external_data=False).graph
    present = {t.name for t in graph.initializer}
    present |= {name for n in graph.node for name in (*n.input, *n.output)}
    if names <= present:
        return True
    quant_pre_process(str(source), str(target), skip_optimization=True, skip_symbolic_shape=True)
    return False


class OnnxInt8Exporter(Exporter):
    """Static Q/DQ INT8 quantisation of the fp32 ONNX export."""

    name = "onnx-int8"
    precisions = ("int8",)
    settings_cls = Int8Settings

    def output_name(self) -> str:
        """The file name inside the output directory."""
        return "model.int8.onnx"

    def _export_impl(self, model: Any, ctx: ExportContext, path: Path) -> dict[str, Any]:
        import onnx
        from onnxruntime.quantization.shape_inference import quant_pre_process

        s = self.settings
        if ctx.header.quantized:  # quantization-aware trained: its own scales, no calibration
            return self._export_learned(model, ctx, path)
        if ctx.calib_images is None or len(ctx.calib_images) == 0:
            raise ValueError("INT8 export needs calibration images")
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = export_onnx(
                model, Path(tmp) / "fp32.onnx", ctx.header.input_shape, opset=s.opset
            )
            pre = Path(tmp) / "pre.onnx"
            quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
            exclude = float_boundary_nodes(pre) if s.float_first_last else []
            if s.float_depthwise:
                exclude += [n for n in grouped_convs(pre) if n not in exclude]
            exclude += [n for n in ctx.float_nodes if n not in exclude]
            quantized = Path(tmp) / "int8.onnx"
            quantize_qdq(
                pre, quantized, ctx.calib_images, s, exclude=exclude, reduce_range=s.reduce_range
            )
            proto = onnx.load(str(quantized))
            pre_graph = onnx.load(str(pre), load_external_data=False).graph
            float_inputs_unquantized(
                proto, exclude, {o: n.name for n in pre_graph.node for o in n.output}
            )
            from compress.exporters.learned_qdq import shapes_of_quantized

            shapes = shapes_of_quantized(proto)
            meta = provenance(ctx, fmt=self.name, precision="int8")
            meta.update(
                calibration={
                    "images": len(ctx.calib_images),
                    "method": s.calib_method,
                    "activations": s.activation_type,
                    "reduce_range": s.reduce_range,
                    "float_nodes": exclude,
                    "shapes_of_quantized": shapes,
                }
            )
            save_stamped(proto, meta, path)
            info: dict[str, Any] = {"calibration": meta["calibration"], "opset": s.opset}
            if s.auto_precision and not ctx.float_nodes:  # the ranking --auto-precision uses
                from compress.exporters.sensitivity import float_units, tensor_sqnr

                info["sensitivity"] = tensor_sqnr(pre, path, ctx.calib_images)
                info["units"] = float_units(pre, info["sensitivity"], exclude)
            if s.compare_speed:
                info["speed_vs_fp32"] = self._speed(fp32, path, ctx)
        return info

    def _export_learned(self, model: Any, ctx: ExportContext, path: Path) -> dict[str, Any]:
        """Q/DQ ONNX of a fake-quantized model with its learned scales, placed as settings say.

        ``qdq_placement: trt`` writes the fake-quantized graph as it is (Q/DQ at the inputs of
        convolutions, linear layers and residual adds: what TensorRT fuses); ``ort`` lets ONNX
        Runtime's quantiser place Q/DQ on every INT8-able tensor, with the learned parameters
        wherever a learned quantizer covers the tensor (`compress.exporters.learned_qdq`).
        """
        import onnx

        from compress.quantize.graph import quantizers, set_observers

        s = self.settings
        set_observers(model, False)
        meta = provenance(ctx, fmt=self.name, precision="int8")
        meta["calibration"] = {
            "learned_scales": True,
            "quantizers": len(quantizers(model)),
            "placement": s.qdq_placement,
        }
        if s.qdq_placement == "trt":
            export_onnx(
                model, path, ctx.header.input_shape, opset=s.opset, metadata={"compress": meta}
            )
            return {"calibration": meta["calibration"], "opset": s.opset}
        if ctx.calib_images is None or len(ctx.calib_images) == 0:
            raise ValueError("the ort placement of a quantized model needs calibration images")

        from compress.exporters.learned_qdq import (
            calibrated_tensors,
            float_outputs,
            learned_params,
            merge_clipping_relus,
            shapes_of_quantized,
        )

        with tempfile.TemporaryDirectory() as tmp:
            fq = export_onnx(model, Path(tmp) / "fq.onnx", ctx.header.input_shape, opset=s.opset)
            proto, overrides = learned_params(
                onnx.load(str(fq)), unsigned=s.activation_type != "int8"
            )
            fp32 = Path(tmp) / "fp32.onnx"  # the float graph (BatchNorm folded, no quantizers)
            onnx.save(proto, str(fp32))
            pre = Path(tmp) / "pre.onnx"
            optimized = pre_processed(fp32, pre, set(overrides))
            quantized = Path(tmp) / "int8.onnx"
            quantize_qdq(
                pre,
                quantized,
                ctx.calib_images,
                s,
                extra={
                    "TensorQuantOverrides": overrides,
                    "QDQDisableWeightAdjustForInt32Bias": True,  # the learned weight scales
                    # a ReLU before a symmetric (zero point 0) quantizer clips what the
                    # quantizer does not; ONNX Runtime's optimiser still removes the ones it can
                    "QDQKeepRemovableActivations": True,
                },
            )
            result = onnx.load(str(quantized))
            float_out = float_outputs(result)
            merged = merge_clipping_relus(result)
            shapes = shapes_of_quantized(result)
            calibrated = calibrated_tensors(result, overrides)
            meta["calibration"].update(
                learned_tensors=len(overrides),
                calibrated_tensors=calibrated,
                float_outputs=float_out,
                merged_relus=merged,
                shapes_of_quantized=shapes,
                pre_optimized=optimized,
                images=len(ctx.calib_images),
                activations=s.activation_type,
            )
            save_stamped(result, meta, path)
            info: dict[str, Any] = {"calibration": meta["calibration"], "opset": s.opset}
            if s.compare_speed:
                info["speed_vs_fp32"] = self._speed(fp32, path, ctx)
        return info

    def _speed(self, fp32: Path, int8: Path, ctx: ExportContext) -> dict[str, Any]:
        """`compare_speed` at the batch's MAX size (at most 64), logged."""
        batch = min(BatchSpec.parse(self.settings.batch).max, SPEED_BATCH_CAP)
        speed = compare_speed(fp32, int8, ctx.header.input_shape, batch=batch)
        ctx.log(
            f"onnx-int8: ONNX Runtime CPU latency at batch {batch}: fp32 {speed['fp32_ms']:.2f} ms, "
            f"int8 {speed['int8_ms']:.2f} ms (×{speed['speedup']:.2f})"
        )
        return speed


EXPORTERS.add(
    "onnx-int8",
    OnnxInt8Exporter,
    summary="ONNX with Q/DQ INT8 (ONNX Runtime on any CPU; TensorRT INT8 source)",
)
