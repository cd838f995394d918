"""Cost of one distillation-loss evaluation (forward + backward) and its share of a training step.

For B = 256 and C = 10, 100, 1000 classes it times, on the same inputs in one run:
KD (the baseline), R2KD's value term, R2KD's soft-rank term (the default permutahedron
projection, O(C log C)), the former pairwise soft rank (O(C²), ``method="pairwise"``) for
comparison, and value + default soft rank together, each forward + backward on the logits. It also times one training step of a student network
(forward, backward, SGD step at B = 256 on 32×32 images) so the table can give the loss as a
share of a full step. The median of ``--repeats`` runs is reported.

    python benchmarks/loss_cost.py --student resnet8x4 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from compress.distill.losses import correlation_value_loss, kd_loss, spearman_rank_loss
from compress.engine import resolve_device
from compress.models import create_model

T = 4.0


def _time(fn, device, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def measure(
    c: int, batch: int, student: str, device: torch.device, repeats: int
) -> dict[str, float]:
    """Median milliseconds of each loss (forward + backward) and of one student step at C classes."""
    g = torch.Generator(device=device).manual_seed(0)
    z_t = torch.randn(batch, c, device=device, generator=g) * 3
    z_s = (torch.randn(batch, c, device=device, generator=g) * 3).requires_grad_(True)
    losses = {
        "kd": lambda: kd_loss(z_s, z_t, T),
        "value": lambda: correlation_value_loss(z_s, z_t, T),
        "soft_rank": lambda: spearman_rank_loss(z_s, z_t, T, rank="soft"),
        "pairwise": lambda: spearman_rank_loss(z_s, z_t, T, rank="soft", method="pairwise"),
        "value+soft_rank": lambda: (
            correlation_value_loss(z_s, z_t, T) + spearman_rank_loss(z_s, z_t, T, rank="soft")
        ),
    }
    row: dict[str, float] = {"classes": c}
    for name, loss_fn in losses.items():
        row[name] = _time(lambda f=loss_fn: f().backward(), device, repeats)

    model = create_model(student, num_classes=c).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, c, (batch,), device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    row["student_step"] = _time(step, device, repeats)
    row["share_value+soft_rank"] = row["value+soft_rank"] / (
        row["student_step"] + row["value+soft_rank"]
    )
    row["share_kd"] = row["kd"] / (row["student_step"] + row["kd"])
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--classes", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--student", default="resnet8x4")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = resolve_device(args.device)
    rows = []
    for c in args.classes:
        row = measure(c, args.batch, args.student, device, args.repeats)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print()
    print(
        f"B = {args.batch}, device {device}, student {args.student} (32×32), median of {args.repeats}; times in ms"
    )
    print()
    print(
        "| C | KD | value | soft rank | pairwise soft rank | value + soft rank | student step "
        "| share of step: KD | share: value + soft rank |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['classes']} | {r['kd']:.2f} | {r['value']:.2f} | {r['soft_rank']:.1f} | {r['pairwise']:.1f} | {r['value+soft_rank']:.1f} | "
            f"{r['student_step']:.0f} | {100 * r['share_kd']:.1f}% | {100 * r['share_value+soft_rank']:.1f}% |"
        )


if __name__ == "__main__":
    main()
