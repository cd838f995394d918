"""Training throughput (images/s): the device-resident loader vs a torchvision DataLoader.

Both pipelines feed the same model the same Fashion-MNIST images with the same augmentation
(2-px random crop + horizontal flip, normalisation): ``compress``'s DeviceLoader does it batched
on the training device; the baseline is the usual torchvision recipe (PIL images, per-sample
``RandomCrop``/``RandomHorizontalFlip``/``ToTensor``/``Normalize`` in DataLoader workers). For each
model and pipeline it times ``--steps`` SGD steps after ``--warmup`` steps, and also the pipeline
alone (batches produced per second, no model), all in one run.

    python benchmarks/train_throughput.py --models resnet8x4 resnet32x4 --steps 20
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
import torch.nn.functional as F

from compress.data import DataSettings, build_loaders, load_data
from compress.engine import resolve_device
from compress.models import create_model


class _PilDataset(torch.utils.data.Dataset):
    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, mean: float, std: float, pad: int
    ) -> None:
        from torchvision import transforms

        self.images = images[:, 0].numpy()
        self.labels = labels.tolist()
        self.transform = transforms.Compose(
            [
                transforms.RandomCrop(images.shape[-1], padding=pad),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                transforms.Normalize((mean,), (std,)),
            ]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i], mode="L")), self.labels[i]


def _batches(loader, device):
    while True:
        for x, y in loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def time_pipeline(loader, device, n: int) -> float:
    it = _batches(loader, device)
    next(it)
    t0 = time.perf_counter()
    count = 0
    for _ in range(n):
        x, _ = next(it)
        count += len(x)
    return count / (time.perf_counter() - t0)


def time_training(model, loader, device, steps: int, warmup: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    it = _batches(loader, device)
    count = 0
    for i in range(warmup + steps):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            count = 0
        x, y = next(it)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        count += len(x)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return count / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet8x4", "resnet32x4"])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    device = resolve_device(args.device)
    settings = DataSettings(name=args.dataset, batch_size=args.batch)
    data = load_data(settings)
    info = data.info
    ours, _ = build_loaders(data, settings, device=device)
    baseline = torch.utils.data.DataLoader(
        _PilDataset(data.train_x, data.train_y, info.mean[0], info.std[0], info.crop_padding),
        batch_size=args.batch,
        shuffle=True,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
        drop_last=True,
        persistent_workers=args.workers > 0,
    )
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "device": str(device),
        "torch": torch.__version__,
        "dataset": args.dataset,
        "batch": args.batch,
        "workers": args.workers,
        "pipeline_only": {
            "device_loader": time_pipeline(ours, device, 50),
            "torchvision_dataloader": time_pipeline(baseline, device, 50),
        },
        "training": [],
    }
    for name in args.models:
        row = {"model": name}
        for label, loader in (("device_loader", ours), ("torchvision_dataloader", baseline)):
            torch.manual_seed(0)
            model = create_model(
                name, num_classes=info.num_classes, in_channels=info.in_channels
            ).to(device)
            row[label] = time_training(model, loader, device, args.steps, args.warmup)
        row["speedup"] = row["device_loader"] / row["torchvision_dataloader"]
        results["training"].append(row)
        print(json.dumps(row), flush=True)
    print(json.dumps(results, indent=2))
    print()
    print("| model | device-resident loader (img/s) | torchvision DataLoader (img/s) | ratio |")
    print("|---|---|---|---|")
    p = results["pipeline_only"]
    print(
        f"| (pipeline only, no model) | {p['device_loader']:.0f} | {p['torchvision_dataloader']:.0f} | "
        f"{p['device_loader'] / p['torchvision_dataloader']:.1f}× |"
    )
    for row in results["training"]:
        print(
            f"| {row['model']} | {row['device_loader']:.0f} | {row['torchvision_dataloader']:.0f} | "
            f"{row['speedup']:.2f}× |"
        )


if __name__ == "__main__":
    main()
