"""``compress profile``: latency percentiles per batch size, accuracy, size, memory, environment.

Local and remote runs go through the same measurement code (`compress.runtime.profile`); remote
runs execute it on the device, shipped as one zipapp, with only numpy and onnxruntime/tensorrt
there.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compress.config import NO_HASH
from compress.deploy.targets.base import ProfileJob, TargetSettings
from compress.errors import CompressError
from compress.header import ModelHeader

#: The largest input batch a profile allocates (bytes of float32 input).
MAX_INPUT_BYTES = 1 << 30
#: The largest batch size a profile takes.
MAX_BATCH = 65536


@dataclass
class ProfileSettings(TargetSettings):
    """How to profile (and where: the `TargetSettings` fields).

    Attributes:
        runtime: ``torch``, ``onnxruntime`` or ``tensorrt`` (default: from the file suffix).
        target: ``local``, ``ssh://user@host[:port]`` or ``subprocess://[PYTHON]``.
        batches: batch sizes of the sweep.
        warmup: untimed calls before timing each batch size.
        iters: timed calls per batch size (at least).
        duration: and time each batch size for at least this many seconds (both rules hold, so
            a fast model gets thousands of samples and its p99 means something; the JSON's
            ``runs`` is the count).
        eval_images: real test images for the accuracy check (0 = skip).
        data_dir: where the model's dataset is.
        precision: ``tensorrt`` built from an ONNX/model file: fp32, fp16 or int8.
        batch_profile: TensorRT optimisation profile ``MIN:OPT:MAX`` (widened to cover `batches`).
        threads: CPU threads (onnxruntime intra-op, torch).
        providers: onnxruntime execution providers (default CPU).
        device: torch runtime device (auto, cpu, cuda).
        compile: torch runtime: ``torch.compile`` the model.
        ssh_config: an extra ssh config file for ssh targets (``ssh -F``).
        remote_python: the Python interpreter on the device.
        validate_exports: validate the ONNX export made on the way against PyTorch (200
            images); latency-budget probes, which only time the model, skip it.
        json: also write the result to this file.
    """

    runtime: str | None = None
    batches: list[int] = field(default_factory=lambda: [1, 64])
    warmup: int = 10
    iters: int = 50
    duration: float = 1.0
    eval_images: int = 1000
    data_dir: str | None = field(default=None, metadata=NO_HASH)
    precision: str = "fp16"
    batch_profile: str = "1:32:64"
    threads: int | None = None
    providers: list[str] | None = None
    device: str = "auto"
    compile: bool = False
    validate_exports: bool = field(default=True, metadata=NO_HASH)
    json: str | None = field(default=None, metadata=NO_HASH)

    def __post_init__(self) -> None:
        if not self.batches or any(not 1 <= b <= MAX_BATCH for b in self.batches):
            raise ValueError(f"batch sizes must be between 1 and {MAX_BATCH:,}, got {self.batches}")
        if self.iters < 1 or self.warmup < 0:
            raise ValueError("iters must be ≥ 1 and warmup ≥ 0")


def model_metadata(path: Path) -> ModelHeader | None:
    """The header of a model file, or of the model an ONNX export or engine came from.

    ``None`` for a foreign ONNX file or an engine whose export record is gone.
    """
    from compress.artifacts import read_header
    from compress.exporters.onnx import onnx_header

    suffix = path.suffix
    if suffix == ".safetensors":
        return read_header(path)
    if suffix == ".onnx":
        if not path.exists():
            raise CompressError(f"'{path}' does not exist; check the path")
        return onnx_header(path)
    if suffix in (".plan", ".engine"):
        sidecar = Path(str(path) + ".json")
        if sidecar.is_file():  # the engine's own record carries the model's header
            try:
                header = json.loads(sidecar.read_text()).get("header")
            except (ValueError, AttributeError):
                header = None
            if isinstance(header, dict):
                return ModelHeader.from_dict(header, source=str(sidecar))
        index = path.parent / "export.json"
        if index.exists():
            try:
                record = json.loads(index.read_text())
                for entry in record.get("formats", {}).values():
                    if Path(entry.get("path", "")).name == path.name:
                        return model_metadata(Path(record["source"]["path"]))
            except (ValueError, KeyError, TypeError, AttributeError):
                return None
        return None
    raise CompressError(
        f"cannot profile '{path}': give a .safetensors model, an .onnx export or a TensorRT .plan"
    )


def write_eval_set(
    header: ModelHeader | None, count: int, data_dir: str | None, path: Path
) -> Path | None:
    """A compact evaluation set (uint8 images, labels, mean, std) as .npz, or None without a dataset.

    The images come at the model's recorded size, with its recorded normalisation.
    """
    import numpy as np

    from compress.data import DataSettings, check_fits, sample_split, settings_for_model

    if count <= 0 or header is None or not header.dataset:
        return None
    settings = settings_for_model(header, DataSettings(name="", data_dir=data_dir))
    images, labels, info = sample_split(settings, "test", count)
    check_fits(header, info, what="model")  # as `compress eval`: classes, channels, size
    np.savez_compressed(
        path,
        images=images,
        labels=labels,
        mean=np.asarray(info.mean, np.float32),
        std=np.asarray(info.std, np.float32),
    )
    return path


def _onnx_for(
    path: Path, precision: str, tmp: Path, data_dir: str | None, *, validate: bool = True
) -> Path:
    """The ONNX file to run or build an engine from (exported from a .safetensors when needed).

    With ``validate=False`` an fp32 export is written without being checked against PyTorch
    (latency probes only time it; the exporter itself is tested to match).
    """
    if path.suffix == ".onnx":
        return path
    if not validate and precision == "fp32":
        from compress.artifacts import load_model, read_header
        from compress.exporters.onnx import export_onnx

        return export_onnx(load_model(path), tmp / "probe.onnx", read_header(path).input_shape)
    from compress.exporters.api import export
    from compress.exporters.base import ExportConfig
    from compress.exporters.formats import onnx_format_for

    fmt = onnx_format_for(precision)
    config = ExportConfig(
        model=str(path),
        format=fmt,
        output=str(tmp / "export"),
        data_dir=data_dir,
        activation_type="int8" if fmt == "onnx-int8" else None,  # what TensorRT needs
        validate_images=200,
    )
    result = export(config, log=lambda _m: None)
    return Path(result["formats"][fmt]["path"])


def profile_model(
    path: str | Path, settings: ProfileSettings, *, log: Any = print
) -> dict[str, Any]:
    """Profile one model file, export or engine on ``settings.target``.

    Returns:
        ``{"batches": {"1": {"p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "throughput",
        "model_only": {...same keys...}}, ...},
        "top1", "accuracy", "model_bytes", "peak_rss_mb", "gpu_mem_mb", "power", "environment",
        "runtime", "target", "model"}``.
    """
    from compress.deploy.runners import runtime_for, runtime_names
    from compress.deploy.targets import parse_target
    from compress.registry import suggest

    model = Path(path)
    if settings.json:
        from compress.runtime.reports import refusal

        if refusal(settings.json):  # refused before the work, not after it
            raise CompressError(refusal(settings.json))
    target = parse_target(settings.target, settings)
    if not model.exists():
        raise CompressError(f"'{model}' does not exist; check the path")
    runtime = settings.runtime or runtime_for(str(model))
    names = runtime_names()
    if runtime is None:
        raise CompressError(
            f"cannot tell the runtime of '{model}'; pass --runtime ({', '.join(names)})"
        )
    if runtime not in names:
        raise CompressError(
            f"unknown runtime '{runtime}'.{suggest(runtime, names)} Valid: {', '.join(names)}"
        )
    if runtime == "torch" and model.suffix != ".safetensors":
        raise CompressError("--runtime torch needs a .safetensors model file")
    meta = model_metadata(model)
    shape = list(meta.input_shape) if meta is not None else None
    batches = sorted(set(settings.batches))
    if shape is not None:
        need = batches[-1] * math.prod(shape) * 4
        if need > MAX_INPUT_BYTES:
            raise CompressError(
                f"batch {batches[-1]:,} of {'×'.join(map(str, shape))} inputs needs "
                f"{need / 2**30:.1f} GiB for the input alone (at most "
                f"{MAX_INPUT_BYTES / 2**30:.0f} GiB); profile smaller batches"
            )
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        eval_path = write_eval_set(meta, settings.eval_images, settings.data_dir, tmp / "eval.npz")
        job = ProfileJob(
            model=model,
            runtime=runtime,
            meta=meta,
            settings=settings,
            tmp=tmp,
            eval_path=eval_path,
            batches=batches,
            onnx_for=lambda precision: _onnx_for(
                model, precision, tmp, settings.data_dir, validate=settings.validate_exports
            ),
            log=log,
        )
        result = target.profile(job)
    result.update(model=str(model), runtime=runtime, target=str(target))
    result["top1"] = (result.get("accuracy") or {}).get("top1")
    if settings.json:
        from compress.outputs import write_report

        write_report(settings.json, result)
    return result


def results_table(result: dict[str, Any]) -> str:
    """The per-batch latency table ``compress profile`` prints."""
    env = result.get("environment") or {}
    gpu = (env.get("gpu") or {}).get("name")
    lines = [
        f"{result['model']} on {result['target']} with {result['runtime']} "
        f"({env.get('cpu', '?')}, {env.get('cores', '?')} cores{', ' + gpu if gpu else ''})",
        "",
        "| batch | p50 ms | p90 ms | p99 ms | mean ms | throughput (img/s) | model-only p50 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for b, s in result["batches"].items():
        model_only = s.get("model_only", {}).get("p50_ms")
        lines.append(
            f"| {b} | {s['p50_ms']:.3f} | {s['p90_ms']:.3f} | {s['p99_ms']:.3f} | {s['mean_ms']:.3f} | "
            f"{s['throughput']:.0f} | {'–' if model_only is None else f'{model_only:.3f}'} |"
        )
    facts = [f"size {result['model_bytes'] / 1e6:.2f} MB"]
    if result.get("top1") is not None:
        facts.insert(
            0, f"top-1 {100 * result['top1']:.2f}% on {result['accuracy']['samples']:,} test images"
        )
    if result.get("peak_rss_mb"):
        facts.append(f"peak RSS {result['peak_rss_mb']:.0f} MB")
    if result.get("gpu_mem_mb") is not None:
        facts.append(f"GPU memory {result['gpu_mem_mb']:.0f} MB")
    power = result.get("power") or {}
    if power.get("power_mw_mean"):
        facts.append(f"board power {power['power_mw_mean'] / 1000:.2f} W (tegrastats)")
    jetson = env.get("jetson")
    if jetson:
        mode = (jetson.get("nvpmodel") or {}).get("name")
        facts.append(
            f"L4T {jetson.get('l4t')}, nvpmodel {mode}, jetson_clocks {'on' if jetson.get('jetson_clocks') else 'off'}"
        )
    lines += ["", "; ".join(facts)]
    return "\n".join(lines)
