"""Fake quantization inserted into a model the way TensorRT's explicit quantization places it.

The model is traced with ``torch.fx``; BatchNorm layers that follow a convolution are folded
into it (``torch.fx.experimental.optimization.fuse``, the QAT recipe of folding BN before
fine-tuning: the weights that train are the weights that are deployed; a BatchNorm that
follows no convolution stays, frozen, see `compress.quantize.callback`). Then quantizers —
PyTorch's own `torch.ao.quantization.FakeQuantize` modules, no hand-written kernels — go:

* on the weights of every ``Conv2d`` and ``Linear``: symmetric INT8, per output channel;
* on the input activation of every ``Conv2d`` and ``Linear``: symmetric INT8, per tensor;
* on both inputs of every residual ``add``, so TensorRT can fuse the add into the convolution.

A tensor read by several of these gets one quantizer. The insertion is deterministic (graph
order), so a model file records only the *record* of what was done (`QuantRecord`) and its
tensors; `rebuild` replays it on a fresh model exactly as the pruning history is replayed. The
graph exports to ONNX as QuantizeLinear/DequantizeLinear pairs with the learned scales.
"""

from __future__ import annotations

import operator
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.ao.quantization import (
    FakeQuantize,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
)

from compress.errors import CompressError

#: The scheme name recorded in the model file.
SCHEME = "int8-symmetric-qdq"
#: INT8 ranges the ONNX exporter takes for symmetric quantizers (zero point 0).
QMIN, QMAX = -128, 127


def activation_quantizer() -> FakeQuantize:
    """Symmetric per-tensor INT8 for an activation (TensorRT's convention: zero point 0).

    Its scale is ``amax / 127`` (`_NarrowRange`).
    """
    return FakeQuantize(
        observer=NarrowRangeObserver,
        quant_min=QMIN,
        quant_max=QMAX,
        dtype=torch.qint8,
        qscheme=torch.per_tensor_symmetric,
    )


def unsigned_quantizer() -> FakeQuantize:
    """Unsigned per-tensor INT8 (0–255, zero point 0) for a ReLU's output (``activations: uint8``).

    Its range starts at 0, so the quantizer itself clips what the ReLU clips: ONNX Runtime
    removes the ReLU and fuses the convolution before it with this quantizer into one INT8
    kernel. TensorRT needs signed, symmetric activations instead (the ``int8`` default).
    """
    return FakeQuantize(
        observer=MovingAverageMinMaxObserver,
        quant_min=0,
        quant_max=255,
        dtype=torch.quint8,
        qscheme=torch.per_tensor_affine,
    )


class _NarrowRange:
    """Symmetric scales of ``amax / 127``: values on [-127, 127], the largest never on a tie.

    torch's symmetric rule for the range [-128, 127] is ``amax / 127.5``, which puts the
    largest magnitude exactly on a rounding tie (±127.5): torch rounds ``x * (1/s)``, ONNX
    Runtime ``x / s``, and the two disagreed by one step on each channel's largest weight (1
    weight in 256 of a MobileNetV2) — enough to move 3 % of its predictions between the PyTorch
    model and its ONNX file. With ``amax / 127`` the largest value lands on ±127 (TensorRT's and
    ModelOpt's symmetric range); -128 is never used. The ONNX exporter takes only the
    [-128, 127] range, so the quantizer keeps it and only the scale differs.
    """

    #: The largest quantized magnitude: ``amax`` maps onto it.
    LEVELS = 127.0

    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        scale, zero_point = super().calculate_qparams()  # type: ignore[misc]
        return scale * (127.5 / self.LEVELS), zero_point


class NarrowRangeObserver(_NarrowRange, MovingAverageMinMaxObserver):
    """A per-tensor symmetric observer with ``amax / 127`` scales (`_NarrowRange`)."""


class NarrowRangePerChannelObserver(_NarrowRange, MovingAveragePerChannelMinMaxObserver):
    """A per-channel symmetric observer with ``amax / 127`` scales (`_NarrowRange`)."""


class ReducedRangePerChannelObserver(NarrowRangePerChannelObserver):
    """Per-channel symmetric scales of ``amax / 63``: 7-bit weights (``reduce_range``).

    On an x86 CPU without VNNI (AVX2), ONNX Runtime's u8s8 INT8 kernels multiply with
    ``vpmaddubsw``, which adds two uint8 × int8 products into a saturating int16: 255 × 127 × 2
    overflows it, and a QAT model's INT8 file lost 4.7 points against its fake-quantized model
    on an AMD EPYC (AVX2) for that alone. With every weight in [-63, 63] the pair sum stays
    below 2^15 (255 × 64 × 2 = 32,640) and the kernel is exact on every CPU; ONNX Runtime's
    quantiser calls the same remedy ``reduce_range``. The quantizer keeps the [-128, 127]
    range the exporter takes; only the scale differs (as in `_NarrowRange`).
    """

    LEVELS = 63.0


def weight_quantizer(reduce_range: bool = False) -> FakeQuantize:
    """Symmetric per-output-channel INT8 for a convolution's or linear layer's weight.

    Its scale follows the weights as they train (the range of the current weights: averaging
    constant 1), so the exported scale is the one the final weights have; it is ``amax / 127``
    (`_NarrowRange`), or ``amax / 63`` with `reduce_range` (`ReducedRangePerChannelObserver`).
    """
    observer = ReducedRangePerChannelObserver if reduce_range else NarrowRangePerChannelObserver
    return FakeQuantize(
        observer=observer.with_args(averaging_constant=1.0),
        quant_min=QMIN,
        quant_max=QMAX,
        dtype=torch.qint8,
        qscheme=torch.per_channel_symmetric,
        ch_axis=0,
    )


class _BiasInt32:
    """The int32 bias an INT8 kernel adds: quantized with scale ``input scale × weight scale``.

    ONNX Runtime's QLinearConv/QGemm add the bias as int32 on that scale; left float in the
    fake-quantized model, the difference (up to half a step of a tiny scale) moved 4 % of a
    weak MobileNetV2's predictions between the model and ONNX Runtime. With it the model
    computes what the INT8 kernel does. Set only where the input quantizer is known
    (`insert` links it, without registering it twice); the ONNX export keeps the bias float
    (the exporter takes 8-bit ranges only) and ONNX Runtime's quantiser rounds it the same way.
    """

    def _bias(self, bias: torch.Tensor | None) -> torch.Tensor | None:
        source = getattr(self, "_input", None)
        if bias is None or source is None or torch.onnx.is_in_onnx_export():
            return bias
        weights = self.weight_fake_quant
        if not (source[0].fake_quant_enabled[0] and weights.fake_quant_enabled[0]):
            return bias
        scale = (source[0].scale * weights.scale).detach().float()
        zeros = torch.zeros(scale.shape, dtype=torch.int32, device=bias.device)
        return torch.fake_quantize_per_channel_affine(bias, scale, zeros, 0, -(2**31), 2**31 - 1)


class QuantConv2d(_BiasInt32, nn.Module):
    """A ``Conv2d`` whose weight passes through its quantizer on every forward."""

    def __init__(self, conv: nn.Conv2d, reduce_range: bool = False) -> None:
        super().__init__()
        self.conv = conv
        self.weight_fake_quant = weight_quantizer(reduce_range)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        weight = self.weight_fake_quant(self.conv.weight)
        return self.conv._conv_forward(x, weight, self._bias(self.conv.bias))


class QuantLinear(_BiasInt32, nn.Module):
    """A ``Linear`` whose weight passes through its quantizer on every forward."""

    def __init__(self, linear: nn.Linear, reduce_range: bool = False) -> None:
        super().__init__()
        self.linear = linear
        self.weight_fake_quant = weight_quantizer(reduce_range)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        weight = self.weight_fake_quant(self.linear.weight)
        return F.linear(x, weight, self._bias(self.linear.bias))


def _trace(model: nn.Module) -> fx.GraphModule:
    try:
        return fuse(model.eval())
    except Exception as exc:  # torch.fx raises many types for an untraceable forward
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise CompressError(
            f"this architecture cannot be traced by torch.fx ({first}), so quantization cannot "
            "be inserted; quantize a ResNet, WRN, MobileNetV2 or ShuffleNet of the zoo (compress "
            "models; VGG branches on the input size and cannot be traced either)"
        ) from None


def fuse(model: nn.Module) -> fx.GraphModule:
    """Trace `model` and fold every BatchNorm that follows a convolution into it."""
    from torch.fx.experimental.optimization import fuse as fx_fuse

    return fx_fuse(model, inplace=False)


def _is_relu(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules.get(node.target), (nn.ReLU, nn.ReLU6))
    if node.op == "call_function":
        return node.target in (F.relu, torch.relu, F.relu6)
    return node.op == "call_method" and node.target == "relu"


#: The quantization rules `insert` applies; a model file records the version it was made with.
#: 1: inputs of convolutions, linear layers and residual adds; unsigned (``uint8``) only right
#: after a ReLU. 2: also every input and the output of a concatenation and the input of an
#: average pooling; a value that only moved since a quantizer (reshaped, transposed, split,
#: max-pooled: a channel shuffle) is on that quantizer's grid already and is not quantized
#: again, as ONNX Runtime and TensorRT carry a grid through such ops; unsigned wherever the
#: values come from a ReLU through ops that only move, pick or average them.
RULES = 2

#: Ops that only move or pick values: after one, values are still on their input's grid.
_MOVE_MODULES: tuple[type, ...] = (nn.MaxPool2d, nn.Flatten, nn.Identity)
_MOVE_FUNCTIONS: tuple[Any, ...] = (
    operator.getitem,
    torch.flatten,
    torch.reshape,
    torch.transpose,
    torch.permute,
    torch.chunk,
    torch.split,
    F.max_pool2d,
)
_MOVE_METHODS: tuple[str, ...] = (
    "view",
    "reshape",
    "transpose",
    "permute",
    "flatten",
    "chunk",
    "split",
    "contiguous",
)
#: Ops that move, pick or average values: they keep them non-negative.
_KEEPS_SIGN_MODULES = (
    *_MOVE_MODULES,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    FakeQuantize,
)
_KEEPS_SIGN_FUNCTIONS = (
    *_MOVE_FUNCTIONS,
    F.avg_pool2d,
    F.adaptive_avg_pool2d,
    F.adaptive_max_pool2d,
)
_KEEPS_SIGN_METHODS = (*_MOVE_METHODS, "mean")


def _is_one_of(
    node: fx.Node,
    modules: dict[str, nn.Module],
    kinds: tuple[tuple[type, ...], tuple[Any, ...], tuple[str, ...]],
) -> bool:
    """Whether `node` calls one of `kinds` = (module types, functions, method names)."""
    types, functions, methods = kinds
    if node.op == "call_module":
        return isinstance(modules.get(node.target), types)
    if node.op == "call_function":
        return node.target in functions
    return node.op == "call_method" and node.target in methods


_MOVES = (_MOVE_MODULES, _MOVE_FUNCTIONS, _MOVE_METHODS)
_KEEPS_SIGN = (_KEEPS_SIGN_MODULES, _KEEPS_SIGN_FUNCTIONS, _KEEPS_SIGN_METHODS)
#: Average poolings, whose input ONNX Runtime's INT8 kernels read quantized.
_POOLS = (nn.AvgPool2d, nn.AdaptiveAvgPool2d)
_POOL_FUNCTIONS = (F.avg_pool2d, F.adaptive_avg_pool2d)


def _nonnegative(node: Any, modules: dict[str, nn.Module], seen: dict[str, bool]) -> bool:
    """Whether `node`'s values are ≥ 0 by construction: a ReLU's, moved or pooled (rules 2)."""
    if not isinstance(node, fx.Node):
        return False
    if node.name in seen:
        return seen[node.name]
    seen[node.name] = False  # a cycle cannot occur in a traced graph; this guards recursion
    if _is_relu(node, modules):
        result = True
    elif node.op == "call_function" and node.target in (torch.cat, torch.concat):
        items = node.args[0] if node.args else node.kwargs.get("tensors", ())
        result = bool(items) and all(_nonnegative(a, modules, seen) for a in items)
    else:
        keeps = _is_one_of(node, modules, _KEEPS_SIGN) and bool(node.args)
        result = keeps and _nonnegative(node.args[0], modules, seen)
    seen[node.name] = result
    return result


def _moved_from(node: Any, modules: dict[str, nn.Module], mine: set[fx.Node]) -> fx.Node | None:
    """The quantizer node whose output `node` only moved (`_MOVE_FUNCTIONS`), or None."""
    while isinstance(node, fx.Node) and node not in mine:
        if not _is_one_of(node, modules, _MOVES) or not node.args:
            return None
        node = node.args[0]
    return node if isinstance(node, fx.Node) else None


def _is_pool(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules.get(node.target), _POOLS)
    return node.op == "call_function" and node.target in _POOL_FUNCTIONS


def insert(
    model: nn.Module,
    activations: str = "int8",
    *,
    bias: str | None = None,
    reduce_range: bool = False,
    rules: int = RULES,
) -> tuple[fx.GraphModule, dict[str, Any]]:
    """The fake-quantized graph of `model` (BN folded) and its record.

    Args:
        model: the float model.
        activations: ``int8`` (symmetric, TensorRT's convention) or ``uint8`` (a ReLU's
            output unsigned, for ONNX Runtime on a CPU; other tensors stay symmetric INT8).
        bias: ``float`` (TensorRT adds the bias in float) or ``int32`` (ONNX Runtime's INT8
            kernels: `_BiasInt32`); default ``int32`` for ``uint8`` activations, else ``float``.
        reduce_range: 7-bit weights (``amax / 63``), exact in ONNX Runtime's INT8 kernels on
            x86 CPUs without VNNI (`ReducedRangePerChannelObserver`).
        rules: which tensors are quantized (`RULES`); an older file replays with its own.

    Returns:
        ``(graph_module, record)``; the record (JSON) lists the quantized layers and tensors.
    """
    if rules not in (1, 2):
        raise CompressError(
            f"the model file's quantization rules {rules!r} are newer than this compress "
            "(it knows 1 and 2); upgrade compress to load it"
        )
    bias = bias or ("int32" if activations == "uint8" else "float")
    gm = _trace(model)
    modules = dict(gm.named_modules())
    made: dict[str, fx.Node] = {}
    mine: set[fx.Node] = set()  # the quantizer nodes: a quantized value is not quantized again
    signs: dict[str, bool] = {}
    names: list[str] = []
    layers: list[str] = []
    adds = concats = pools = 0

    def quantizer(node: fx.Node) -> nn.Module:
        """The quantizer whose grid `node`'s values are on, once `quantized(node)` ran."""
        source = node if node in mine else made.get(node.name) or _moved_from(node, modules, mine)
        return gm.get_submodule(source.target)

    def quantized(node: fx.Node) -> fx.Node:
        """What a quantized reader of `node` reads: a quantizer's output, or `node` itself."""
        if node in mine:
            return node
        if node.name in made:
            return made[node.name]
        if rules >= 2 and _moved_from(node, modules, mine) is not None:
            return node  # already on a quantizer's grid: a channel shuffle, a split
        name = f"act_fake_quant_{len(names)}"
        if rules == 1:
            unsigned = activations == "uint8" and _is_relu(node, modules)
        else:
            unsigned = activations == "uint8" and _nonnegative(node, modules, signs)
        gm.add_submodule(name, unsigned_quantizer() if unsigned else activation_quantizer())
        modules[name] = gm.get_submodule(name)
        with gm.graph.inserting_after(node):
            made[node.name] = gm.graph.call_module(name, (node,))
        mine.add(made[node.name])
        names.append(name)
        return made[node.name]

    for node in list(gm.graph.nodes):
        if node.op == "call_module" and isinstance(modules[node.target], (nn.Conv2d, nn.Linear)):
            source = node.args[0]
            layer = modules[node.target]
            kind = QuantConv2d if isinstance(layer, nn.Conv2d) else QuantLinear
            wrapper = kind(layer, reduce_range)
            if isinstance(source, fx.Node):
                reads = quantized(source)
                node.replace_input_with(source, reads)
                if bias == "int32":  # a plain list: the quantizer stays registered once
                    wrapper._input = [quantizer(reads)]
            gm.add_submodule(node.target, wrapper)
            layers.append(node.target)
        elif node.op == "call_function" and node.target in (operator.add, torch.add):
            inputs = [a for a in node.args if isinstance(a, fx.Node)]
            if len(inputs) == 2:
                for a in inputs:
                    node.replace_input_with(a, quantized(a))
                adds += 1
        elif rules >= 2 and node.op == "call_function" and node.target in (torch.cat, torch.concat):
            # every input and the output: ONNX Runtime's QLinearConcat reads and writes INT8,
            # and the channel shuffle after it moves those integers (TensorRT fuses the same)
            items = node.args[0] if node.args else node.kwargs.get("tensors", ())
            for a in [a for a in items if isinstance(a, fx.Node)]:
                node.replace_input_with(a, quantized(a))
            after = quantized(node)
            node.replace_all_uses_with(after, delete_user_cb=partial(operator.is_not, after))
            concats += 1
        elif rules >= 2 and _is_pool(node, modules) and isinstance(node.args[0], fx.Node):
            node.replace_input_with(node.args[0], quantized(node.args[0]))
            pools += 1
    gm.graph.lint()
    gm.recompile()
    record = {
        "scheme": SCHEME,
        "rules": rules,
        "bn_folded": True,
        "layers": layers,
        "activations": len(names),
        "activation_type": activations,
        "bias": bias,
        "residual_adds": adds,
        "concats": concats,
        "pools": pools,
        "reduce_range": reduce_range,
        "weights": "int8 symmetric, per output channel"
        if not reduce_range
        else "int8 symmetric on [-63, 63] (7-bit, reduce_range), per output channel",
        "inputs": "int8 symmetric, per tensor"
        if activations == "int8"
        else "uint8 where the values are a ReLU's, int8 symmetric elsewhere, per tensor",
    }
    return gm, record


def rebuild(model: nn.Module, record: dict[str, Any]) -> fx.GraphModule:
    """Replay a recorded quantization on a fresh (pruned) model; the tensors load afterwards.

    Raises:
        CompressError: the replay does not give the recorded layers (another architecture).
    """
    if record.get("scheme") != SCHEME:
        raise CompressError(
            f"the model file's quantization scheme {record.get('scheme')!r} is not {SCHEME!r}; it "
            "was written by another compress"
        )
    # files written before the int32 bias have no "bias" entry: they computed with a float one;
    # files from before reduce_range have 8-bit weights; files from before the rules entry
    # were made with rules 1
    gm, again = insert(
        model,
        record.get("activation_type", "int8"),
        bias=record.get("bias", "float"),
        reduce_range=bool(record.get("reduce_range", False)),
        rules=record.get("rules", 1),
    )
    if again["layers"] != record.get("layers") or again["activations"] != record.get("activations"):
        raise CompressError(
            "the quantization recorded in the model file does not fit its architecture; the "
            "file is corrupt"
        )
    return gm


def quantizers(model: nn.Module) -> list[FakeQuantize]:
    """Every quantizer of a fake-quantized model."""
    return [m for m in model.modules() if isinstance(m, FakeQuantize)]


def is_quantized(model: nn.Module) -> bool:
    """Whether `model` carries fake quantization."""
    return bool(quantizers(model))


def set_observers(model: nn.Module, on: bool, *, weights: bool | None = None) -> None:
    """Let the activation quantizers' observers update their scales, or freeze them.

    The weight quantizers follow `weights` (default: the same as `on`).
    """
    weights = on if weights is None else weights
    for name, q in model.named_modules():
        if isinstance(q, FakeQuantize):
            enable = weights if name.endswith("weight_fake_quant") else on
            q.enable_observer() if enable else q.disable_observer()


def set_fake_quant(model: nn.Module, on: bool) -> None:
    """Quantize in the forward pass (``on``) or pass values through (calibration, fp32 check)."""
    for q in quantizers(model):
        q.enable_fake_quant() if on else q.disable_fake_quant()


def scales(model: nn.Module) -> dict[str, list[float]]:
    """The current scale of every quantizer, by module name (for summaries and tests)."""
    return {
        name: [float(v) for v in m.scale.flatten()]
        for name, m in model.named_modules()
        if isinstance(m, FakeQuantize)
    }


#: Images per calibration step: each step's range counts once in the mean (`calibrate`).
CALIBRATION_CHUNK = 32


@torch.no_grad()
def calibrate(model: nn.Module, batches: Any, limit_images: int) -> int:
    """Set the scales from real training images (the PTQ path's calibration), fake quant off.

    Each activation's range is the mean, over steps of `CALIBRATION_CHUNK` images, of the
    step's minimum and maximum (a short last step by its share of the images), whatever size
    the loader's batches are (a step may span two).
    An observer's moving average (constant 0.01) would instead keep the first batch's range:
    with the evaluation loader's batches of 500 that was the range of one training image whose
    logits reached 115 (ten times the others), and a digits ShuffleNetV2 went from 86.9 % to
    10.8 % top-1 once quantized; the mean of 16 steps gives that image 1/16 of the weight
    (84.4 %). The observers get their moving average back afterwards (`observe` > 0 trains
    with it).

    Returns:
        The images seen.
    """
    was = model.training
    model.eval()
    set_fake_quant(model, False)
    set_observers(model, True)
    observers = [
        q.activation_post_process
        for name, q in model.named_modules()
        if isinstance(q, FakeQuantize) and not name.endswith("weight_fake_quant")
    ]
    constants = [o.averaging_constant for o in observers]
    seen = stepped = 0
    pending: list[torch.Tensor] = []  # images not yet in a step: steps span loader batches

    def step(chunk: torch.Tensor) -> None:
        nonlocal stepped
        stepped += len(chunk)
        for o in observers:  # the running mean of the steps' ranges, by images (a short last)
            o.averaging_constant = len(chunk) / stepped
        model(chunk)

    for x, _ in batches:
        x = x[: limit_images - seen]
        seen += len(x)
        pending.append(x)
        while sum(len(p) for p in pending) >= CALIBRATION_CHUNK:
            joined = torch.cat(pending)
            step(joined[:CALIBRATION_CHUNK])
            pending = [joined[CALIBRATION_CHUNK:]]
        if seen >= limit_images:
            break
    if sum(len(p) for p in pending):
        step(torch.cat(pending))
    for o, c in zip(observers, constants, strict=True):
        o.averaging_constant = c
    set_observers(model, False)  # the scales stay as calibrated until training moves them
    set_fake_quant(model, True)
    model.train(was)
    return seen
