"""The feature and relation losses against independent numpy versions (shapes as the zoo's)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from compress.distill import feature_losses as fl


def rnd(*shape, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape)).double()


def np_normalize(a):
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


def np_pool(a, size):  # average-pool (N, C, H, W) to size×size by equal blocks
    n, c, h, w = a.shape
    return a.reshape(n, c, size, h // size, size, w // size).mean(axis=(3, 5))


def test_attention_transfer_matches_numpy():
    s = [rnd(4, 16, 8, 8, seed=1), rnd(4, 32, 4, 4, seed=2)]
    t = [rnd(4, 64, 16, 16, seed=3), rnd(4, 128, 4, 4, seed=4)]
    expected = 0.0
    for a, b in zip(s, t):
        a, b = a.numpy(), b.numpy()
        if b.shape[-1] > a.shape[-1]:
            b = np_pool(b, a.shape[-1])
        am = np_normalize((a**2).mean(1).reshape(4, -1))
        bm = np_normalize((b**2).mean(1).reshape(4, -1))
        expected += ((am - bm) ** 2).mean()
    assert float(fl.at_loss(s, t)) == pytest.approx(expected, rel=1e-10)


def test_similarity_preserving_matches_numpy():
    s, t = rnd(6, 16, 4, 4, seed=5), rnd(6, 64, 8, 8, seed=6)

    def gram(f):
        q = f.numpy().reshape(6, -1)
        return np_normalize(q @ q.T)

    expected = ((gram(s) - gram(t)) ** 2).sum() / 36
    assert float(fl.sp_loss(s, t)) == pytest.approx(expected, rel=1e-10)


def test_fsp_matches_numpy():
    s = [rnd(3, 8, 8, 8, seed=7), rnd(3, 16, 4, 4, seed=8), rnd(3, 16, 4, 4, seed=9)]
    t = [rnd(3, 8, 8, 8, seed=10), rnd(3, 16, 4, 4, seed=11), rnd(3, 16, 4, 4, seed=12)]

    def fsp(a, b):
        a, b = a.numpy(), b.numpy()
        if a.shape[-1] > b.shape[-1]:
            a = np_pool(a, b.shape[-1])
        hw = a.shape[-1] * a.shape[-2]
        return np.einsum("nihw,njhw->nij", a, b) / hw

    expected = sum(((fsp(s[i], s[i + 1]) - fsp(t[i], t[i + 1])) ** 2).mean() for i in range(2))
    assert float(fl.fsp_loss(s, t)) == pytest.approx(expected, rel=1e-10)


def _huber(a, b):
    d = np.abs(a - b)
    return np.where(d < 1, 0.5 * d**2, d - 0.5).mean()


def test_rkd_distance_and_angle_match_numpy():
    s, t = rnd(7, 10, seed=13), rnd(7, 24, seed=14)

    def dist(e):
        e = e.numpy()
        d = np.sqrt(((e[:, None, :] - e[None, :, :]) ** 2).sum(-1))
        return d / d[d > 0].mean()

    assert float(fl.rkd_distance_loss(s, t)) == pytest.approx(_huber(dist(s), dist(t)), rel=1e-8)

    def angles(e):
        e = e.numpy()
        diff = e[None, :, :] - e[:, None, :]
        norm = diff / np.maximum(np.linalg.norm(diff, axis=2, keepdims=True), 1e-12)
        return np.einsum("ijd,ikd->ijk", norm, norm).ravel()

    assert float(fl.rkd_angle_loss(s, t)) == pytest.approx(_huber(angles(s), angles(t)), rel=1e-8)


def test_hint_is_mse():
    s, t = rnd(2, 4, 3, 3, seed=15), rnd(2, 4, 3, 3, seed=16)
    assert float(fl.hint_loss(s, t)) == pytest.approx(((s - t) ** 2).mean().item(), rel=1e-12)
