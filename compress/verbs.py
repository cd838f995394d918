"""The verb table: every verb declared once, used by the CLI, the pipeline and the notebook API.

A `Verb` names its config dataclass and its run function (imported only when used, so
``compress --help`` stays free of torch), what a pipeline stage of it needs (the fields that
take a model file, the file later stages refer to, whether it resumes, its column in the final
table) and what the verb layer hands the function — ``compress prune`` gets the distillation
fine-tuner here, so that `compress.prune` never imports `compress.distill`.

To add a verb: write its config class and run function in their module, add one `Verb` here,
and one thin click command in `compress/cli/` that calls `run`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from compress.registry import Registry


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Verb:
    """One verb of ``compress``.

    Attributes:
        name: what users type (``compress NAME``) and the pipeline stage type.
        config: ``module:Class`` of its settings dataclass.
        function: ``module:function``, called as ``function(config, log=..., **inject())``.
        summary: one line for help texts.
        stage: whether ``compress run`` offers it as a stage type.
        model_fields: config fields that take a model file (may name an earlier stage).
        output_file: the file, in the verb's output folder, that later stages refer to.
        resumable: an interrupted run continues with ``resume: true``.
        trains: the result has a trained model (``model.safetensors``) the API loads.
        inject: keyword arguments the verb layer passes (built when the verb runs).
        row: ``row(summary) -> dict`` of its columns in ``compress run``'s final table.
    """

    name: str
    config: str
    function: str
    summary: str
    stage: bool = True
    model_fields: tuple[str, ...] = ()
    output_file: str = "model.safetensors"
    resumable: bool = False
    trains: bool = False
    inject: Callable[[], dict[str, Any]] = field(default=dict)
    row: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def config_cls(self) -> type:
        """The settings dataclass."""
        return _load(self.config)

    def __call__(self, config: Any, *, log: Callable[[str], None] = print) -> dict[str, Any]:
        """Run the verb on a built config; its result dict."""
        return _load(self.function)(config, log=log, **self.inject())


#: verb name → Verb
VERBS: Registry = Registry("verb")


def run(name: str, config: Any, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run verb `name` on `config` (a built settings object)."""
    return VERBS.get(name)(config, log=log)


def _finetuner() -> dict[str, Any]:
    from compress.distill.finetune import DistillFinetuner

    return {"finetuner": DistillFinetuner()}


def _train_row(summary: dict[str, Any]) -> dict[str, Any]:
    return {"top-1": summary.get("top1"), "params": summary.get("params")}


def _prune_row(summary: dict[str, Any]) -> dict[str, Any]:
    row = {"top-1": summary.get("top1"), "params": summary.get("params_after")}
    lb = summary.get("latency_budget")
    if lb:  # budget vs achieved, as measured on the budget's target
        row["budget"] = (
            f"{lb['target_ms']:.4g} ms → p50 {lb['achieved_p50_ms']:.3f} ms "
            f"(±{lb['noise_ms']:.3f}, {'met' if lb.get('met') else 'over'})"
        )
    return row


def _export_row(summary: dict[str, Any]) -> dict[str, Any]:
    checks = []
    for fmt, e in summary.get("formats", {}).items():
        check = f"{fmt} {100 * e['validation']['top1_export']:.2f}%"
        if e.get("status") == "inconclusive":
            check += " (inconclusive)"
        floats = (e.get("auto_precision") or {}).get("float_nodes")
        if floats is not None:
            check += f" ({len(floats)} float nodes)"
        checks.append(check)
    return {"exports": ", ".join(checks)}


def _quantize_row(summary: dict[str, Any]) -> dict[str, Any]:
    return {"top-1": summary.get("top1_int8"), "params": summary.get("params")}


for _verb in (
    Verb("train", "compress.train:TrainConfig", "compress.train:train",
         "train a teacher or a no-KD baseline", resumable=True, trains=True, row=_train_row),
    Verb("distill", "compress.distill.config:DistillConfig", "compress.distill.api:distill",
         "distil a student from a teacher (R2KD by default)", model_fields=("teacher",),
         resumable=True, trains=True, row=_train_row),
    Verb("prune", "compress.prune.config:PruneConfig", "compress.prune.api:prune",
         "prune channels, optionally fine-tune with KD", model_fields=("model", "teacher"),
         resumable=True, trains=True, inject=_finetuner, row=_prune_row),
    Verb("quantize", "compress.quantize.config:QuantizeConfig", "compress.quantize.api:quantize",
         "quantization-aware training / distillation to INT8",
         model_fields=("model", "teacher"), resumable=True, trains=True, row=_quantize_row),
    Verb("export", "compress.exporters.base:ExportConfig", "compress.exporters.api:export",
         "export to ONNX, INT8 ONNX, FP16 ONNX or TensorRT, validated", model_fields=("model",),
         output_file="model.onnx", row=_export_row),
    Verb("benchmark", "compress.deploy.benchmark:BenchmarkConfig",
         "compress.deploy.benchmark:benchmark", "one table over formats",
         model_fields=("models",), output_file="benchmark.md"),
    Verb("study", "compress.study:StudyConfig", "compress.study:run_study",
         "a grid of methods × settings × seeds", stage=False),
):  # fmt: skip
    VERBS.add(_verb.name, _verb)


def stage_verbs() -> list[Verb]:
    """The verbs ``compress run`` offers as stage types."""
    return [VERBS.get(n) for n in VERBS.names() if VERBS.get(n).stage]
