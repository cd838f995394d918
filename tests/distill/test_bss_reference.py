"""BSS equals bhheo/BSS_distillation on identical inputs: attack, sample choice, loss, gradient.

The reference functions below are written here, in the test, from the reference code
(``train_BSS_distillation.py``: ``train_attack_KD``; ``attacks/attack_BSS.py``: ``AttackBSS.run``),
in its own step order, with plain tensor operations. Every option that departs from it is
shown doing what it says.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import compress
from compress.distill.methods.bss import (
    BSS,
    BSSSettings,
    boundary_samples,
    select_samples,
    target_classes,
    weights,
)

T = 3.0


def ref_attack(net, inputs, target, num_steps=10, step_alpha=0.3):
    """AttackBSS.run (targeted, L2): the reference's loop, line for line."""
    x = inputs.clone().requires_grad_(True)
    gt = None
    input_adv = inputs
    for step in range(num_steps):
        if x.grad is not None:
            x.grad.zero_()
        output = net(x)
        if step == 0:
            gt = output.detach().max(1)[1]
        score_gt = output.gather(1, gt.unsqueeze(1))
        score_target = output.gather(1, target.unsqueeze(1))
        (score_target - score_gt).sum().backward()
        alpha = step_alpha * (gt == output.detach().max(1)[1]).double()
        alpha = alpha.unsqueeze(1).unsqueeze(1).unsqueeze(1)
        if alpha.sum() == 0:
            break
        pert = (score_gt.detach() - score_target.detach()).unsqueeze(1).unsqueeze(1)
        norm = (x.grad * x.grad).sum(dim=(1, 2, 3), keepdim=True).sqrt()
        normed_grad = alpha * (pert + 1e-4) * x.grad / norm
        step_adv = x.detach() + normed_grad
        input_adv = torch.clamp(inputs + (step_adv - inputs), -2.5, 2.5)
        x = input_adv.clone().requires_grad_(True)
    return input_adv


def ref_loss(s_net, t_net, inputs, targets, ratio, ratio_attack, attack_size=64):
    """train_attack_KD's loss for one batch (sampling with the global RNG, as there)."""
    n = inputs.shape[0]
    out_s = s_net(inputs)
    loss = F.cross_entropy(out_s, targets)
    out_t = t_net(inputs)
    loss = loss - ratio * (F.softmax(out_t / T, 1).detach() * F.log_softmax(out_s / T, 1)).sum() / n
    if ratio_attack > 0:
        cond1 = targets == out_t.sort(dim=1, descending=True)[1][:, 0]
        cond2 = targets == out_s.sort(dim=1, descending=True)[1][:, 0]
        flag = cond1 & cond2
        if flag.sum():
            idx = flag.nonzero().squeeze(1)
            if idx.shape[0] > attack_size:
                diff = (F.softmax(out_t[idx], 1).detach() - F.softmax(out_s[idx], 1).detach()) ** 2
                score = diff.sum(dim=1) - diff.gather(1, targets[idx].unsqueeze(1)).squeeze()
                idx = idx[score.sort(descending=True)[1][:attack_size]]
            attack_class = out_t.sort(dim=1, descending=True)[1][:, 1][idx].detach().clone()
            class_score, class_idx = F.softmax(out_t, 1)[idx].detach().sort(dim=1, descending=True)
            class_score, class_idx = class_score[:, 1:], class_idx[:, 1:]
            rand_seed = (
                class_score.sum(dim=1) * torch.rand([idx.shape[0]], dtype=class_score.dtype)
            ).unsqueeze(1)
            prob = class_score.cumsum(dim=1)
            for k in range(idx.shape[0]):
                for c in range(prob.shape[1]):
                    if prob[k, c] >= rand_seed[k]:
                        attack_class[k] = class_idx[k, c]
                        break
            adv = ref_attack(t_net, inputs[idx].detach(), attack_class).detach()
            a_t, a_s = t_net(adv), s_net(adv)
            loss = (
                loss
                - ratio_attack
                * (F.softmax(a_t / T, 1).detach() * F.log_softmax(a_s / T, 1)).sum()
                / adv.shape[0]
            )
    return loss


def nets(seed=0, classes=10):
    torch.manual_seed(seed)
    teacher = compress.create_model("resnet14", num_classes=classes).double().eval()
    student = compress.create_model("resnet8", num_classes=classes).double().train()
    return student, teacher


def test_the_attack_moves_every_image_as_the_reference_does():
    _, teacher = nets()
    torch.manual_seed(1)
    x = torch.randn(8, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        target = teacher(x).sort(1, descending=True)[1][:, 1]
    want = ref_attack(teacher, x, target)
    got = boundary_samples(teacher, x, target, BSSSettings())
    assert torch.allclose(got, want, atol=1e-12, rtol=0)
    moved = (got - x).flatten(1).norm(dim=1)
    assert (moved > 0).all() and got.abs().max() <= 2.5


def test_the_attack_options_do_what_they_say():
    _, teacher = nets()
    torch.manual_seed(1)
    x = torch.randn(6, 3, 32, 32, dtype=torch.float64) * 0.5
    with torch.no_grad():
        target = teacher(x).sort(1, descending=True)[1][:, 1]
    fixed = BSSSettings(step_rule="fixed", clamp=None, steps=1)
    moved = (boundary_samples(teacher, x, target, fixed) - x).flatten(1).norm(dim=1)
    assert torch.allclose(moved, torch.full_like(moved, 0.3), atol=1e-9)  # one L2 step of α
    ref = boundary_samples(teacher, x, target, BSSSettings(steps=1, clamp=None))
    with torch.no_grad():
        z = teacher(x)
    margin = z.gather(1, z.argmax(1, keepdim=True)).squeeze(1) - z.gather(
        1, target[:, None]
    ).squeeze(1)
    assert torch.allclose((ref - x).flatten(1).norm(dim=1), 0.3 * (margin + 1e-4), atol=1e-9)
    big = x * 10
    assert boundary_samples(teacher, big, target, BSSSettings(steps=1)).abs().max() <= 2.5
    assert (
        boundary_samples(teacher, big, target, BSSSettings(steps=1, clamp=None)).abs().max() > 2.5
    )


def test_target_sampling_and_sample_choice_equal_the_reference():
    torch.manual_seed(3)
    logits_t = torch.randn(100, 10, dtype=torch.float64) * 3
    logits_s = logits_t + torch.randn(100, 10, dtype=torch.float64)
    y = logits_t.argmax(1)
    s = BSSSettings()
    idx = select_samples(logits_t, logits_s, y, s)
    right = ((logits_t.argmax(1) == y) & (logits_s.argmax(1) == y)).nonzero().squeeze(1)
    assert len(right) > 64 and len(idx) == 64
    diff = (F.softmax(logits_t[right], 1) - F.softmax(logits_s[right], 1)) ** 2
    score = diff.sum(1) - diff.gather(1, y[right, None]).squeeze(1)
    assert torch.equal(idx, right[score.sort(descending=True)[1][:64]])
    assert torch.equal(
        select_samples(logits_t, logits_s, y, BSSSettings(select="first")), right[:64]
    )
    torch.manual_seed(7)
    got = target_classes(logits_t[idx], s)
    torch.manual_seed(7)
    scores, classes = F.softmax(logits_t[idx], 1).sort(dim=1, descending=True)
    seed = scores[:, 1:].sum(1) * torch.rand([64], dtype=scores.dtype)
    prob = scores[:, 1:].cumsum(1)
    want = [int(classes[k, 1:][(prob[k] >= seed[k]).nonzero()[0, 0]]) for k in range(64)]
    assert got.tolist() == want
    assert torch.equal(
        target_classes(logits_t[idx], BSSSettings(target="runner_up")), classes[:, 1]
    )


@pytest.mark.parametrize("epoch", [0, 20, 59, 79])
def test_loss_and_gradient_equal_the_reference(epoch):
    student, teacher = nets()
    torch.manual_seed(5)
    x = torch.randn(16, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        y = teacher(x).argmax(1)
    task = BSS(student, teacher, BSSSettings())
    task.train()
    task.on_epoch_start(epoch, 80)
    e = epoch + 1  # the reference counts epochs from 1
    ratio = max(3 * (1 - e / 80), 0) + 1
    ratio_attack = max(2 * (1 - 4 / 3 * e / 80), 0)
    assert (task.kd_weight, task.bss_weight) == pytest.approx((ratio, ratio_attack), abs=1e-12)
    state = {k: v.clone() for k, v in student.state_dict().items()}
    torch.manual_seed(11)
    ours = task(x, y)["loss"]
    g_ours = torch.autograd.grad(ours, list(student.parameters()))
    student.load_state_dict(state)  # the same BatchNorm statistics for the reference's pass
    torch.manual_seed(11)
    theirs = ref_loss(student, teacher, x, y, ratio, ratio_attack)
    g_theirs = torch.autograd.grad(theirs, list(student.parameters()))
    assert float(ours) == pytest.approx(float(theirs), rel=1e-12, abs=1e-12)
    for a, b in zip(g_ours, g_theirs):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_the_schedule_and_scaling_options():
    assert weights(BSSSettings(), 0, 80) == pytest.approx((3.9625, 2 * (1 - 1 / 60)))
    assert weights(BSSSettings(), 79, 80) == pytest.approx((1.0, 0.0))
    assert weights(BSSSettings(epoch_from=0), 0, 80) == pytest.approx((4.0, 2.0))
    student, teacher = nets()
    torch.manual_seed(5)
    x = torch.randn(8, 3, 32, 32, dtype=torch.float64)
    y = torch.randint(0, 10, (8,))
    plain = BSS(student, teacher, BSSSettings(bss_start=0.0))
    scaled = BSS(student, teacher, BSSSettings(bss_start=0.0, t_squared=True))
    assert float(scaled(x, y)["kd"]) == pytest.approx(9 * float(plain(x, y)["kd"]), rel=1e-12)


def test_one_boundary_sample_with_a_1x1_batchnorm_is_skipped_not_a_crash():
    """vgg8 on 8×8 digits ends in a 1×1 map: in train mode its BatchNorm cannot take one image,
    so a batch with a single boundary sample skips the BSS term (the reference would stop)."""
    torch.manual_seed(0)
    student = compress.create_model("vgg8", num_classes=10, in_channels=1).train()
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        s_top = student(x).argmax(1)
    c = int(s_top[0])
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    with torch.no_grad():
        teacher[1].bias.zero_()
        teacher[1].bias[c] = 100.0  # the teacher says c for every image
    y = torch.tensor([c] + [next(k for k in range(10) if k not in (c, int(s_top[i])))
                            for i in range(1, 4)])  # fmt: skip
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        student(x[:1])
    out = BSS(student, teacher, BSSSettings()).train()(x, y)
    assert torch.isfinite(out["loss"]) and "bss" not in out and "kd" in out
