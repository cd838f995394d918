"""``bss``: KD with boundary-supporting samples (Heo et al., AAAI 2019), as bhheo/BSS_distillation.

Besides KD on the clean batch, KD on adversarial samples that the teacher puts near its
decision boundary. The default follows the reference code (``train_BSS_distillation.py`` and
``attacks/attack_BSS.py``) exactly:

* **samples**: images that teacher and student both classify right; with more than
  ``max_samples`` (64), those with the largest distillation score
  ``Σ_{c≠y} (p_T − p_S)²`` (probabilities at T = 1);
* **target class**: sampled per image from the teacher's probabilities over the classes other
  than its top-1 (``target: sample``);
* **attack** on the teacher, ``steps`` (10) targeted L2 steps: each moves the image by
  ``step_size · (margin + 1e-4)`` (0.3 × the teacher's logit margin of its top-1 over the
  target, plus 1e-4) along the unit gradient of that margin, clamps it to [−2.5, 2.5]
  (normalised-image units), and an image stops once the teacher's top-1 is no longer the class
  it started with;
* **loss**: ``CE + w_kd·H(p_T^T, p_S^T) + w_bss·H(p_T^T(x̃), p_S^T(x̃))`` with the soft cross
  entropy ``H = −Σ p_T log p_S`` averaged over the batch, **no T² factor**, T = 3;
* **weights**: ``w_kd = 1 + 3·(1 − e/E)`` and ``w_bss = 2·(1 − e/(0.75·E))``, floored at 0, with
  the epoch ``e`` counted from 1 as the reference does.

Each difference from that code is a named option (``target``, ``step_rule``, ``clamp``,
``stop``, ``select``, ``t_squared``, ``epoch_from``), documented in docs/methods.md and tested
both ways in tests/distill/test_bss_reference.py. One departure is not an option: a batch with a
single boundary sample is skipped when the student's BatchNorm cannot take a batch of one (a
1×1 map in train mode), where the reference would stop with an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from compress.distill.base import METHODS, Distiller, MethodSpec


@dataclass
class BSSSettings:
    """BSS's settings (the reference code's values by default).

    Attributes:
        temperature: T of both KD terms (3).
        ce_weight: weight of the cross-entropy on labels (1).
        kd_start: KD weight at the start (4), falling linearly to `kd_end` (1).
        kd_end: KD weight at the end.
        bss_start: BSS weight at the start (2), reaching 0 at `bss_until` of the run.
        bss_until: fraction of the run after which the BSS term is off (0.75).
        steps: attack steps (10).
        step_size: the step factor α (0.3).
        max_samples: boundary samples per batch at most (64).
        target: ``sample`` (the reference: a class drawn from the teacher's probabilities over
            the non-top-1 classes) or ``runner_up`` (always the teacher's second class).
        step_rule: ``margin`` (the reference: each step is α·(margin + 1e-4) along the unit
            gradient) or ``fixed`` (each step has L2 length α).
        clamp: clamp adversarial images to [−clamp, clamp] in normalised units (2.5; ``null``:
            no clamp).
        stop: ``top1`` (the reference: an image stops once the teacher's top-1 leaves its
            class) or ``margin`` (once the target's logit reaches the true class's).
        select: with more than `max_samples` candidates, ``score`` (the reference: the largest
            distillation score) or ``first`` (the first ones in the batch).
        t_squared: multiply both KD terms by T² (Hinton's scaling; the reference does not).
        epoch_from: the epoch number of the first epoch in the weight schedules (1, as the
            reference counts; 0 runs them one epoch earlier).
    """

    temperature: float = 3.0
    ce_weight: float = 1.0
    kd_start: float = 4.0
    kd_end: float = 1.0
    bss_start: float = 2.0
    bss_until: float = 0.75
    steps: int = 10
    step_size: float = 0.3
    max_samples: int = 64
    target: Literal["sample", "runner_up"] = "sample"
    step_rule: Literal["margin", "fixed"] = "margin"
    clamp: float | None = 2.5
    stop: Literal["top1", "margin"] = "top1"
    select: Literal["score", "first"] = "score"
    t_squared: bool = False
    epoch_from: int = 1

    def __post_init__(self) -> None:
        if self.steps < 1 or self.max_samples < 1:
            raise ValueError("bss steps and max_samples must be ≥ 1")
        if not 0 < self.bss_until <= 1:
            raise ValueError(f"bss_until must be in (0, 1], got {self.bss_until}")
        if self.epoch_from not in (0, 1):
            raise ValueError(f"epoch_from must be 0 or 1, got {self.epoch_from}")


def soft_cross_entropy(logits_s: torch.Tensor, logits_t: torch.Tensor, t: float) -> torch.Tensor:
    """``−Σ_c p_T^T log p_S^T`` averaged over the batch (the reference's KD term; no T²)."""
    p_t = F.softmax(logits_t.detach() / t, dim=1)
    return -(p_t * F.log_softmax(logits_s / t, dim=1)).sum() / logits_s.shape[0]


def weights(settings: BSSSettings, epoch: int, epochs: int) -> tuple[float, float]:
    """The KD and BSS weights of 0-based `epoch` of `epochs` (the reference's schedules)."""
    s = settings
    e = (epoch + s.epoch_from) / max(1, epochs)
    kd = s.kd_end + (s.kd_start - s.kd_end) * max(0.0, 1.0 - e)
    bss = s.bss_start * max(0.0, 1.0 - e / s.bss_until)
    return kd, bss


def select_samples(
    logits_t: torch.Tensor, logits_s: torch.Tensor, y: torch.Tensor, settings: BSSSettings
) -> torch.Tensor:
    """Indices of the images to attack: both networks right, at most `max_samples` of them."""
    right = (logits_t.argmax(1) == y) & (logits_s.argmax(1) == y)
    idx = right.nonzero().flatten()
    if len(idx) <= settings.max_samples:
        return idx
    if settings.select == "first":
        return idx[: settings.max_samples]
    diff = (F.softmax(logits_t[idx], 1) - F.softmax(logits_s[idx], 1)) ** 2
    score = diff.sum(1) - diff.gather(1, y[idx, None]).squeeze(1)
    return idx[score.sort(descending=True)[1][: settings.max_samples]]


def target_classes(logits_t: torch.Tensor, settings: BSSSettings) -> torch.Tensor:
    """The class each image is pushed toward: sampled from the non-top-1 probabilities, or the runner-up."""
    scores, classes = F.softmax(logits_t, 1).sort(dim=1, descending=True)
    scores, classes = scores[:, 1:], classes[:, 1:]
    if settings.target == "runner_up":
        return classes[:, 0]
    draw = scores.sum(1, keepdim=True) * torch.rand(
        len(scores), 1, dtype=scores.dtype, device=scores.device
    )
    first = (scores.cumsum(1) >= draw).float().argmax(1)  # all False → 0, the runner-up
    return classes.gather(1, first[:, None]).squeeze(1)


def boundary_samples(
    teacher: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, settings: BSSSettings
) -> torch.Tensor:
    """The reference's targeted L2 attack on the teacher, image by image (see the module)."""
    s = settings
    adv = x.detach().clone()
    gt: torch.Tensor | None = None
    view = (-1,) + (1,) * (x.dim() - 1)
    for _ in range(s.steps):
        adv.requires_grad_(True)
        out = teacher(adv)
        if gt is None:
            gt = out.detach().argmax(1)  # the class each image starts in
        s_gt = out.gather(1, gt[:, None]).squeeze(1)
        s_t = out.gather(1, target[:, None]).squeeze(1)
        (grad,) = torch.autograd.grad((s_t - s_gt).sum(), adv)
        margin = (s_gt - s_t).detach()
        active = out.detach().argmax(1) == gt if s.stop == "top1" else margin > 0
        if not bool(active.any()):
            break
        unit = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-30).view(view)
        size = torch.full_like(s_gt, s.step_size)
        if s.step_rule == "margin":
            size = s.step_size * (margin + 1e-4)
        adv = adv.detach() + (size * active).view(view) * unit
        if s.clamp is not None:
            adv = adv.clamp(-s.clamp, s.clamp)
    return adv.detach()


class BSS(Distiller):
    """KD on the clean batch and on boundary-supporting samples."""

    def __init__(self, student, teacher, settings: BSSSettings) -> None:
        super().__init__(student, teacher)
        self.s = settings
        self.kd_weight, self.bss_weight = weights(settings, 0, 1)

    def on_epoch_start(self, epoch: int, epochs: int) -> None:  # noqa: D102
        self.kd_weight, self.bss_weight = weights(self.s, epoch, epochs)

    def _kd(self, logits_s: torch.Tensor, logits_t: torch.Tensor) -> torch.Tensor:
        t = self.s.temperature
        return soft_cross_entropy(logits_s, logits_t, t) * (t * t if self.s.t_squared else 1.0)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: D102
        s = self.s
        logits = self.model(x)
        teacher_logits = self.teacher_logits(x)
        ce = F.cross_entropy(logits, y)
        kd = self._kd(logits, teacher_logits)
        loss = s.ce_weight * ce + self.kd_weight * kd
        out = {"logits": logits, "ce": ce.detach(), "kd": kd.detach()}
        if self.bss_weight > 0 and self.training:
            idx = select_samples(teacher_logits, logits.detach(), y, s)
            if len(idx):
                target = target_classes(teacher_logits[idx], s)
                with torch.enable_grad():
                    adv = boundary_samples(self.teacher, x[idx], target, s)
                try:
                    adv_student = self.model(adv)
                except ValueError as exc:  # BatchNorm in train mode on one value per channel
                    if "more than 1 value per channel" not in str(exc):
                        raise
                    return {"loss": loss, **out}
                bss = self._kd(adv_student, self.teacher_logits(adv))
                loss = loss + self.bss_weight * bss
                out["bss"] = bss.detach()
        return {"loss": loss, **out}


METHODS.add(
    "bss",
    MethodSpec(
        BSSSettings,
        lambda st, te, s, ctx: BSS(st, te, s),
        summary="BSS: KD plus KD on adversarial samples near the teacher's decision boundary",
    ),
)
