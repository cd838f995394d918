"""Validation gates with statistics: a verdict that says how much its images can show.

An export's accuracy is measured on N real images, so its accuracy drop and its top-1
agreement with PyTorch are estimates. Each gate here gives one of three verdicts:

* **failed**: the images show, with 95 % confidence, that the export is worse than the
  tolerance (the lower confidence bound of the drop is above it, or the upper bound of the
  agreement is below the minimum), or a deterministic check failed (NaN outputs, logit error
  beyond the precision's bound, a wrong weight count);
* **inconclusive**: N images are too few to resolve the tolerance at all (even with no image
  lost, the 95 % bound on the drop would exceed it), or the measured value is beyond the
  tolerance but not significantly so; the export is kept, nothing is claimed;
* **passed**: otherwise — the measured drop and agreement are within tolerance on enough
  images to resolve it.

Bounds are Clopper–Pearson (exact binomial). The drop of paired classifications is
``(b − c) / N`` — b images PyTorch gets right and the export wrong, c the reverse — and its
bounds combine one bound of each rate at 2.5 % (Bonferroni), which is conservative. A
precision whose logits are bounded by a deterministic error check (fp32, fp16) is judged by
that check; its accuracy figures can then only fail, when significantly beyond tolerance. INT8
has no such bound, so its accuracy gate needs enough images (`images_needed`).

The same `judge` is used by export validation, by ``compress benchmark`` (which exports) and by
``--auto-precision`` (whose tries pass or fail by it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

#: One-sided level of every bound (95 % confidence).
ALPHA = 0.05

Status = Literal["passed", "failed", "inconclusive"]


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b) for a, b > 0, 0 ≤ x ≤ 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def _beta_quantile(q: float, a: float, b: float) -> float:
    """The x with I_x(a, b) = q, by bisection (monotone in x; 100 halvings reach float precision)."""
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if betainc(a, b, mid) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def rate_bounds(k: int, n: int, alpha: float = ALPHA) -> tuple[float, float]:
    """One-sided Clopper–Pearson bounds of a rate from `k` events in `n` trials.

    Returns:
        ``(lower, upper)``: each holds with probability 1 − `alpha` on its own side.
    """
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ValueError(f"k must be in [0, n], got k={k}, n={n}")
    lower = 0.0 if k == 0 else _beta_quantile(alpha, k, n - k + 1)
    upper = 1.0 if k == n else _beta_quantile(1 - alpha, k + 1, n - k)
    return lower, upper


def images_needed(tolerance: float, alpha: float = ALPHA) -> int:
    """The fewest images on which a drop of `tolerance` can be resolved at all.

    With no image lost on N images, the upper bound of the loss rate is 1 − α^(1/N) (the "rule
    of three" for α = 5 %); it is below `tolerance` from N = ln α / ln(1 − tolerance) on.
    """
    if tolerance <= 0:
        return 1 << 62
    if tolerance >= 1:
        return 1
    return math.ceil(math.log(alpha) / math.log1p(-tolerance) - 1e-9)


@dataclass
class Verdict:
    """A gate's verdict on one export.

    Attributes:
        status: ``passed``, ``failed`` or ``inconclusive``.
        failures: why it failed (empty unless failed).
        doubts: why it is inconclusive (empty unless inconclusive).
        bounds: the 95 % confidence bounds behind it: ``drop`` and ``agreement`` as
            ``[lower, upper]``, and ``images_needed`` to resolve the drop tolerance.
    """

    status: Status
    failures: list[str] = field(default_factory=list)
    doubts: list[str] = field(default_factory=list)
    bounds: dict[str, object] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether the export passed."""
        return self.status == "passed"


def judge(
    *,
    images: int,
    disagreements: int,
    lost: int,
    gained: int,
    min_agreement: float,
    max_drop: float,
    judged_by: Literal["logits", "accuracy"],
    deterministic_failures: list[str] | None = None,
) -> Verdict:
    """The verdict of an accuracy gate on `images` paired classifications.

    Args:
        images: N, the validation images.
        disagreements: images whose top-1 differs between PyTorch and the export.
        lost: images PyTorch classifies right and the export wrong (b).
        gained: images PyTorch classifies wrong and the export right (c).
        min_agreement: the least top-1 agreement tolerated (0–1).
        max_drop: the largest accuracy drop tolerated (0–1).
        judged_by: ``logits`` when a deterministic logit-error check governs (fp32, fp16): the
            accuracy figures then only fail when significant; ``accuracy`` (INT8) when they are
            the gate, so `images` must be enough to resolve `max_drop`.
        deterministic_failures: failures of the exact checks (NaN, logit error, weights).
    """
    n = images
    failures = list(deterministic_failures or [])
    doubts: list[str] = []
    slack = 1e-9  # a value exactly at the tolerance is within it (0.78 − 0.77 is 0.01000…01)
    b_lo, b_hi = rate_bounds(lost, n, ALPHA / 2)
    c_lo, c_hi = rate_bounds(gained, n, ALPHA / 2)
    drop = (lost - gained) / n if n else 0.0
    drop_bounds = [b_lo - c_hi, b_hi - c_lo]
    d_lo, d_hi = rate_bounds(disagreements, n)
    agree = 1 - disagreements / n if n else 0.0
    agree_bounds = [1 - d_hi, 1 - d_lo]
    needed = images_needed(max_drop)
    bounds: dict[str, object] = {
        "confidence": 1 - ALPHA,
        "drop": drop_bounds,
        "agreement": agree_bounds,
        "images_needed": needed,
    }
    if drop_bounds[0] > max_drop + slack:
        failures.append(
            f"accuracy drop {100 * drop:.2f} points on {n:,} images, at least "
            f"{100 * drop_bounds[0]:.2f} with 95 % confidence (> {100 * max_drop:.1f})"
        )
    if agree_bounds[1] < min_agreement - slack:
        failures.append(
            f"top-1 agreement {100 * agree:.2f}% on {n:,} images, at most "
            f"{100 * agree_bounds[1]:.2f}% with 95 % confidence (< {100 * min_agreement:.1f}%)"
        )
    if failures:
        return Verdict("failed", failures, [], bounds)
    if judged_by == "accuracy" and n < needed:
        doubts.append(
            f"{n:,} images are too few to detect a {100 * max_drop:g}-point drop (one image is "
            f"{100 / max(1, n):.2f} points; at least {needed:,} are needed): pass more validation "
            "images (--set validate_images=N) or more data"
        )
    elif drop > max_drop + slack:
        doubts.append(
            f"accuracy drop {100 * drop:.2f} points (> {100 * max_drop:.1f}) on {n:,} images is "
            f"not significant (95 % bounds {100 * drop_bounds[0]:.2f} to {100 * drop_bounds[1]:.2f}): "
            "pass more validation images (--set validate_images=N) or more data"
        )
    if agree < min_agreement - slack and not doubts:
        doubts.append(
            f"top-1 agreement {100 * agree:.2f}% (< {100 * min_agreement:.1f}%) on {n:,} images is "
            f"not significant (95 % bounds {100 * agree_bounds[0]:.2f} to "
            f"{100 * agree_bounds[1]:.2f}%): pass more validation images"
        )
    if doubts and judged_by == "accuracy":
        return Verdict("inconclusive", [], doubts, bounds)
    if doubts:  # bounded logits: figures beyond tolerance but not significant are reported only
        bounds["note"] = doubts
    return Verdict("passed", [], [], bounds)
