"""R2KD's training step against the authors' loop (mdistiller style), interleaved, on this machine.

The authors' loop, written here from their released code's structure: a torchvision dataset of
CIFAR-shaped uint8 images (random pixels: the speed does not depend on them; stated), per-sample
PIL transforms (RandomCrop 32 + 4, RandomHorizontalFlip, ToTensor, Normalize) in a DataLoader
with mdistiller's 2 workers, fp32, batch 64; each step runs the student, the teacher and the
pruned copy (train mode, batch statistics) on the clean batch, CutMix, the three networks on the
mixed batch, the loss (the same formulas: `compress.distill.losses`), backward and SGD.

compress: the same networks, `compress distill`'s R2KD task (faithful preset, and the default)
fed by its device-resident loader, stepped the way the engine steps it.

Each round times N steps of each, one after the other, after 2 warm-up steps each; the median
and range of the rounds is printed. Also the share of the R2KD loss itself in a step at
C classes (`--loss-share`).

    python benchmarks/r2kd_step.py --rounds 5 --steps 10
    python benchmarks/r2kd_step.py --loss-share --classes 1000
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
import torch.nn.utils.prune  # the authors' L1 mask of the copy

import compress
from compress.distill.losses import correlation_value_loss, spearman_rank_loss

MEAN, STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)


class Pixels(torch.utils.data.Dataset):
    """CIFAR-shaped uint8 images as PIL images, transformed per sample (as torchvision's CIFAR)."""

    def __init__(self, n: int, classes: int) -> None:
        from torchvision import transforms

        rng = np.random.default_rng(0)
        self.x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        self.y = rng.integers(0, classes, n)
        self.t = transforms.Compose(
            [
                transforms.RandomCrop(32, padding=4),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                transforms.Normalize(MEAN, STD),
            ]
        )

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.t(Image.fromarray(self.x[i])), int(self.y[i])


def cutmix(x: torch.Tensor) -> torch.Tensor:
    lam = float(np.random.beta(1.0, 1.0))
    idx = torch.randperm(len(x))
    h, w = x.shape[-2:]
    cut = np.sqrt(1 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = np.random.randint(h), np.random.randint(w)
    y1, y2 = np.clip(cy - ch // 2, 0, h), np.clip(cy + ch // 2, 0, h)
    x1, x2 = np.clip(cx - cw // 2, 0, w), np.clip(cx + cw // 2, 0, w)
    out = x.clone()
    out[:, :, y1:y2, x1:x2] = x[idx, :, y1:y2, x1:x2]
    return out


def authors_steps(student, teacher, pruned, loader, opt, steps: int) -> float:
    """Images per second of the authors-style loop over `steps` steps (2 warm-up first)."""

    def loss_of(zs, zt, zp):
        zm = 0.7 * zt + 0.3 * zp
        return 2 * correlation_value_loss(zs, zm, 4.0) + 2 * spearman_rank_loss(
            zs, zm, 4.0, rank="hard"
        )

    it = iter(loader)
    seen, t0 = 0, 0.0
    for k in range(steps + 2):
        if k == 2:
            seen, t0 = 0, time.perf_counter()
        x, y = next(it)
        zs = student(x)
        with torch.no_grad():
            zt, zp = teacher(x), pruned(x)
        xa = cutmix(x)
        zsa = student(xa)
        with torch.no_grad():
            zta, zpa = teacher(xa), pruned(xa)
        loss = F.cross_entropy(zs, y) + loss_of(zs, zt, zp) + loss_of(zsa, zta, zpa)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(y)
    return seen / (time.perf_counter() - t0)


def compress_steps(task, loader, opt, steps: int) -> float:
    """Images per second of compress's R2KD task fed by its device-resident loader."""
    it = iter(loader)
    seen, t0 = 0, 0.0
    for k in range(steps + 2):
        if k == 2:
            seen, t0 = 0, time.perf_counter()
        x, y = next(it)
        out = task(x, y)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        seen += len(y)
    return seen / (time.perf_counter() - t0)


def build_compress(student, teacher, preset, classes, images):
    from compress.config import build
    from compress.data.loader import DeviceLoader
    from compress.distill.base import DistillContext
    from compress.distill.config import DistillConfig
    from compress.distill.methods import METHODS

    class Info:
        name, num_classes, in_channels, input_size = "pixels", classes, 3, (32, 32)
        mean, std = MEAN, STD

    xs = torch.from_numpy(images.x).permute(0, 3, 1, 2).contiguous()
    loader = DeviceLoader(xs, torch.from_numpy(images.y), batch_size=64, mean=MEAN, std=STD,
                          shuffle=True, crop_padding=4, flip=True)  # fmt: skip
    ctx = DistillContext(info=Info(), device=torch.device("cpu"), log=lambda _m: None,
                         train_loader=loader, eval_loader=None)  # fmt: skip
    cfg = build(DistillConfig, {"method": "r2kd", "preset": preset})
    task = METHODS.get("r2kd").build(student, teacher, cfg.settings(), ctx).train()
    return task, loader


def loss_share(classes: int, steps: int) -> None:
    """The R2KD loss's share of a whole step (student, teacher, copy, two views) at C classes."""
    torch.manual_seed(0)
    student = compress.create_model("resnet8x4", num_classes=classes)
    teacher = compress.create_model("resnet32x4", num_classes=classes).eval()
    images = Pixels(64 * (steps + 2), classes)
    for soft in ("permutahedron", "pairwise", "hard"):
        task, loader = build_compress(
            copy.deepcopy(student), copy.deepcopy(teacher), None, classes, images
        )
        if soft == "hard":
            task.s.rank = "hard"
        else:
            task.s.soft_rank = soft
        opt = torch.optim.SGD(task.model.parameters(), lr=0.01, momentum=0.9)
        step = 1 / compress_steps(task, loader, opt, steps) * 64
        zs = torch.randn(64, classes, requires_grad=True)
        zt = torch.randn(64, classes)
        t0 = time.perf_counter()
        for _ in range(steps):
            d = task.distance(zs, zt)
            (d[0] + d[1]).backward()
        per = (time.perf_counter() - t0) / steps * 2  # two views a step
        print(f"C={classes} rank={soft}: step {1000 * step:.1f} ms, loss (2 views, fwd+bwd) "
              f"{1000 * per:.2f} ms = {100 * per / step:.1f} % of the step")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--loss-share", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.loss_share:
        loss_share(args.classes, args.steps)
        return
    torch.manual_seed(0)
    student = compress.create_model("resnet8x4", num_classes=args.classes)
    teacher = compress.create_model("resnet32x4", num_classes=args.classes).eval()
    images = Pixels(64 * (args.steps + 2) * 2, args.classes)
    # the authors' pruned copy: 10 % of every weight zeroed by L1, left in train mode
    pruned = copy.deepcopy(teacher)
    for m in pruned.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.utils.prune.l1_unstructured(m, "weight", amount=0.1)
            torch.nn.utils.prune.remove(m, "weight")
    pruned.train().requires_grad_(False)
    loader = torch.utils.data.DataLoader(images, batch_size=64, shuffle=True, num_workers=2,
                                         drop_last=True, persistent_workers=True)  # fmt: skip
    s_authors = copy.deepcopy(student).train()
    opt_a = torch.optim.SGD(s_authors.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    runs = {}
    for preset in ("faithful", None):
        task, dl = build_compress(
            copy.deepcopy(student), copy.deepcopy(teacher), preset, args.classes, images
        )
        opt = torch.optim.SGD(task.trainable_parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        runs[preset or "default"] = (task, dl, opt)
    rates: dict[str, list[float]] = {"authors": [], "faithful": [], "default": []}
    for _ in range(args.rounds):  # interleaved: a slow spell of the machine hits each loop
        rates["authors"].append(
            authors_steps(s_authors, teacher, pruned, loader, opt_a, args.steps)
        )
        for name, (task, dl, opt) in runs.items():
            rates[name].append(compress_steps(task, dl, opt, args.steps))
    print(json.dumps(rates))
    base = statistics.median(rates["authors"])
    print("| loop | images/s median [min–max] | vs the authors' |")
    print("|---|---|---|")
    for name, r in rates.items():
        print(f"| {name} | {statistics.median(r):.0f} [{min(r):.0f}–{max(r):.0f}] "
              f"| ×{statistics.median(r) / base:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
