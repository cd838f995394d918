"""Every KD method equals its reference code on identical inputs: loss and gradient, in float64.

The references are written here, in the test, from the code each method's docstring names
(mdistiller's ``distillers/*.py`` for KD, DKD, AT, SP, RKD, FitNet; the DIST authors'
``DIST`` loss; DML's paper, K = 2; the R2KD authors' ``R2KD.py``) in their own step order with
plain tensor operations. BSS and FSP have their own files (test_bss_reference.py,
test_fsp_reference.py). Each test builds the method exactly as ``compress distill`` does
(`MethodSpec.build` with the method's default settings) and compares.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import compress
from compress.config import build
from compress.distill.base import DistillContext
from compress.distill.config import DistillConfig
from compress.distill.features import embedding_of, stages_of
from compress.distill.methods import METHODS
from compress.models.features import FeatureHooks


class _Info:
    name, num_classes, in_channels, input_size = "x", 10, 3, (32, 32)
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def setup(method, args=None, student="resnet8", teacher="resnet14"):
    torch.manual_seed(0)
    s = compress.create_model(student, num_classes=10).train()
    t = compress.create_model(teacher, num_classes=10).eval()
    ctx = DistillContext(info=_Info(), device=torch.device("cpu"), log=lambda _m: None)
    settings = build(DistillConfig, {"method": method, "method_args": args or {}}).settings()
    task = METHODS.get(method).build(s, t, settings, ctx).double().train()
    torch.manual_seed(1)
    x = torch.randn(12, 3, 32, 32, dtype=torch.float64)
    y = torch.randint(0, 10, (12,))
    return task, s, t, x, y


def compare(task, student, reference, x, y):
    """The largest difference of our loss and gradient (all trainable parameters) from
    `reference()`'s, each relative to the reference's size (0 where they are equal)."""
    params = list(task.trainable_parameters())
    state = {k: v.clone() for k, v in task.state_dict().items()}
    ours = task(x, y)["loss"]
    g_ours = torch.autograd.grad(ours, params, allow_unused=True)
    task.load_state_dict(state)  # the reference starts from the same BatchNorm statistics
    theirs = reference()
    g_theirs = torch.autograd.grad(theirs, params, allow_unused=True)
    worst = abs(float(ours) - float(theirs)) / max(abs(float(theirs)), 1e-12)
    for a, b in zip(g_ours, g_theirs):
        if a is None and b is None:
            continue
        if a is None or b is None:  # unused on one side: the other's gradient must be zero
            worst = max(worst, float((a if b is None else b).abs().max()))
            continue
        scale = float(b.abs().max()) or 1.0
        worst = max(worst, float((a - b).abs().max()) / scale)
    return worst


#: float64 on identical inputs: equal up to rounding
EQUAL = 1e-8


def features(net, names, x, inputs=False):
    with FeatureHooks(net, names, inputs=inputs) as hooks:
        logits = net(x)
        return logits, [hooks.features[n] for n in names]


def ref_kd(z_s, z_t, t):  # mdistiller kd_loss
    log_p = F.log_softmax(z_s / t, dim=1)
    p_t = F.softmax(z_t / t, dim=1)
    return F.kl_div(log_p, p_t, reduction="none").sum(1).mean() * t**2


def test_kd():
    task, s, t, x, y = setup("kd")

    def ref():
        z_s = s(x)
        with torch.no_grad():
            z_t = t(x)
        return 0.1 * F.cross_entropy(z_s, y) + 0.9 * ref_kd(z_s, z_t, 4.0)

    assert compare(task, s, ref, x, y) <= EQUAL


def test_dist():
    task, s, t, x, y = setup("dist")

    def pearson(a, b, eps=1e-8):  # the DIST authors' code
        a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
        return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)

    def ref():
        z_s = s(x)
        with torch.no_grad():
            z_t = t(x)
        y_s, y_t = (z_s / 4).softmax(1), (z_t / 4).softmax(1)
        inter = 16 * (1 - pearson(y_s, y_t).mean())
        intra = 16 * (1 - pearson(y_s.t(), y_t.t()).mean())
        return F.cross_entropy(z_s, y) + 2.0 * (inter + intra)

    assert compare(task, s, ref, x, y) <= EQUAL


@pytest.mark.parametrize("epoch", [0, 25])
def test_dkd(epoch):
    task, s, t, x, y = setup("dkd")
    task.on_epoch_start(epoch, 240)

    def ref():  # mdistiller dkd_loss, warm-up min(epoch / 20, 1) with epochs from 1
        z_s = s(x)
        with torch.no_grad():
            z_t = t(x)
        gt = torch.zeros_like(z_s).scatter_(1, y[:, None], 1).bool()
        other = ~gt
        p_s, p_t = F.softmax(z_s / 4, 1), F.softmax(z_t / 4, 1)

        def cat(p):
            return torch.cat([(p * gt).sum(1, keepdim=True), (p * other).sum(1, keepdim=True)], 1)

        tckd = F.kl_div(torch.log(cat(p_s)), cat(p_t), reduction="sum") * 16 / len(y)
        nckd = (
            F.kl_div(
                F.log_softmax(z_s / 4 - 1000.0 * gt, 1),
                F.softmax(z_t / 4 - 1000.0 * gt, 1),
                reduction="sum",
            )
            * 16
            / len(y)
        )
        return F.cross_entropy(z_s, y) + min((epoch + 1) / 20, 1.0) * (1.0 * tckd + 8.0 * nckd)

    assert compare(task, s, ref, x, y) <= EQUAL


def test_at():
    task, s, t, x, y = setup("at")
    names_s, names_t = stages_of(s, "s"), stages_of(t, "t")

    def at(f):  # mdistiller single_stage_at_loss's _at, p = 2
        return F.normalize(f.pow(2).mean(1).reshape(f.size(0), -1))

    def ref():
        z_s, f_s = features(s, names_s, x)
        with torch.no_grad():
            _, f_t = features(t, names_t, x)
        loss = sum((at(a) - at(b)).pow(2).mean() for a, b in zip(f_s, f_t))
        return F.cross_entropy(z_s, y) + 1000.0 * loss

    assert compare(task, s, ref, x, y) <= EQUAL


def test_sp():
    task, s, t, x, y = setup("sp")
    names_s, names_t = stages_of(s, "s")[-1:], stages_of(t, "t")[-1:]

    def ref():  # mdistiller similarity_loss on the last stage
        z_s, (f_s,) = features(s, names_s, x)
        with torch.no_grad():
            _, (f_t,) = features(t, names_t, x)
        b = f_s.shape[0]
        g_s = F.normalize(f_s.view(b, -1) @ f_s.view(b, -1).t())
        g_t = F.normalize(f_t.view(b, -1) @ f_t.view(b, -1).t())
        return F.cross_entropy(z_s, y) + 3000.0 * ((g_t - g_s) ** 2).sum() / (b * b)

    assert compare(task, s, ref, x, y) <= EQUAL


def _pdist(e, eps=1e-12):
    sq = e.pow(2).sum(1)
    res = (sq[:, None] + sq[None, :] - 2 * e @ e.t()).clamp(min=eps).sqrt().clone()
    res[range(len(e)), range(len(e))] = 0
    return res


def ref_rkd(stu, tea, wd, wa):  # mdistiller rkd_loss
    with torch.no_grad():
        t_d = _pdist(tea)
        t_d = t_d / t_d[t_d > 0].mean()
    d = _pdist(stu)
    d = d / d[d > 0].mean()
    loss_d = F.smooth_l1_loss(d, t_d)
    with torch.no_grad():
        td = F.normalize(tea.unsqueeze(0) - tea.unsqueeze(1), p=2, dim=2)
        t_angle = torch.bmm(td, td.transpose(1, 2)).view(-1)
    sd = F.normalize(stu.unsqueeze(0) - stu.unsqueeze(1), p=2, dim=2)
    loss_a = F.smooth_l1_loss(torch.bmm(sd, sd.transpose(1, 2)).view(-1), t_angle)
    return wd * loss_d + wa * loss_a


@pytest.mark.parametrize("method,wd,wa", [("rkd-d", 25, 0), ("rkd-a", 0, 50), ("rkd-da", 25, 50)])
def test_rkd(method, wd, wa):
    task, s, t, x, y = setup(method)
    e_s, e_t = embedding_of(s, "s"), embedding_of(t, "t")

    def ref():
        z_s, (f_s,) = features(s, (e_s,), x, inputs=True)
        with torch.no_grad():
            _, (f_t,) = features(t, (e_t,), x, inputs=True)
        return F.cross_entropy(z_s, y) + ref_rkd(f_s.flatten(1), f_t.flatten(1), wd, wa)

    assert compare(task, s, ref, x, y) <= EQUAL


@pytest.mark.parametrize("student,teacher", [("resnet8", "resnet14"), ("resnet8", "resnet8x4")])
def test_fitnet(student, teacher):
    task, s, t, x, y = setup("fitnet", student=student, teacher=teacher)
    mid_s, mid_t = stages_of(s, "s")[1], stages_of(t, "t")[1]
    reg = task.regressor  # mdistiller's ConvReg of these shapes: trained, so taken as is

    def ref():
        z_s, (f_s,) = features(s, (mid_s,), x)
        with torch.no_grad():
            _, (f_t,) = features(t, (mid_t,), x)
        return F.cross_entropy(z_s, y) + 100.0 * F.mse_loss(reg(f_s), f_t)

    assert compare(task, s, ref, x, y) <= EQUAL
    assert isinstance(reg[0], torch.nn.Conv2d) and reg[0].bias is not None


def test_dml_with_two_students():
    task, s, _, x, y = setup("dml")
    peer = task.peers[0]

    def ref():  # Zhang et al.: each student CE + KL(p_other ‖ p_self), the other detached, T = 1
        z1, z2 = s(x), peer(x)
        l1 = F.cross_entropy(z1, y) + F.kl_div(
            F.log_softmax(z1, 1), F.softmax(z2.detach(), 1), reduction="batchmean"
        )
        l2 = F.cross_entropy(z2, y) + F.kl_div(
            F.log_softmax(z2, 1), F.softmax(z1.detach(), 1), reduction="batchmean"
        )
        return l1 + l2

    assert compare(task, s, ref, x, y) <= EQUAL


def test_r2kd_faithful_distance_equals_the_authors_loss():
    """R2KD.py's loss on one view: α·T²·(1 − mean cos inter + 1 − mean cos intra) + β·(1 −
    mean Spearman from double-argsort ranks), against the blend of teacher and pruned copy."""
    from compress.distill.losses import hard_rank  # noqa: F401  (the same double argsort)
    from compress.distill.methods.r2kd import FAITHFUL, R2KDSettings

    task_settings = build(R2KDSettings, FAITHFUL)
    torch.manual_seed(0)
    z_s = torch.randn(16, 100, dtype=torch.float64, requires_grad=True)
    z_t, z_p = torch.randn(16, 100, dtype=torch.float64), torch.randn(16, 100, dtype=torch.float64)
    from compress.distill.methods.r2kd import R2KD

    task = R2KD.__new__(R2KD)  # only the loss: no networks needed
    torch.nn.Module.__init__(task)
    task.s = task_settings
    value, rank = task.distance(z_s, 0.7 * z_t + 0.3 * z_p)

    def authors(zs, zm, T=4.0, alpha=2.0, beta=2.0):
        ps, pm = F.softmax(zs / T, 1), F.softmax(zm / T, 1)

        def cos(a, b):
            return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-8)

        inter = 1 - cos(ps, pm).abs().mean()
        intra = 1 - cos(ps.t(), pm.t()).abs().mean()
        rs = ps.argsort(1).argsort(1).double()
        rm = pm.argsort(1).argsort(1).double()
        rs, rm = rs - rs.mean(1, keepdim=True), rm - rm.mean(1, keepdim=True)
        spear = (rs * rm).sum(1) / (rs.norm(dim=1) * rm.norm(dim=1) + 1e-8)
        return alpha * T * T * (inter + intra), beta * (1 - spear.mean())

    v_ref, r_ref = authors(z_s, 0.7 * z_t + 0.3 * z_p)
    assert float(value) == pytest.approx(float(v_ref), rel=1e-12)
    assert float(rank) == pytest.approx(float(r_ref), rel=1e-12)
    (g,) = torch.autograd.grad(value + rank, z_s)
    (g_ref,) = torch.autograd.grad(v_ref + r_ref, z_s)
    assert torch.allclose(g, g_ref, rtol=1e-10, atol=1e-14)
