"""``compress prune`` settings (no torch import)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from compress.config import NO_HASH
from compress.data.base import DataSettings
from compress.engine.settings import EngineSettings, OptimSettings, ScheduleSettings, TrainSettings
from compress.prune.budget import LatencyBudget, parse_latency, parse_share
from compress.prune.settings import PruneSettings


@dataclass
class PruneConfig(EngineSettings):
    """Everything ``compress prune`` needs.

    Attributes:
        model: the model file to prune.
        prune: ratio, importance, rounding, steps, ignored modules.
        target_macs: instead of ``prune.ratio``, find the ratio that keeps this fraction of MACs.
        target_params: likewise for parameters.
        target_latency: instead of ``prune.ratio``, the smallest ratio whose median latency
            (ms; ``"2ms"`` works too) meets this budget, measured on ``budget.target`` with
            ``budget.runtime`` at ``budget.batch`` (`compress.prune.budget`). A share such as
            ``"60%"`` becomes `target_latency_share`.
        target_latency_share: the budget as a share of the unpruned model's median latency,
            measured first on the same target (portable across devices).
        budget: where and how `target_latency` is measured.
        bn_recalibration: batches of training images on which every BatchNorm re-estimates its
            running statistics right after pruning, before accuracy is measured or fine-tuning
            starts (0 = off). Without it a pruned network often predicts one class.
        finetune_epochs: fine-tuning epochs after the last pruning step (0 = none).
        step_epochs: fine-tuning epochs between pruning steps (with ``prune.steps > 1``).
        teacher: fine-tune by distillation from this model file (else plain cross-entropy).
        method: distillation method for fine-tuning (default ``kd`` with a teacher, else ``none``).
        preset: named method settings (e.g. ``faithful`` for R2KD).
        method_args: the method's settings.
        data: dataset for accuracy and fine-tuning (``name`` empty = the model's own dataset).
        optim: fine-tuning optimiser.
        schedule: fine-tuning schedule.
        seed, device, amp, channels_last, compile, grad_clip, threads, progress: the engine's
            settings, as for ``compress train`` (`EngineSettings`; an unset ``amp`` is ``bf16``
            unless the preset says otherwise).
        latency: measure CPU latency (torch and onnxruntime, batch 1 and 64) before and after.
        latency_repeats: timed calls per measurement (the median is reported).
        output: run directory.
        resume: continue an interrupted fine-tuning in ``output``.
    """

    config_order: ClassVar[tuple[str, ...]] = ("model", "prune", "target_macs", "target_params")

    model: str | None = field(default=None, metadata=NO_HASH)  # its SHA-256 is hashed instead
    prune: PruneSettings = field(default_factory=PruneSettings)
    target_macs: float | None = None
    target_params: float | None = None
    target_latency: float | str | None = None
    target_latency_share: float | None = None
    budget: LatencyBudget = field(default_factory=LatencyBudget)
    bn_recalibration: int = 16
    finetune_epochs: int = 0
    step_epochs: int = 0
    teacher: str | None = field(default=None, metadata=NO_HASH)  # likewise
    method: str | None = None
    preset: str | None = None
    method_args: dict[str, Any] = field(default_factory=dict)
    data: DataSettings = field(default_factory=lambda: DataSettings(name=""))
    # the engine's fields (seed, device, amp, ...) come from EngineSettings; fine-tuning
    # defaults differ from training from scratch: a small LR, cosine
    optim: OptimSettings = field(default_factory=lambda: OptimSettings(lr=0.01))
    schedule: ScheduleSettings = field(default_factory=lambda: ScheduleSettings(name="cosine"))
    latency: bool = field(default=True, metadata=NO_HASH)
    latency_repeats: int = field(default=10, metadata=NO_HASH)
    output: str | None = field(default=None, metadata=NO_HASH)
    resume: bool = field(default=False, metadata=NO_HASH)

    def __post_init__(self) -> None:
        for name in ("target_macs", "target_params"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {value}")
        share = parse_share(self.target_latency)
        if share is not None:
            self.target_latency, self.target_latency_share = None, share
        self.target_latency = parse_latency(self.target_latency)
        if self.target_latency_share is not None and not 0 < self.target_latency_share < 1:
            raise ValueError(
                f"target_latency_share must be in (0, 1), got {self.target_latency_share}"
            )
        targets = [
            t
            for t in (
                self.target_macs,
                self.target_params,
                self.target_latency,
                self.target_latency_share,
            )
            if t
        ]
        if len(targets) > 1:
            raise ValueError("give one of target_macs, target_params and target_latency")
        if self.finetune_epochs < 0 or self.step_epochs < 0 or self.bn_recalibration < 0:
            raise ValueError("finetune_epochs, step_epochs and bn_recalibration must be ≥ 0")
        preset_decides = self.amp is None and bool(self.preset)
        super().__post_init__()
        if preset_decides:  # the fine-tune step applies the preset's precision (faithful: fp32)
            self.amp = None

    @property
    def method_name(self) -> str:
        """The fine-tuning method: as given, else ``kd`` with a teacher, else ``none``."""
        return self.method or ("kd" if self.teacher else "none")

    def train_settings(self, epochs: int) -> TrainSettings:
        """Engine settings for `epochs` epochs of fine-tuning."""
        return TrainSettings(epochs=epochs, **self.engine_settings())
