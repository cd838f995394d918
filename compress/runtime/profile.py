"""Profile one runner here: latency per batch size, model-only time, accuracy, memory, power."""

import os
from typing import Any, Dict, List, Optional, Sequence

from compress.runtime import RUNTIME_VERSION
from compress.runtime.errors import AgentError
from compress.runtime.machine import environment, peak_rss_mb
from compress.runtime.normalise import normalise
from compress.runtime.runners import Runner, make_runner
from compress.runtime.tegrastats import Tegrastats
from compress.runtime.timing import summarize, time_calls


def evaluate(
    runner: Runner,
    images: Any,
    labels: Any,
    mean: Sequence[float],
    std: Sequence[float],
    batch: int,
) -> Dict[str, Any]:
    """Top-1 of `runner` on uint8 images normalised with `mean`/`std`."""
    correct = 0
    for i in range(0, len(labels), batch):
        x = normalise(images[i : i + batch], mean, std)
        correct += int((runner.infer(x).argmax(1) == labels[i : i + batch]).sum())
    return {"top1": correct / max(1, len(labels)), "samples": len(labels)}


def profile_runner(
    runner: Runner,
    batches: Sequence[int],
    *,
    model_path: str,
    eval_path: Optional[str] = None,
    warmup: int = 10,
    iters: int = 50,
    duration: float = 0.0,
    input_shape: Optional[Sequence[int]] = None,
) -> Dict[str, Any]:
    """Latency per batch size, accuracy, size, memory and environment of one runner here."""
    import numpy as np

    shape = tuple(input_shape or list(runner.input_shape[1:]))
    if not shape or any(d is None for d in shape):
        raise AgentError(
            "the model's input shape is dynamic beyond the batch; pass --input-shape C,H,W"
        )
    gpu_before = runner.gpu_memory_bytes()
    results: Dict[str, Any] = {"batches": {}}
    rng = np.random.default_rng(0)
    with Tegrastats() as tegra:
        for b in batches:
            x = rng.standard_normal((b, *shape), dtype=np.float32)
            times = time_calls(
                lambda x=x: runner.infer(x), warmup=warmup, repeats=iters, min_seconds=duration
            )
            results["batches"][str(b)] = summarize(times, b)
            staged = runner.prepare(x)
            model_only = time_calls(
                lambda s=staged: runner.run_prepared(s), warmup=warmup, repeats=iters
            )
            results["batches"][str(b)]["model_only"] = summarize(model_only, b)
    results["power"] = tegra.summary()
    if eval_path:
        data = np.load(eval_path)
        results["accuracy"] = evaluate(
            runner, data["images"], data["labels"], data["mean"], data["std"], batch=max(batches)
        )
    gpu_after = runner.gpu_memory_bytes()
    results.update(
        runtime=runner.name,
        model=os.path.basename(model_path),
        model_bytes=os.path.getsize(model_path),
        input_shape=list(shape),
        peak_rss_mb=peak_rss_mb(),
        gpu_mem_mb=(gpu_after - (gpu_before or 0)) / 2**20 if gpu_after is not None else None,
        providers=getattr(runner, "providers", None),
        environment=environment(),
        agent_version=RUNTIME_VERSION,
    )
    return results


def profile(
    model_path: str,
    runtime: str,
    batches: Sequence[int],
    *,
    eval_path: Optional[str] = None,
    warmup: int = 10,
    iters: int = 50,
    duration: float = 0.0,
    providers: Optional[List[str]] = None,
    threads: Optional[int] = None,
    input_shape: Optional[Sequence[int]] = None,
) -> Dict[str, Any]:
    """`profile_runner` for an ONNX file (onnxruntime) or a TensorRT engine on this machine."""
    runner = make_runner(runtime, model_path, providers=providers, threads=threads)
    try:
        return profile_runner(
            runner,
            batches,
            model_path=model_path,
            eval_path=eval_path,
            warmup=warmup,
            iters=iters,
            duration=duration,
            input_shape=input_shape,
        )
    finally:
        runner.close()
