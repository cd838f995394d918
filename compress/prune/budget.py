"""Pruning to a latency budget measured where the model will run (``--target-latency 2ms``).

The ratio is searched by bisection; every probe prunes a copy of the model exactly as the real
prune will (same importance, rounding, BatchNorm recalibration left to the real run), writes it
as a model file and measures it with the profiler on the target — this CPU, or a device over
SSH with onnxruntime or TensorRT — at the budget's batch size. The smallest ratio whose median
latency meets the budget is then measured a second time, and it wins only if it meets the budget
again; otherwise that pruned model is refuted and the search probes between it and the next
passing ratio (at most ``CONFIRM`` rounds, then a one-line error), so that one lucky
measurement near the boundary cannot pick a model that is over budget. Every probe
(ratio, params, MACs, p50 and p90 latency, and whether it was a confirmation) is reported.
A probe that measures more than 1.5× slower than an earlier probe of a model with at least its
MACs is measured once more and the faster kept: a slow spell of the device in the middle of a
search would otherwise make passing models look too slow and over-prune.
Fewer MACs is not the same as faster, which is why this measures instead of counting.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from compress.config import NO_HASH
from compress.deploy.profiler import ProfileSettings
from compress.errors import CompressError

#: Bisection steps after the two ends are measured.
STEPS = 6
#: Rounds of confirmation (a second measurement of the smallest passing ratio).
CONFIRM = 3


@dataclass
class LatencyBudget(ProfileSettings):
    """Where and how the latency budget is measured: a `ProfileSettings` at one batch size.

    Every profile setting applies (``threads``, ``iters``, ``duration``, ``target`` and its
    ``ssh_config`` / ``remote_python``, ...), with defaults for probes: more iterations, no
    accuracy check and no export validation (a probe only times the model).

    Attributes:
        batch: batch size of the budget (1: a single image).
        runtime: ``onnxruntime`` (the model is exported to ONNX for each probe), ``torch`` or
            ``tensorrt`` (an engine is built on the target).
    """

    batch: int = 1
    runtime: Literal["onnxruntime", "torch", "tensorrt"] = "onnxruntime"
    iters: int = 50
    duration: float = 0.5
    eval_images: int = 0
    device: str = "cpu"
    validate_exports: bool = field(default=False, metadata=NO_HASH)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.batch <= 65536 or not 0 <= self.duration <= 3600:
            raise ValueError(
                "latency budget: batch must be between 1 and 65,536 and duration between 0 and "
                f"3600 s (got batch {self.batch}, duration {self.duration})"
            )

    def profile_settings(self) -> ProfileSettings:
        """The profile of one probe: this budget at its one batch size, no report file."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(ProfileSettings)}
        return ProfileSettings(**{**fields, "batches": [self.batch], "json": None})


def parse_latency(text: str | float | None) -> float | None:
    """``"2ms"``, ``"2.5"`` or ``0.002s`` → milliseconds (``None`` stays ``None``).

    A share of the unpruned model's own latency (``"60%"``) is parsed by `parse_share`.
    """
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
        raise CompressError(
            f"--target-latency expects a time such as 2ms or a share such as 60%, got '{text}'"
        ) from None
    if not ms > 0:
        raise CompressError(f"--target-latency must be positive, got '{text}'")
    return ms


def parse_share(text: str | float | None) -> float | None:
    """``"60%"`` → 0.6 (a budget relative to the unpruned model, measured first); else ``None``."""
    if not isinstance(text, str) or not text.strip().endswith("%"):
        return None
    try:
        share = float(text.strip()[:-1]) / 100
    except ValueError:
        raise CompressError(f"--target-latency expects a share such as 60%, got '{text}'") from None
    if not 0 < share < 1:
        raise CompressError(
            f"--target-latency as a share must be between 0% and 100%, got '{text}'"
        )
    return share


def measure(model: Any, budget: LatencyBudget, data_dir: str | None, log: Any) -> dict[str, float]:
    """p50 and p90 latency (ms) of `model` on the budget's target, runtime and batch."""
    from compress.artifacts import save_model
    from compress.deploy.profiler import profile_model

    settings = budget.profile_settings()
    if data_dir is not None:
        settings = dataclasses.replace(settings, data_dir=data_dir)
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
    budget_ms: float | None,
    budget: LatencyBudget,
    share: float | None = None,
    data_dir: str | None = None,
    log: Any = print,
) -> tuple[float, list[dict[str, Any]], float]:
    """The smallest channel ratio whose pruned copy meets `budget_ms` (p50) on the target.

    With `share` instead of `budget_ms`, the budget is that share of the unpruned model's p50,
    measured first in the same run, twice, the faster kept (a recipe then means the same on any
    device).

    Returns:
        ``(ratio, probes, budget_ms)``; each probe has ``ratio``, ``params``, ``macs``,
        ``p50_ms``, ``p90_ms``, ``confirm`` (a second measurement of a ratio that had passed) and
        ``remeasured`` (measured twice because it was implausibly slow; the faster kept).

    Raises:
        CompressError: the model already meets the budget unpruned (nothing to do), or even the
            most pruning this model allows is too slow (the message gives the best measured), or
            no passing ratio passed again when re-measured in ``CONFIRM`` rounds.
    """
    from compress.models import count_params
    from compress.models.stats import count_macs
    from compress.prune.structured import append_record, max_feasible_ratio, prune_channels

    probes: list[dict[str, Any]] = []

    def probe(ratio: float, confirm: bool = False) -> dict[str, Any]:
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
            "confirm": confirm,
            "remeasured": False,
        }
        if is_implausible(facts, probes):  # measured in a slow spell: once more, faster kept
            again = measure(trial, budget, data_dir, log)
            facts["remeasured"] = True
            if again["p50_ms"] < facts["p50_ms"]:
                facts.update(again)
        probes.append(facts)
        log(
            f"{'confirm' if confirm else 'probe'} ratio {ratio:.3f}: {facts['params']:,} params, {facts['macs'] / 1e6:.2f} M MACs, "
            f"p50 {facts['p50_ms']:.3f} ms (p90 {facts['p90_ms']:.3f}) on {budget.target} "
            f"{budget.runtime}, batch {budget.batch}"
        )
        return facts

    base = probe(0.0)
    if budget_ms is None:
        if share is None:
            raise ValueError("give budget_ms or share")
        # measured twice, the faster kept: one slow window (a busy device) would otherwise
        # loosen the whole budget, and a slow outlier is far likelier than a fast one
        again = probe(0.0, confirm=True)
        unpruned = min(base["p50_ms"], again["p50_ms"])
        budget_ms = share * unpruned
        log(f"budget: {100 * share:g}% of the unpruned p50 {unpruned:.4g} ms = {budget_ms:.4g} ms")
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
    # Confirm: the smallest passing ratio is measured again. A model over budget on its second
    # measurement is refuted, with every ratio that gives the same pruned model (same params), and
    # one more ratio between it and the next passing one is probed, so a refutation near the
    # boundary costs one architecture step, not a jump to the most pruned end.
    refuted: set[int] = set()
    for _ in range(CONFIRM):
        passing = sorted(
            (p["ratio"], p["params"])
            for p in probes
            if p["p50_ms"] <= budget_ms and p["params"] not in refuted and not p["confirm"]
        )
        if not passing:
            break
        ratio, params = passing[0]
        if probe(ratio, confirm=True)["p50_ms"] <= budget_ms:
            return ratio, probes, budget_ms
        refuted.add(params)
        above = [r for r, n in passing if n not in refuted]
        if above and above[0] - ratio > 1e-3:
            probe((ratio + above[0]) / 2)
    best = min(probes, key=lambda p: p["p50_ms"])
    raise CompressError(
        f"no pruning ratio met the {budget_ms:.4g} ms budget on a second measurement in {CONFIRM} "
        f"tries (fastest seen: ratio {best['ratio']:.3f} at p50 {best['p50_ms']:.4g} ms); the "
        "budget is at this model's floor or the measurements are noisy: ask for more time, "
        "measure longer (--set budget.duration=…) or on an idle device"
    )


#: A model is implausibly slow when it takes this many times as long as one with at least its MACs.
IMPLAUSIBLE = 1.5


def is_implausible(facts: dict[str, Any], probes: list[dict[str, Any]]) -> bool:
    """Whether a new probe is far slower than an earlier probe of a model at least as big.

    That is a slow spell of the device, not the model: fewer MACs are rarely 1.5× slower.
    """
    return any(
        q["macs"] >= facts["macs"] and facts["p50_ms"] > IMPLAUSIBLE * q["p50_ms"] for q in probes
    )


def noise_ms(probes: list[dict[str, Any]], ratio: float) -> float:
    """The measurement noise (ms) of the chosen ratio: the largest p90 − p50 spread of its probes."""
    return max(p["p90_ms"] - p["p50_ms"] for p in probes if p["ratio"] == ratio)
