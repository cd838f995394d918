"""INT8 export settings against each other on one model: accuracy, agreement and speed vs fp32.

Each setting is one ``compress export --format onnx-int8`` of the same model file, validated on
``--images`` real test images. Each also records its own fp32-vs-INT8 ONNX Runtime latency at
batch 64 (``speed_vs_fp32``, median of 10 calls), so every row carries its fp32 baseline from the
same run.

    python benchmarks/int8_settings.py runs/bench/fashion-chain/mobilenetv2/model.safetensors
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
from pathlib import Path

from compress.exporters.api import export
from compress.exporters.base import ExportConfig
from compress.exporters.validate import ExportValidationError

#: (calibration method, calibration images, activation type)
SETTINGS = [
    ("minmax", 512, "uint8"),
    ("entropy", 512, "uint8"),
    ("percentile", 512, "uint8"),
    ("minmax", 2048, "uint8"),
    ("minmax", 512, "int8"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a trained model file")
    ap.add_argument("--images", type=int, default=10000, help="validation images")
    args = ap.parse_args()
    print(
        "| calibration | images | activations | status | top-1 change | top-1 agreement | "
        "fp32 ms (b64) | int8 ms (b64) | speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for method, count, act in SETTINGS:
            out = Path(tmp) / f"{method}-{count}-{act}"
            config = ExportConfig(
                model=args.model,
                format="onnx-int8",
                output=str(out),
                validate_images=args.images,
                calib_images=count,
                calib_method=method,
                activation_type=act,
            )
            with contextlib.suppress(ExportValidationError):  # a result: export.json has it
                export(config, log=lambda _m: None)
            entry = json.loads((out / "export.json").read_text())["formats"]["onnx-int8"]
            v, sp = entry["validation"], entry["speed_vs_fp32"]
            print(
                f"| {method} | {count} | {act} | {entry['status']} | "
                f"{100 * v['accuracy_delta']:+.2f} | {100 * v['top1_agreement']:.2f}% | "
                f"{sp['fp32_ms']:.2f} | {sp['int8_ms']:.2f} | {sp['speedup']:.2f}× |",
                flush=True,
            )


if __name__ == "__main__":
    main()
