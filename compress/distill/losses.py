"""Distillation losses as pure functions of logits (and labels).

Method classes only select inputs and weight these terms. Each function is checked against a
numpy/scipy reference in ``tests/distill/test_losses.py``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F

EPS = 1e-8


# --------------------------------------------------------------------------- KL family


def kd_loss(logits_s: torch.Tensor, logits_t: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton's KD: ``T² · KL(p_t^T ‖ p_s^T)``, averaged over the batch."""
    log_p_s = F.log_softmax(logits_s / temperature, dim=1)
    p_t = F.softmax(logits_t / temperature, dim=1)
    return F.kl_div(log_p_s, p_t, reduction="none").sum(1).mean() * temperature**2


def binary_kl(log_p_s: torch.Tensor, log_p_t: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Σ over rows of KL(b_t ‖ b_s), b = (p[target], 1 − p[target]), from log-probabilities."""

    def binary(log_p: torch.Tensor) -> torch.Tensor:
        target = log_p.masked_fill(~gt, float("-inf")).logsumexp(1)
        others = log_p.masked_fill(gt, float("-inf")).logsumexp(1)
        return torch.stack([target, others], dim=1)

    b_s, b_t = binary(log_p_s), binary(log_p_t)
    return F.kl_div(b_s, b_t, reduction="sum", log_target=True)


def dkd_loss(
    logits_s: torch.Tensor,
    logits_t: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: float,
    beta: float,
    temperature: float,
) -> torch.Tensor:
    """Decoupled KD (Zhao et al. 2022): ``α·TCKD + β·NCKD``.

    TCKD is the KL between the binary (target, non-target) probabilities; NCKD the KL between
    the distributions over the non-target classes alone. Both are scaled by ``T²``. NCKD is
    mdistiller's formula as written (the target logit pushed down by 1000 before the softmax).
    TCKD is mdistiller's value, computed in log space: the binary log-probabilities come from
    ``log_softmax`` and a log-sum-exp over the non-target classes, where mdistiller takes
    ``log`` of summed probabilities. Where mdistiller's value is finite the two agree; where a
    student probability underflows in float32 (large logits) mdistiller's is infinite and this
    one stays finite and exact. No clamp changes the loss.
    """
    gt = F.one_hot(target, logits_s.shape[1]).bool()
    tckd = (
        binary_kl(
            F.log_softmax(logits_s / temperature, dim=1),
            F.log_softmax(logits_t / temperature, dim=1),
            gt,
        )
        / target.shape[0]
    )
    masked_s = F.log_softmax(logits_s / temperature - 1000.0 * gt, dim=1)
    masked_t = F.softmax(logits_t / temperature - 1000.0 * gt, dim=1)
    nckd = F.kl_div(masked_s, masked_t, reduction="sum") / target.shape[0]
    return (alpha * tckd + beta * nckd) * temperature**2


# --------------------------------------------------------------------------- correlations


def row_correlation(a: torch.Tensor, b: torch.Tensor, *, centered: bool) -> torch.Tensor:
    """Per-row correlation of two (N, D) tensors.

    ``centered=True`` is Pearson's r; ``False`` is the uncentred correlation (plain cosine), the
    form R2KD's released code uses.
    """
    if centered:
        a = a - a.mean(1, keepdim=True)
        b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + EPS)


def inter_intra_distance(
    p_s: torch.Tensor, p_t: torch.Tensor, *, centered: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(1 − mean_i corr(p_s[i,:], p_t[i,:]), 1 − mean_c corr(p_s[:,c], p_t[:,c]))``.

    The first compares each sample across classes (inter-class), the second each class across
    the batch (intra-class).
    """
    inter = 1 - row_correlation(p_s, p_t, centered=centered).mean()
    intra = 1 - row_correlation(p_s.t(), p_t.t(), centered=centered).mean()
    return inter, intra


def dist_loss(
    logits_s: torch.Tensor,
    logits_t: torch.Tensor,
    temperature: float,
    *,
    beta: float = 1.0,
    gamma: float = 1.0,
) -> torch.Tensor:
    """DIST (Huang et al. 2022): ``T²·(β·(1 − Pearson_inter) + γ·(1 − Pearson_intra))``."""
    p_s = F.softmax(logits_s / temperature, dim=1)
    p_t = F.softmax(logits_t / temperature, dim=1)
    inter, intra = inter_intra_distance(p_s, p_t, centered=True)
    return temperature**2 * (beta * inter + gamma * intra)


def correlation_value_loss(
    logits_s: torch.Tensor, logits_t: torch.Tensor, temperature: float, *, centered: bool = False
) -> torch.Tensor:
    """R2KD's value term without its weight: ``T²·(d_inter + d_intra)`` on probabilities."""
    p_s = F.softmax(logits_s / temperature, dim=1)
    p_t = F.softmax(logits_t / temperature, dim=1)
    inter, intra = inter_intra_distance(p_s, p_t, centered=centered)
    return temperature**2 * (inter + intra)


# --------------------------------------------------------------------------- ranks


def hard_rank(x: torch.Tensor) -> torch.Tensor:
    """1-based ranks along dim 1 by double ``argsort`` (ties broken by position; no gradient)."""
    return (
        x.argsort(dim=1).argsort(dim=1).to(x.dtype if x.is_floating_point() else torch.float32) + 1
    )


class _PairwiseSoftRank(torch.autograd.Function):
    """``r_i = ½ + Σ_j σ((x_i − x_j)/τ)`` along dim 1, chunked over j in both passes.

    Only the input is saved for backward, which recomputes the chunks, so memory stays
    O(B·C) plus one (B, C, chunk) work tensor, never a B×C×C tensor.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, tau: float, chunk: int) -> torch.Tensor:  # type: ignore[override]
        r = torch.full_like(x, 0.5)
        for j in range(0, x.shape[1], chunk):
            r += torch.sigmoid((x[:, :, None] - x[:, None, j : j + chunk]) / tau).sum(-1)
        ctx.save_for_backward(x)
        ctx.tau, ctx.chunk = tau, chunk
        return r

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        tau, chunk = ctx.tau, ctx.chunk
        out = torch.zeros_like(x)
        # ∂L/∂x_k = (1/τ) Σ_j σ'((x_k − x_j)/τ) · (g_k − g_j)   (σ' is even)
        for j in range(0, x.shape[1], chunk):
            s = torch.sigmoid((x[:, :, None] - x[:, None, j : j + chunk]) / tau)
            out += (s * (1 - s) * (grad[:, :, None] - grad[:, None, j : j + chunk])).sum(-1)
        return out / tau, None, None


def soft_rank(x: torch.Tensor, strength: float = 0.1, *, max_work: int = 1 << 22) -> torch.Tensor:
    """Differentiable 1-based ranks along dim 1 (pairwise-sigmoid relaxation).

    As ``strength → 0`` it approaches `hard_rank` (for distinct values). Cost is O(B·C²)
    arithmetic but O(B·C) memory: pairs are processed in chunks of at most `max_work`
    elements, and backward recomputes them instead of storing them.

    Args:
        x: (B, C) scores.
        strength: the sigmoid temperature τ, in the units of `x`.
        max_work: the largest (B, C, chunk) block built at once.
    """
    if strength <= 0:
        raise ValueError(f"soft-rank strength must be > 0, got {strength}")
    b, c = x.shape
    chunk = max(1, min(c, max_work // max(1, b * c)))
    return _PairwiseSoftRank.apply(x, float(strength), chunk)


def _isotonic_decreasing(rows: Any) -> tuple[Any, Any]:
    """Per row, the decreasing isotonic regression of `rows` (numpy float64, (B, C)).

    Returns ``(solution, block ids)``: the fitted values and, per element, the index of the
    block (run of equal fitted values) it was pooled into. SciPy's pool-adjacent-violators
    (``scipy.optimize.isotonic_regression``, C++, O(C)) does the work.
    """
    import numpy as np
    from scipy.optimize import isotonic_regression

    solution = np.empty_like(rows)
    blocks = np.empty(rows.shape, dtype=np.int64)
    for i, row in enumerate(rows):
        fit = isotonic_regression(row, increasing=False)
        solution[i] = fit.x
        starts = fit.blocks[:-1]
        ids = np.zeros(len(row), dtype=np.int64)
        ids[starts[1:]] = 1
        blocks[i] = np.cumsum(ids)
    return solution, blocks


class _PermutahedronRank(torch.autograd.Function):
    """Blondel et al.'s soft rank: the projection of ``x / ε`` onto the permutahedron of (C, …, 1).

    ``P(z) = z − v_{σ⁻¹}`` with σ the descending sort of z and v the decreasing isotonic
    regression of ``z_σ − (C, …, 1)``. Backward: the isotonic solution's Jacobian averages
    within each block, so ``∂L/∂z = g − unsort(block-mean(sort(g)))``. O(C log C) time (the
    sort), O(B·C) memory.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, strength: float) -> torch.Tensor:  # type: ignore[override]
        c = x.shape[1]
        z = x / strength
        order = z.argsort(dim=1, descending=True)
        w = torch.arange(c, 0, -1, dtype=z.dtype, device=z.device)
        s = z.gather(1, order) - w
        fit, blocks = _isotonic_decreasing(s.detach().double().cpu().numpy())
        v = torch.as_tensor(fit, dtype=z.dtype, device=z.device)
        ids = torch.as_tensor(blocks, device=z.device)
        out = torch.empty_like(z).scatter_(1, order, z.gather(1, order) - v)
        ctx.save_for_backward(order, ids)
        ctx.strength = strength
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        order, ids = ctx.saved_tensors
        g_sorted = grad.gather(1, order)
        sums = torch.zeros_like(g_sorted).scatter_add_(1, ids, g_sorted)
        counts = torch.zeros_like(g_sorted).scatter_add_(1, ids, torch.ones_like(g_sorted))
        pooled = (sums / counts.clamp_min(1)).gather(1, ids)
        back = torch.empty_like(grad).scatter_(1, order, g_sorted - pooled)
        return back / ctx.strength, None


def soft_rank_permutahedron(x: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """Differentiable 1-based ranks along dim 1: Blondel et al. (ICML 2020), O(C log C).

    As ``strength → 0`` the ranks are exactly `hard_rank`'s (for distinct values); as it grows
    they all approach the mean rank (C + 1) / 2. On a GPU the isotonic regression (a few µs a
    row) runs on the host: one copy of the (B, C) scores a step.

    Args:
        x: (B, C) scores.
        strength: ε, the regularisation, in the units of `x`.
    """
    if strength <= 0:
        raise ValueError(f"soft-rank strength must be > 0, got {strength}")
    return _PermutahedronRank.apply(x, float(strength))


def _standardize(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(1, keepdim=True)) / (x.std(1, keepdim=True) + EPS)


def spearman_rank_loss(
    logits_s: torch.Tensor,
    logits_t: torch.Tensor,
    temperature: float,
    *,
    rank: Literal["hard", "soft"] = "soft",
    strength: float = 0.1,
    method: Literal["permutahedron", "pairwise"] = "permutahedron",
    pool: float = 1.0,
) -> torch.Tensor:
    """R2KD's rank term without its weight: ``1 − mean_i spearman(p_s[i,:], p_t[i,:])``.

    ``rank="hard"`` ranks both sides by double argsort, exactly as the released code. Integer
    ranks carry no gradient, so this term is then a constant that trains nothing. ``"soft"``
    ranks the student differentiably (on its log-probabilities, standardised per row so the
    strength does not depend on the temperature or the logit scale) against the teacher's
    exact ranks, so the term has a gradient: ``method="permutahedron"`` (the default) with
    `soft_rank_permutahedron`, its ε `pool` × the row's mean spacing; ``"pairwise"`` with
    `soft_rank` at temperature `strength`.
    """
    if rank == "hard":
        p_s = F.softmax(logits_s / temperature, dim=1)
        p_t = F.softmax(logits_t / temperature, dim=1)
        r_s, r_t = hard_rank(p_s), hard_rank(p_t)
    elif rank == "soft":
        x = _standardize(F.log_softmax(logits_s / temperature, dim=1))
        if method == "permutahedron":
            spacing = (x.max(1, keepdim=True).values - x.min(1, keepdim=True).values).detach()
            spacing = (spacing / max(1, x.shape[1] - 1)).clamp_min(EPS)
            r_s = soft_rank_permutahedron(x / spacing, pool)
        elif method == "pairwise":
            r_s = soft_rank(x, strength)
        else:
            raise ValueError(
                f"soft-rank method must be 'permutahedron' or 'pairwise', not {method!r}"
            )
        r_t = hard_rank(logits_t.detach())
    else:
        raise ValueError(f"rank must be 'hard' or 'soft', got {rank!r}")
    return 1 - row_correlation(r_s, r_t.to(r_s.dtype), centered=True).mean()
