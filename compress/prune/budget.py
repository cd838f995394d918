"""Pruning to a latency budget measured where the model will run (``--target-latency 2ms``).

The ratio is searched by bisection; every probe prunes a copy of the model exactly as the real
prune will (same importance, rounding, BatchNorm recalibration left to the real run), writes it
as a model file and measures it with the profiler on the target — this CPU, or a device over
SSH with onnxruntime or TensorRT — at the budget's batch size. The smallest ratio whose median
latency meets the budget wins; every probe (ratio, params, MACs, p50 and p90 latency) is
reported. Fewer MACs is not the same as faster, which is why this measures instead of counting.
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from compress.errors import CompressError

#: Bisection steps after the two ends are measured.
STEPS = 6


@dataclass
class LatencyBudget:
    """Where and how the latency budget is measured.

    Attributes:
        batch: batch size of the budget (1: a single image).
        runtime: ``onnxruntime`` (the model is exported to ONNX for each probe), ``torch`` or
            ``tensorrt`` (an engine is built on the target).
        target: ``local`` or ``ssh://user@host[:port]``.
        precision: TensorRT precision.
        iters: timed calls per probe (at least).
        duration: and seconds per probe (at least).
        threads: CPU threads of the runtime.
        ssh_config: an extra ssh config file for ssh targets.
        remote_python: the Python on the device.
    """

    batch: int = 1
    runtime: Literal["onnxruntime", "torch", "tensorrt"] = "onnxruntime"
    target: str = "local"
    precision: str = "fp16"
    iters: int = 50
    duration: float = 0.5
    threads: int | None = None
    ssh_config: str | None = None
    remote_python: str = "python3"

    def __post_init__(self) -> None:
        if self.batch < 1 or self.iters < 1 or self.duration < 0:
            raise ValueError("latency budget: batch and iters must be ≥ 1, duration ≥ 0")


def parse_latency(text: str | float | None) -> float | None:
    """``"2ms"``, ``"2.5"`` or ``0.002s`` → milliseconds (``None`` stays ``None``)."""
    if text is None or isinstance(text, (int, float)):
        return None if text is None else float(text)
    value = str(text).strip().lower()
    scale = 1.0
    if value.endswith("ms"):
        value = value[:-2]
    elif value.endswith("us"):
        value, scale = value[:-2], 1e-3
    elif value.endswith("s"):
        value, scale = value[:-1], 1000.0
    try:
        ms = float(value) * scale
    except ValueError:
        raise CompressError(f"--target-latency expects a time such as 2ms, got '{text}'") from None
    if not ms > 0:
        raise CompressError(f"--target-latency must be positive, got '{text}'")
    return ms


def measure(model: Any, budget: LatencyBudget, data_dir: str | None, log: Any) -> dict[str, float]:
    """p50 and p90 latency (ms) of `model` on the budget's target, runtime and batch."""
    from compress.artifacts import save_model
    from compress.deploy.profiler import ProfileSettings, profile_model

    settings = ProfileSettings(
        runtime=budget.runtime,
        target=budget.target,
        batches=[budget.batch],
        iters=budget.iters,
        duration=budget.duration,
        eval_images=0,
        data_dir=data_dir,
        precision=budget.precision,
        threads=budget.threads,
        ssh_config=budget.ssh_config,
        remote_python=budget.remote_python,
        device="cpu",
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = save_model(copy.deepcopy(model).cpu(), Path(tmp) / "probe.safetensors")
        result = profile_model(path, settings, log=lambda _m: None)
    b = result["batches"][str(budget.batch)]
    return {"p50_ms": b["p50_ms"], "p90_ms": b["p90_ms"], "runs": b["runs"]}


def search_latency_ratio(
    model: Any,
    shape: tuple[int, int, int],
    settings: Any,
    *,
    budget_ms: float,
    budget: LatencyBudget,
    data_dir: str | None = None,
    log: Any = print,
) -> tuple[float, list[dict[str, Any]]]:
    """The smallest channel ratio whose pruned copy meets `budget_ms` (p50) on the target.

    Returns:
        ``(ratio, probes)``; each probe has ``ratio``, ``params``, ``macs``, ``p50_ms``, ``p90_ms``.

    Raises:
        CompressError: the model already meets the budget unpruned (nothing to do), or even the
            most pruning this model allows is too slow (the message gives the best measured).
    """
    from compress.models import count_params
    from compress.models.stats import count_macs
    from compress.prune.structured import append_record, max_feasible_ratio, prune_channels

    probes: list[dict[str, Any]] = []

    def probe(ratio: float) -> dict[str, Any]:
        trial = copy.deepcopy(model).cpu()
        if ratio > 0:
            record = prune_channels(trial, shape, replace(settings, ratio=ratio, steps=1))
            header = model.compress_header  # the probe's file must replay its pruning
            trial.compress_header = header.replace(pruning=append_record(header.pruning, record))
        facts = {
            "ratio": ratio,
            "params": count_params(trial),
            "macs": count_macs(trial, shape),
            **measure(trial, budget, data_dir, log),
        }
        probes.append(facts)
        log(
            f"probe ratio {ratio:.3f}: {facts['params']:,} params, {facts['macs'] / 1e6:.2f} M MACs, "
            f"p50 {facts['p50_ms']:.3f} ms (p90 {facts['p90_ms']:.3f}) on {budget.target} "
            f"{budget.runtime}, batch {budget.batch}"
        )
        return facts

    base = probe(0.0)
    if base["p50_ms"] <= budget_ms:
        raise CompressError(
            f"the model already runs in {base['p50_ms']:.3f} ms (p50) at batch {budget.batch} on "
            f"{budget.target}, within the {budget_ms:g} ms budget: nothing to prune"
        )
    top = settings.max_layer_ratio
    if not settings.global_pruning:
        top = min(top, max_feasible_ratio(model, settings.round_to))
    most = probe(top)
    if most["p50_ms"] > budget_ms:
        raise CompressError(
            f"even the most pruning this model takes (ratio {top:.3f} with round_to "
            f"{settings.round_to}) runs in {most['p50_ms']:.3f} ms, over the {budget_ms:g} ms "
            "budget; ask for more time, a smaller batch, or another runtime"
        )
    lo, hi = 0.0, top
    for _ in range(STEPS):
        mid = (lo + hi) / 2
        if probe(mid)["p50_ms"] <= budget_ms:
            hi = mid
        else:
            lo = mid
    best = min((p for p in probes if p["p50_ms"] <= budget_ms), key=lambda p: p["ratio"])
    return best["ratio"], probes
