"""Every CUDA path, on a real GPU (marked ``gpu``: skipped with a reason where none is visible).

Run on a lent GPU with ``make gpu-check``. On the 2-core CPU machines these tests skip; they
were written before any GPU ran them (docs/status.md says which have run).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import compress
from compress.config import build

pytestmark = pytest.mark.gpu

QUIET = {"log": lambda _m: None}
DIGITS = {"name": "digits", "batch_size": 64}


@pytest.fixture(scope="module")
def gpu_teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu") / "teacher"
    return compress.train(model="resnet20", data=DIGITS, epochs=4, device="cuda", progress=False,
                          output=str(out), **QUIET)  # fmt: skip


def test_teacher_trains_with_bf16_and_channels_last(gpu_teacher):
    assert gpu_teacher["device"].startswith("cuda") and gpu_teacher["top1"] > 0.8
    assert next(gpu_teacher.model.parameters()).device.type == "cpu"  # the saved file is portable


@pytest.mark.parametrize(
    "method", [("r2kd", None), ("r2kd", "faithful"), ("kd", None), ("dist", None), ("fitnet", None)]
)
def test_distill_on_cuda(method, gpu_teacher, tmp_path):
    name, preset = method
    r = compress.distill(teacher=gpu_teacher.output / "model.safetensors", student="resnet8",
                         method=name, preset=preset, epochs=2, data=DIGITS, device="cuda",
                         progress=False, output=str(tmp_path / "s"), **QUIET)  # fmt: skip
    assert r["top1"] > 0.3 and r["device"].startswith("cuda")
    config = (tmp_path / "s" / "config.yaml").read_text()
    assert ("amp: none" in config) == (preset == "faithful")


def test_torch_compile_trains(tmp_path):
    r = compress.train(model="resnet8", data=DIGITS, epochs=2, device="cuda", compile=True,
                       progress=False, output=str(tmp_path / "c"), **QUIET)  # fmt: skip
    assert r["top1"] > 0.5


def test_device_loader_augments_on_the_gpu():
    from compress.data import augment
    from compress.data.loader import DeviceLoader

    x = torch.randint(0, 255, (64, 3, 32, 32), dtype=torch.uint8)
    loader = DeviceLoader(x, torch.arange(64) % 10, batch_size=16, mean=(0.5,) * 3, std=(0.25,) * 3,
                          device="cuda", shuffle=True, crop_padding=4, flip=True)  # fmt: skip
    batches = list(loader)
    assert all(b[0].is_cuda and b[0].dtype == torch.float32 for b in batches)
    g = torch.Generator(device="cuda").manual_seed(0)
    host = torch.Generator().manual_seed(0)
    torch.cuda.set_sync_debug_mode("error")  # λ, the box and the hole: no device→host copy
    try:
        mixed = augment.cutmix(batches[0][0], 1.0, g, host)
        augment.mixup(batches[0][0], 0.2, g, host)
        augment.cutout(batches[0][0], 8, g, host)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert mixed.is_cuda and mixed.shape == batches[0][0].shape


def test_sigkill_then_resume_on_cuda(tmp_path):
    out = tmp_path / "k"
    cmd = [sys.executable, "-m", "compress", "train", "--model", "resnet8", "--dataset", "digits",
           "--epochs", "6", "--device", "cuda", "--set", "progress=false", "-o", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        path = out / "metrics.jsonl"
        if path.exists() and path.read_text().endswith("\n"):
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    epochs = [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4, 5, 6]
    state = torch.load(out / "state.pt", weights_only=True)
    assert "cuda" in state["rng"]  # the CUDA generators are part of the checkpoint


def test_prune_finetune_export_and_profile_from_a_cuda_model(gpu_teacher, tmp_path):
    pruned = compress.prune(model=gpu_teacher.output / "model.safetensors", finetune_epochs=1,
                            device="cuda", output=str(tmp_path / "p"), **{"prune.ratio": 0.3},
                            **QUIET)  # fmt: skip
    assert pruned["params_after"] < pruned["params_before"]
    exported = compress.export(model=str(tmp_path / "p" / "model.safetensors"), format="onnx,onnx-int8",
                               output=str(tmp_path / "e"), **QUIET)  # fmt: skip
    assert all(f["validation"]["passed"] for f in exported["formats"].values())
    from compress.deploy.profiler import ProfileSettings, profile_model

    result = profile_model(tmp_path / "p" / "model.safetensors",
                           build(ProfileSettings, {"runtime": "torch", "device": "cuda", "batches": [1, 64],
                                                   "iters": 20, "duration": 0.2}), log=lambda _m: None)  # fmt: skip
    assert result["gpu_mem_mb"] is not None and result["batches"]["64"]["p50_ms"] > 0


def test_onnxruntime_cuda_provider(tmp_path, gpu_teacher):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime here has no CUDA provider (carry an onnxruntime-gpu wheel)")
    compress.export(model=str(gpu_teacher.output / "model.safetensors"), format="onnx",
                    output=str(tmp_path / "e"), **QUIET)  # fmt: skip
    from compress.deploy.profiler import ProfileSettings, profile_model

    result = profile_model(tmp_path / "e" / "model.onnx",
                           build(ProfileSettings, {"providers": ["CUDAExecutionProvider"], "iters": 10,
                                                   "duration": 0.1}), log=lambda _m: None)  # fmt: skip
    assert "CUDAExecutionProvider" in result["providers"]
