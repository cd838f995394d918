"""Top-1 of a pruned model before fine-tuning, with and without BatchNorm recalibration.

For each trained model and ratio, one pruned copy is evaluated on the full Fashion-MNIST test
set twice: as pruned (the old running statistics: the baseline) and after
`compress.prune.structured.recalibrate_bn` on ``--batches`` batches of 64 training images
(what ``compress prune`` now does by default). Same pruned weights, same run.

    python benchmarks/bn_recalibration.py runs/bench/fashion-chain/resnet8x4/model.safetensors ...

The models of ``benchmarks/fashion_chain.py`` (its ``--out``) are the intended inputs.
"""

from __future__ import annotations

import argparse
import copy
import time

from compress.artifacts import load_model, read_header
from compress.data import build_loaders, load_data
from compress.data.base import DataSettings
from compress.engine.metrics import evaluate
from compress.prune.settings import PruneSettings
from compress.prune.structured import prune_channels, recalibrate_bn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="trained Fashion-MNIST model files")
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.3, 0.5, 0.7])
    ap.add_argument("--batches", type=int, default=16)
    args = ap.parse_args()
    settings = DataSettings(name="fashion-mnist", batch_size=64)
    data = load_data(settings)
    train_loader, eval_loader = build_loaders(data, settings)
    rows = []
    for path in args.models:
        name = read_header(path)["arch"]["name"]
        source = load_model(path).eval()
        top1 = evaluate(source, eval_loader)["top1"]
        for ratio in args.ratios:
            model = copy.deepcopy(source)
            prune_channels(model, (1, 28, 28), PruneSettings(ratio=ratio))
            stale = evaluate(model, eval_loader)["top1"]
            t0 = time.perf_counter()
            images = recalibrate_bn(model, train_loader, args.batches)
            seconds = time.perf_counter() - t0
            fresh = evaluate(model, eval_loader)["top1"]
            rows.append((name, ratio, top1, stale, fresh, images, seconds))
            print(rows[-1], flush=True)
    print(
        "\n| model | ratio | top-1 unpruned | pruned, old BN statistics | pruned, recalibrated | "
        "recalibration |"
    )
    print("|---|---|---|---|---|---|")
    for name, ratio, top1, stale, fresh, images, seconds in rows:
        print(
            f"| {name} | {ratio} | {100 * top1:.2f}% | {100 * stale:.2f}% | {100 * fresh:.2f}% | "
            f"{images:,} images, {seconds:.1f} s |"
        )


if __name__ == "__main__":
    main()
