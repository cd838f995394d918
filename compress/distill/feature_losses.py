"""Loss maths of the feature- and relation-based methods, as pure functions.

Each follows the reference implementation named in its docstring (RepDistiller, the CRD
repository, and mdistiller) and is tested against an independent numpy version in
``tests/distill/test_feature_losses.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-12


def match_spatial(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average-pool the spatially larger of two (N, C, H, W) maps down to the smaller's size."""
    if a.shape[-2:] == b.shape[-2:]:
        return a, b
    if a.shape[-2] * a.shape[-1] > b.shape[-2] * b.shape[-1]:
        return F.adaptive_avg_pool2d(a, b.shape[-2:]), b
    return a, F.adaptive_avg_pool2d(b, a.shape[-2:])


def hint_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """FitNet's hint: mean squared error of the (regressed) student feature and the teacher's."""
    return F.mse_loss(student, teacher)


def fsp_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The "flow" between two feature maps: ``a·bᵀ / (H·W)`` per sample, (N, C_a, C_b).

    As RepDistiller's FSP: the larger map is average-pooled to the smaller's size first.
    """
    a, b = match_spatial(a, b)
    n, ca = a.shape[:2]
    cb = b.shape[1]
    hw = a.shape[-2] * a.shape[-1]
    return torch.bmm(a.reshape(n, ca, hw), b.reshape(n, cb, hw).transpose(1, 2)) / hw


def fsp_loss(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
    """Σ over consecutive stage pairs of mean((G_s − G_t)²), G = `fsp_matrix`."""
    total = student[0].new_zeros(())
    for i in range(len(student) - 1):
        g_s = fsp_matrix(student[i], student[i + 1])
        g_t = fsp_matrix(teacher[i], teacher[i + 1])
        total = total + (g_s - g_t).pow(2).mean()
    return total


def attention_map(feature: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """Zagoruyko & Komodakis' spatial attention: mean over channels of |a|^p, L2-normalised, (N, H·W)."""
    return F.normalize(feature.abs().pow(p).mean(1).flatten(1), dim=1)


def at_loss(
    student: list[torch.Tensor], teacher: list[torch.Tensor], p: float = 2.0
) -> torch.Tensor:
    """Σ over stages of mean((A_s − A_t)²) (mdistiller's AT; maps pooled to the smaller size)."""
    total = student[0].new_zeros(())
    for s, t in zip(student, teacher):
        s, t = match_spatial(s, t)
        total = total + (attention_map(s, p) - attention_map(t, p)).pow(2).mean()
    return total


def similarity_matrix(feature: torch.Tensor) -> torch.Tensor:
    """Tung & Mori's batch similarity: ``Q·Qᵀ`` of the flattened features, rows L2-normalised."""
    q = feature.flatten(1)
    return F.normalize(q @ q.t(), dim=1)


def sp_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Similarity-preserving KD: ‖G_s − G_t‖²_F / B² (mdistiller's SP)."""
    diff = similarity_matrix(student) - similarity_matrix(teacher)
    return diff.pow(2).sum() / (student.shape[0] ** 2)


def _pairwise_distances(e: torch.Tensor) -> torch.Tensor:
    sq = e.pow(2).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2 * e @ e.t()).clamp_min(EPS)
    d = d2.sqrt()
    d = d.clone()
    d[range(len(e)), range(len(e))] = 0
    return d


def rkd_distance_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """RKD-D (Park et al. 2019): Huber loss of pairwise distances, each divided by its mean."""
    with torch.no_grad():
        t = _pairwise_distances(teacher)
        t = t / t[t > 0].mean()
    s = _pairwise_distances(student)
    s = s / s[s > 0].mean()
    return F.smooth_l1_loss(s, t)


def _angles(e: torch.Tensor) -> torch.Tensor:
    diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)  # (B, B, D): e_j − e_i
    return torch.bmm(diff, diff.transpose(1, 2)).flatten()  # cosines of every triplet angle


def rkd_angle_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """RKD-A (Park et al. 2019): Huber loss of the cosines of every triplet's angle."""
    with torch.no_grad():
        t = _angles(teacher)
    return F.smooth_l1_loss(_angles(student), t)
