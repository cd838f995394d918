"""``compress benchmark``: export → validate → profile every requested format, one table.

Formats (`compress.exporters.formats`): ``torch`` (the model file itself), ``onnx``,
``onnx-int8``, ``onnx-fp16``, and ``trt-fp32`` / ``trt-fp16`` / ``trt-int8``. By default the
formats this machine can run (TensorRT only where it imports; every format on an SSH target);
the ones left out are listed once under the table with the reason. A format asked for that
cannot be produced here gets a row with its reason instead of stopping the run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from compress.config import NO_HASH
from compress.deploy.profiler import ProfileSettings
from compress.errors import CompressError
from compress.exporters.base import ExportSettings
from compress.exporters.formats import FORMATS, Format
from compress.outputs import slug

#: What ``compress benchmark`` runs when no --formats is given (those this machine can run).
DEFAULT_FORMATS = ("torch", "onnx", "onnx-int8", "trt-fp16", "trt-int8")


@dataclass
class BenchmarkConfig:
    """Everything ``compress benchmark`` needs.

    Attributes:
        models: model files (``.safetensors``); several share one table and plot.
        formats: formats to run (see the module docstring); ``null``: `DEFAULT_FORMATS` that
            this machine (or the SSH target) can run.
        target: ``local`` or ``ssh://user@host[:port]``.
        batches: batch sizes; the first gives the latency columns, the last the throughput.
        min_accuracy: fail (exit non-zero) when a format that ran scores below this top-1
            (0–1, or a percentage above 1), or when any export fails validation.
        profile: timing and target options (see ``compress profile``).
        export: export options (see ``compress export``).
        output: directory for the exports, ``benchmark.{md,csv,json}`` and ``pareto.png``.
    """

    config_order: ClassVar[tuple[str, ...]] = ("models", "formats", "target", "batches")

    models: list[str] = field(default_factory=list)
    formats: list[str] | None = None
    target: str = "local"
    batches: list[int] = field(default_factory=lambda: [1, 64])
    min_accuracy: float | None = None
    profile: ProfileSettings = field(
        default_factory=lambda: ProfileSettings(iters=30, duration=0.5, eval_images=1000)
    )
    export: ExportSettings = field(default_factory=ExportSettings)
    output: str | None = field(default=None, metadata=NO_HASH)

    def __post_init__(self) -> None:
        for fmt in self.formats or ():
            try:
                FORMATS.get(fmt)
            except KeyError as exc:  # UnknownNameError: the message has the suggestion
                raise ValueError(str(exc).strip("'\"")) from None
        if not self.batches or any(b < 1 for b in self.batches):
            raise ValueError(f"batch sizes must be ≥ 1, got {self.batches}")
        if self.min_accuracy is not None and self.min_accuracy > 1:
            self.min_accuracy = self.min_accuracy / 100.0


def plan_formats(config: BenchmarkConfig) -> tuple[list[Format], dict[str, str]]:
    """The formats to run and, when none were asked for, those left out with the reason."""
    if config.formats:
        return [FORMATS.get(f) for f in config.formats], {}
    local = config.target in ("", "local")
    run, skipped = [], {}
    for name in DEFAULT_FORMATS:
        fmt = FORMATS.get(name)
        reason = fmt.unavailable() if local else None
        if reason:
            skipped[name] = reason
        else:
            run.append(fmt)
    return run, skipped


def _row(model: str, fmt: str, status: str, **values: Any) -> dict[str, Any]:
    return {"model": model, "format": fmt, "status": status, **values}


def _short(exc: BaseException) -> str:
    """The first clause of an error message (a table cell, not a paragraph)."""
    lines = str(exc).strip().splitlines()
    return lines[0].split("; ")[0] if lines else type(exc).__name__


def benchmark_model(
    path: Path, config: BenchmarkConfig, out: Path, log: Any, formats: list[Format]
) -> list[dict[str, Any]]:
    """The rows of one model: each format exported (validated) and profiled on the target."""
    from compress.artifacts import load_model
    from compress.deploy.profiler import profile_model
    from compress.deploy.targets import parse_target
    from compress.engine.metrics import model_facts
    from compress.exporters.api import export
    from compress.exporters.base import EXPORTERS, ExportConfig
    from compress.exporters.validate import ExportValidationError
    from compress.runtime.errors import AgentError

    name = slug(path.parent.name if path.name == "model.safetensors" else path.stem)
    target = parse_target(config.target, config.profile)
    remote = target.remote
    profile = dataclasses.replace(
        config.profile, target=config.target, batches=list(config.batches), json=None
    )
    export_dir = out / name
    loaded = load_model(path)
    facts = model_facts(loaded, loaded.compress_header.input_shape)
    del loaded

    def row(fmt: str, status: str, **values: Any) -> dict[str, Any]:
        return _row(name, fmt, status, params=facts["params"], macs=facts["macs"], **values)

    rows = []
    for f in formats:
        fmt, rt = f.name, f.runtime
        log(f"[{name}] {fmt}")
        try:
            if f.exporter is None:
                if not target.runs_torch:
                    rows.append(row(fmt, "not run: the device runtime has no torch"))
                    continue
                artifact, validation = path, None
                settings = dataclasses.replace(profile, runtime=rt)
            elif f.built_on_device and remote:
                # engines are built on the device from the ONNX; validated there by accuracy
                artifact, validation = path, None
                settings = dataclasses.replace(profile, runtime=rt, precision=f.precision)
            else:
                takes = EXPORTERS.get(f.exporter).options()
                given = {k: v for k, v in dataclasses.asdict(config.export).items() if k in takes}
                if "compare_speed" in takes:
                    given["compare_speed"] = False  # the benchmark times every format itself
                exp_cfg = ExportConfig(
                    **{**given, "format": f.exporter, "precision": f.precision},
                    model=str(path),
                    output=str(export_dir),
                )
                result = export(exp_cfg, log=lambda _m: None)["formats"][f.exporter]
                artifact, validation = Path(result["path"]), result["validation"]
                settings = dataclasses.replace(profile, runtime=rt)
        except ExportValidationError as exc:
            rows.append(row(fmt, f"validation failed: {'; '.join(exc.failures)}"))
            continue
        except (CompressError, AgentError) as exc:  # a format this machine cannot make or run
            rows.append(row(fmt, f"export failed: {_short(exc)}"))
            continue
        try:
            result = profile_model(artifact, settings, log=log)
        except (CompressError, AgentError) as exc:
            rows.append(row(fmt, f"profile failed: {_short(exc)}"))
            continue
        b0, b1 = str(config.batches[0]), str(config.batches[-1])
        rows.append(
            row(
                fmt,
                "ok",
                runtime=rt,
                path=str(artifact),
                size_mb=Path(artifact).stat().st_size / 1e6
                if not (remote and f.built_on_device)
                else result["model_bytes"] / 1e6,
                top1=result.get("top1"),
                p50_ms=result["batches"][b0]["p50_ms"],
                p99_ms=result["batches"][b0]["p99_ms"],
                throughput=result["batches"][b1]["throughput"],
                latency=result["batches"],
                validation=validation,
                environment=result.get("environment"),
                power=result.get("power"),
            )
        )
    return rows


def benchmark(config: BenchmarkConfig, *, log: Any = print) -> dict[str, Any]:
    """Run the benchmark; write ``benchmark.md``, ``.csv``, ``.json`` and ``pareto.png``.

    Returns:
        ``{"rows", "table", "output", "gate"}``; ``gate`` lists the failures of ``min_accuracy``.
    """
    from compress.artifacts import atomic_write_json, atomic_write_text, default_output_dir
    from compress.outputs import run_directory
    from compress.report.plots import pareto_plot
    from compress.report.tables import markdown, to_csv

    if not config.models:
        raise CompressError("give at least one model file: compress benchmark MODEL.safetensors")
    paths = [Path(m) for m in config.models]
    for p in paths:
        if not p.is_file():
            raise CompressError(f"model file '{p}' does not exist; check the path")
        if p.suffix != ".safetensors":
            raise CompressError(
                f"benchmark takes .safetensors model files (it exports them itself), not '{p.name}'"
            )
    from compress.deploy.targets import parse_target

    parse_target(config.target, config.profile)  # a bad URL fails before any work
    if config.profile.eval_images > 0:  # data that does not fit fails before any work, too
        from compress.artifacts import read_header
        from compress.data import DataSettings, load_data_for_model

        for p in paths:
            header = read_header(p)
            if header.dataset:  # as `compress eval`: classes, channels, size, the folder used
                load_data_for_model(header, DataSettings(name="", data_dir=config.profile.data_dir))
    out = (
        Path(config.output)
        if config.output
        else default_output_dir("benchmark", paths[0].parent.name or "model")
    )
    with run_directory(out, kind="benchmark", reuse=True):
        formats, skipped = plan_formats(config)
        rows: list[dict[str, Any]] = []
        for p in paths:
            rows += benchmark_model(p, config, out, log, formats)
        table = markdown(rows, latency_batch=config.batches[0], throughput_batch=config.batches[-1])
        if skipped:
            by_reason: dict[str, list[str]] = {}
            for name, reason in skipped.items():
                by_reason.setdefault(reason, []).append(name)
            table += "\n\nNot run on this machine: " + "; ".join(
                f"{', '.join(names)} ({reason})" for reason, names in by_reason.items()
            )
        gate = []
        for r in rows:
            if r["status"].startswith("validation failed"):
                gate.append(f"{r['model']} {r['format']}: {r['status']}")
            elif (
                config.min_accuracy is not None
                and r["status"] == "ok"
                and (r["top1"] or 0) < config.min_accuracy
            ):
                gate.append(
                    f"{r['model']} {r['format']}: top-1 {100 * r['top1']:.2f}% < {100 * config.min_accuracy:.2f}%"
                )
        atomic_write_text(out / "benchmark.md", table + "\n")
        atomic_write_text(out / "benchmark.csv", to_csv(rows))
        atomic_write_json(
            out / "benchmark.json",
            {
                "rows": rows,
                "target": config.target,
                "batches": config.batches,
                "min_accuracy": config.min_accuracy,
                "gate": gate,
                "skipped_formats": skipped,
            },
        )
        pareto_plot(
            rows,
            out / "pareto.png",
            title=f"accuracy vs latency (batch {config.batches[0]}, {config.target})",
        )
    return {"rows": rows, "table": table, "output": str(out), "gate": gate, "skipped": skipped}
