"""Structured (channel) pruning over torch-pruning, with a replayable history.

The same code prunes a deployed student (``compress prune``) and builds R2KD's pruned teacher
copy. The classifier and any user-listed modules are never pruned. The history torch-pruning
records (module name, in/out, channel indices) is plain JSON: stored in the model file, it
rebuilds the pruned architecture on a fresh instance (`replay_history`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from compress.errors import CompressError
from compress.models.pruning import replay_history  # noqa: F401  (re-exported)
from compress.prune.importance import IMPORTANCES, build_importance
from compress.prune.settings import PruneSettings

#: Architectures torch-pruning cannot prune (channel shuffle / split mix channels across groups).
UNSUPPORTED_FAMILIES = ("shufflenet",)


def _arch_name(model: nn.Module) -> str:
    header = getattr(model, "compress_header", None)
    return getattr(header, "arch", "") or ""


def classifier_module(model: nn.Module) -> nn.Module | None:
    """The model's final Linear layer (never pruned: it defines the classes)."""
    from compress.models import model_info

    name = _arch_name(model)
    if name:
        try:
            embedding = model_info(name).get("embedding")
        except KeyError:
            embedding = None
        if embedding:
            module = dict(model.named_modules()).get(embedding)
            if module is not None:
                return module
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def check_prunable(model: nn.Module) -> None:
    """Raise a clear error for an architecture torch-pruning cannot handle."""
    from compress.models import model_info

    name = _arch_name(model)
    try:
        family = model_info(name).get("family", "") if name else ""
    except KeyError:
        family = ""
    if family in UNSUPPORTED_FAMILIES:
        raise CompressError(
            f"'{name}' cannot be pruned structurally: its channel shuffle and channel split mix "
            "channels across groups, which torch-pruning does not track; prune another architecture "
            "or use unstructured pruning"
        )


class ChannelPruner:
    """Prune a model's channels in ``settings.steps`` steps and record the history.

    Example:
        >>> pruner = ChannelPruner(model, torch.zeros(1, 3, 32, 32), PruneSettings(ratio=0.5))
        >>> pruner.step()            # one step; call `steps` times
        >>> pruner.history()         # JSON-serialisable
    """

    def __init__(
        self,
        model: nn.Module,
        example_inputs: torch.Tensor,
        settings: PruneSettings,
    ) -> None:
        import torch_pruning as tp

        check_prunable(model)
        self.model = model
        self.settings = settings
        modules = dict(model.named_modules())
        ignored = []
        head = classifier_module(model)
        if head is not None:
            ignored.append(head)
        for name in settings.ignore:
            if name not in modules:
                raise CompressError(f"--ignore names a module the model does not have: '{name}'")
            ignored.append(modules[name])
        self.needs_grad = bool(IMPORTANCES.info(settings.importance).get("needs_grad"))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._pruner = tp.pruner.MetaPruner(
                    model,
                    example_inputs,
                    importance=build_importance(settings.importance),
                    pruning_ratio=settings.ratio,
                    global_pruning=settings.global_pruning,
                    max_pruning_ratio=settings.max_layer_ratio,
                    iterative_steps=settings.steps,
                    round_to=settings.round_to,
                    ignored_layers=ignored,
                )
        except Exception as exc:  # torch-pruning raises assorted errors on graphs it cannot trace
            raise CompressError(f"torch-pruning cannot analyse this model: {exc}") from None
        self.steps_done = 0

    def step(self, grad_fn: Callable[[nn.Module], None] | None = None) -> None:
        """Run one pruning step. `grad_fn(model)` backpropagates a loss when the criterion needs it."""
        if self.steps_done >= self.settings.steps:
            raise RuntimeError("all pruning steps are done")
        if self.needs_grad:
            if grad_fn is None:
                raise CompressError(
                    f"importance '{self.settings.importance}' needs gradients: give the pruner data"
                )
            self.model.zero_grad(set_to_none=True)
            grad_fn(self.model)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._pruner.step()
        except (RuntimeError, ZeroDivisionError, IndexError, ValueError) as exc:
            raise CompressError(f"torch-pruning failed on this model: {exc}") from None
        if self.needs_grad:
            self.model.zero_grad(set_to_none=True)
        self.steps_done += 1

    def history(self) -> list[Any]:
        """The pruning history so far, as JSON-serialisable lists."""
        return _plain(self._pruner.pruning_history())


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def prune_channels(
    model: nn.Module,
    input_shape: Sequence[int],
    settings: PruneSettings,
    *,
    grad_fn: Callable[[nn.Module], None] | None = None,
    between_steps: Callable[[int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Prune `model` in place and return the pruning record for its header.

    Args:
        model: the model (built by `create_model`/`load_model`).
        input_shape: (C, H, W) of one input.
        settings: ratio, importance, rounding, steps.
        grad_fn: backpropagates a loss on `model` (for gradient-based importance).
        between_steps: called after every step but the last with the step index and the record
            so far (for fine-tuning between steps; the record makes intermediate files loadable).

    Returns:
        ``{"history": [...], "input_shape": [...], "settings": {...}}`` — merge it into any
        history the model already carries with `append_record`.
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    whole = layers_left_whole(model, settings)
    before = _channels(model)
    # torch-pruning traces the autograd graph of one forward pass and gradient importances
    # backpropagate: a frozen model (a teacher already used for distillation) has no graph and
    # would lose no channel. Trace and step it trainable; between steps and at the end every
    # surviving parameter gets its own flag back (torch-pruning replaces pruned parameters).
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}

    def restore_flags() -> None:
        for name, p in model.named_parameters():
            p.requires_grad_(name not in frozen)

    try:
        model.requires_grad_(True)
        pruner = ChannelPruner(model, torch.zeros(1, *input_shape, device=device), settings)

        def record() -> dict[str, Any]:
            return {
                "history": pruner.history(),
                "input_shape": list(input_shape),
                "settings": asdict(settings),
            }

        for step in range(settings.steps):
            model.requires_grad_(True)
            pruner.step(grad_fn)
            restore_flags()
            if between_steps is not None and step + 1 < settings.steps:
                between_steps(step, record())
                model.eval()
    finally:
        restore_flags()
    model.train(was_training)
    after = _channels(model)
    if after >= before:
        raise CompressError(
            f"pruning at ratio {settings.ratio} removed no channel (round_to {settings.round_to}, "
            f"importance {settings.importance}); lower --ratio or --round-to"
        )
    return {
        **record(),
        "achieved_channel_ratio": 1 - after / before,
        "layers_left_whole": whole,
    }


def _convs(model: nn.Module) -> list[nn.Conv2d]:
    """The convolutions whose output channels channel pruning shrinks (not depthwise ones)."""
    return [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups == 1]


def _channels(model: nn.Module) -> int:
    return sum(m.out_channels for m in _convs(model))


def max_feasible_ratio(model: nn.Module, round_to: int | None) -> float:
    """The largest per-layer ratio that leaves every prunable layer ≥ `round_to` channels."""
    if not round_to or round_to <= 1:
        return 0.99
    widths = [m.out_channels for m in _convs(model) if m.out_channels > round_to]
    return min((1 - round_to / c for c in widths), default=0.0)


def layers_left_whole(model: nn.Module, settings: PruneSettings) -> int:
    """How many prunable layers `round_to` will leave unpruned at `settings.ratio`.

    torch-pruning rounds the channels a layer keeps *down* to a multiple of ``round_to``; when
    that leaves zero it skips the layer entirely. So a high ratio can prune less than a lower
    one. This says so up front, and refuses a ratio at which no layer would be pruned.

    Raises:
        CompressError: every layer would be left whole (naming the largest ratio that works).
    """
    r = settings.round_to
    if not r or r <= 1 or settings.global_pruning:
        return 0
    widths = [m.out_channels for m in _convs(model) if m.out_channels > r]
    stuck = [c for c in widths if c - int(c * settings.ratio) < r]
    if len(stuck) == len(widths):
        detail = (
            f"the largest ratio every layer can take is {max_feasible_ratio(model, r):.3f}"
            if widths
            else f"no layer has more than {r} channels"
        )
        raise CompressError(
            f"ratio {settings.ratio} with round_to {r} would prune nothing: each layer would keep "
            f"fewer than {r} channels, so torch-pruning leaves it whole ({detail}); lower --ratio, "
            "or lower --round-to"
        )
    return len(stuck)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[Any], limit: int) -> int:
    """Re-estimate every BatchNorm's running mean and variance on up to `limit` batches.

    Removing channels shifts the statistics every later BatchNorm sees, so a pruned network
    evaluated with its old running statistics can collapse to one class before any fine-tuning
    (EagleEye's "adaptive BN", Li et al. 2020). This forwards training images with only the
    BatchNorm layers in training mode and a cumulative average (``momentum=None``); weights are
    untouched. The model is left in eval mode.

    Args:
        model: the pruned model.
        batches: an iterable of ``(images, labels)`` on the model's device.
        limit: the number of batches to use (0 does nothing).

    Returns:
        The number of images forwarded.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if limit <= 0 or not bns:
        return 0
    model.eval()
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    seen = 0
    try:
        for i, (x, _y) in enumerate(batches):
            if i >= limit:
                break
            model(x)
            seen += len(x)
    finally:
        for bn, momentum in zip(bns, saved):
            bn.momentum = momentum
        model.eval()
    return seen


def append_record(existing: dict[str, Any] | None, record: dict[str, Any]) -> dict[str, Any]:
    """Combine a model's earlier pruning (if any) with a new record, in order."""
    rounds = list((existing or {}).get("rounds", []))
    rounds.append(record)
    return {"rounds": rounds}


def magnitude_mask_(model: nn.Module, fraction: float) -> dict[str, float]:
    """Zero the `fraction` of smallest-|w| weights in every Conv2d and Linear, layer by layer.

    This is the unstructured pruning of R2KD's released code (``torch.nn.utils.prune
    .l1_unstructured`` then ``prune.remove``), classifier included. Shapes do not change.

    Returns:
        The achieved fraction of zeros per layer name.
    """
    from torch.nn.utils import prune as torch_prune

    if not 0.0 < fraction < 1.0:
        raise CompressError(f"the masking fraction must be in (0, 1), got {fraction}")
    zeros = {}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            torch_prune.l1_unstructured(module, name="weight", amount=fraction)
            torch_prune.remove(module, "weight")
            zeros[name] = float((module.weight == 0).float().mean())
    return zeros
