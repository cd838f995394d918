"""R2KD training speed on a GPU: an mdistiller-style baseline loop against `compress distill`.

resnet32x4 → resnet8x4, 32×32 inputs, 100 classes, CIFAR-shaped training images. The images
are **random uint8 data** written in CIFAR-100's real pickle format (speed does not depend on
what the pixels show; accuracy numbers from this script mean nothing). In one run, on the same
device:

- ``baseline``: the loop R2KD's authors run (mdistiller): a torchvision ``DataLoader`` with
  per-sample PIL ``RandomCrop(32, 4)`` + flip + ``ToTensor`` + ``Normalize`` in worker
  processes, fp32, their R2KD step (teacher, L1-masked copy in train mode, student; clean and
  CutMix views; hard-rank Spearman term);
- ``compress distill`` with ``--preset faithful`` and with the toolkit defaults, at batch 64 and
  at a larger batch; ``kd`` and ``dist`` for reference.

It prints images/s, peak GPU memory, seconds per epoch and the projected wall time of the
paper's 240-epoch CIFAR-100 run, one row as soon as it is measured (``OUT/gpu_distill.md`` and
``.json`` rewritten after each, so a kill keeps the rows done). The baseline is timed over
``--steps`` steps after 2 warm-up steps; each compress run over one epoch of
``--train-subset`` images, its start-up (and any compilation) included — a handicap for
compress, stated. ``--smoke`` runs a tiny version on
any device (CI runs it on the CPU so the script cannot rot).

    python benchmarks/gpu_distill.py --out runs/bench/gpu-distill            # on a GPU
    python benchmarks/gpu_distill.py --smoke --device cpu --out /tmp/smoke   # anywhere
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import compress
from compress.distill.losses import correlation_value_loss, spearman_rank_loss
from compress.models import create_model
from compress.prune.structured import magnitude_mask_

MEAN, STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
#: the pair measured (``--smoke`` swaps in resnet8 → resnet8 so that CI's CPU run stays short)
TEACHER, STUDENT = "resnet32x4", "resnet8x4"


def write_cifar100(root: Path, n_train: int, n_test: int, seed: int = 0) -> Path:
    """Random images in torchvision's cifar-100-python layout (real pickle format)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("test", n_test)):
        data = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"fine_labels": rng.integers(0, 100, n).tolist(),
        }
        with open(folder / name, "wb") as fh:
            pickle.dump(data, fh, protocol=4)
    with open(folder / "meta", "wb") as fh:
        pickle.dump({b"fine_label_names": [f"c{i}".encode() for i in range(100)]}, fh, protocol=4)
    return root


class _PILDataset(torch.utils.data.Dataset):
    def __init__(self, images: np.ndarray, labels: list[int], transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def _cutmix(x: torch.Tensor) -> torch.Tensor:  # the released code's cutmix_data, as written
    lam = np.random.beta(1.0, 1.0)
    index = torch.randperm(x.size(0), device=x.device)
    w, h = x.size(2), x.size(3)
    cut = np.sqrt(1.0 - lam)
    cw, ch = int(w * cut), int(h * cut)
    cx, cy = np.random.randint(w), np.random.randint(h)
    x1, y1 = np.clip(cx - cw // 2, 0, w), np.clip(cy - ch // 2, 0, h)
    x2, y2 = np.clip(cx + cw // 2, 0, w), np.clip(cy + ch // 2, 0, h)
    x = x.clone()
    x[:, :, x1:x2, y1:y2] = x[index, :, x1:x2, y1:y2]
    return x


def baseline(data_root: Path, batch: int, steps: int, device: torch.device, workers: int) -> dict:
    """The mdistiller-style R2KD loop: PIL DataLoader, fp32, hard rank, masked copy in train mode."""
    from torchvision import transforms

    with open(data_root / "cifar-100-python" / "train", "rb") as fh:
        raw = pickle.load(fh)
    images = raw[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    tf = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ]
    )
    loader = torch.utils.data.DataLoader(
        _PILDataset(images, raw[b"fine_labels"], tf),
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        pin_memory=device.type == "cuda",
    )
    teacher = create_model(TEACHER, num_classes=100).to(device).eval()
    pruned = create_model(TEACHER, num_classes=100)
    pruned.load_state_dict(teacher.state_dict())
    magnitude_mask_(pruned, 0.1)
    pruned = pruned.to(device).train()  # the released code leaves the copy in train mode
    student = create_model(STUDENT, num_classes=100).to(device).train()
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)

    def kd(zs, zt):
        return correlation_value_loss(zs, zt, 4.0, centered=False) * 2.0 + 2.0 * spearman_rank_loss(
            zs, zt, 4.0, rank="hard"
        )

    seen, t0, done = 0, None, 0
    for _epoch in range(1000):
        for x, y in loader:
            if done == 2 and t0 is None:  # two warm-up steps
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                t0, seen = time.perf_counter(), 0
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            zs = student(x)
            with torch.no_grad():
                zt = 0.7 * teacher(x) + 0.3 * pruned(x)
            loss = F.cross_entropy(zs, y) + kd(zs, zt)
            xa = _cutmix(x)
            with torch.no_grad():
                za = 0.7 * teacher(xa) + 0.3 * pruned(xa)
            loss = loss + kd(student(xa), za)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(y)
            done += 1
            if done >= steps + 2:
                break
        if done >= steps + 2:
            break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return {"images_per_s": seen / (time.perf_counter() - t0)}


def compress_run(
    data_root: Path, teacher: Path, out: Path, method: str, preset: str | None, batch: int,
    epochs: int, train_subset: int | None, device: str,
) -> dict:  # fmt: skip
    summary = compress.distill(
        teacher=str(teacher),
        student=STUDENT,
        method=method,
        preset=preset,
        epochs=epochs,
        data={
            "name": "cifar100",
            "data_dir": str(data_root),
            "batch_size": batch,
            "train_subset": train_subset,
            "test_subset": 100,
        },
        optim={"name": "sgd", "lr": 0.05},
        device=device,
        progress=False,
        output=str(out),
        log=lambda _m: None,
    )
    return {"images_per_s": summary["images_per_s"]}


def _row(name: str, r: dict, base: float | None, n_epoch: int) -> str:
    ips = r["images_per_s"]
    r["epoch_s"] = n_epoch / ips
    r["projected_240_epochs_min"] = 240 * r["epoch_s"] / 60
    mem = f"{r['gpu_mem_gb']:.1f} GB" if r.get("gpu_mem_gb") is not None else "–"
    times = f"{ips / base:.2f}" if base else "1.00"
    return (f"| {name} | {ips:,.0f} | {times} | {r['epoch_s']:.1f} | "
            f"{r['projected_240_epochs_min']:.1f} min | {mem} |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench/gpu-distill")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--smoke", action="store_true", help="a tiny run for CI (any device)")
    ap.add_argument("--large-batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=200, help="timed baseline steps (after 2 warm-up)")
    ap.add_argument(
        "--train-subset", type=int, default=20_000,
        help="images of each compress run's one timed epoch (of the 50,000 written)",
    )  # fmt: skip
    ap.add_argument(
        "--workers", type=int, default=8, help="baseline DataLoader workers (mdistiller: 8)"
    )
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    global TEACHER, STUDENT
    n_train, steps, subset = (
        (128, 2, None) if args.smoke else (50_000, args.steps, args.train_subset)
    )
    if args.smoke:
        TEACHER, STUDENT = "resnet8", "resnet8"
    device = torch.device(args.device)
    data_root = write_cifar100(out / "data", n_train, 100 if args.smoke else 500)
    teacher_path = out / "teacher.safetensors"
    if not teacher_path.exists():  # a random resnet32x4 teacher: speed only
        t = create_model(TEACHER, num_classes=100)
        compress.save_model(t, teacher_path, dataset="cifar100", input_size=[32, 32],
                            mean=list(MEAN), std=list(STD))  # fmt: skip
    rows: dict[str, dict] = {}
    table = out / "gpu_distill.md"
    lines = [
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
        f"torch {torch.__version__}; random uint8 CIFAR-shaped images (speed only)",
        "",
        "| run | images/s | × baseline | s / epoch (50k) | 240 epochs | peak GPU memory |",
        "|---|---|---|---|---|---|",
    ]

    def emit(name: str, r: dict, base: float | None) -> None:  # each row as soon as measured
        rows[name] = r
        lines.append(_row(name, r, base, 50_000))
        print(lines[-1], flush=True)
        table.write_text("\n".join(lines) + "\n")
        (out / "gpu_distill.json").write_text(
            json.dumps({"device": str(device), "smoke": args.smoke, "rows": rows}, indent=2)
        )

    print("\n".join(lines), flush=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    first = baseline(data_root, 64, steps, device, 0 if args.smoke else args.workers)
    if device.type == "cuda":
        first["gpu_mem_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
    emit("baseline (mdistiller loop, batch 64)", first, None)
    base = first["images_per_s"]
    runs = [
        ("r2kd faithful, batch 64", "r2kd", "faithful", 64),
        ("r2kd default, batch 64", "r2kd", None, 64),
        (f"r2kd default, batch {args.large_batch}", "r2kd", None, args.large_batch),
        ("kd, batch 64", "kd", None, 64),
        ("dist, batch 64", "dist", None, 64),
    ]
    for i, (name, method, preset, batch) in enumerate(runs):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        size = batch if not args.smoke else 32
        r = compress_run(data_root, teacher_path, out / f"run{i}", method, preset, size, 1,
                         subset, str(device))  # fmt: skip
        if device.type == "cuda":
            r["gpu_mem_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
        emit(name, r, base)


if __name__ == "__main__":
    main()
