"""The notebook API: ``compress.train(...)``, ``distill``, ``prune``, ``export``, ``benchmark``.

Each takes keyword arguments or a dict with the same keys as the YAML files (dotted keys such
as ``"optim.lr"`` work too), accepts an ``nn.Module`` wherever a model file is expected (it is
saved into the run's directory first, so the run stays reproducible from files), and returns a
`Result`: the output directory, the summary dict and, for training verbs, the trained model.
The same validation and the same one-line errors as the CLI apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Result:
    """What a verb returns.

    Attributes:
        output: the run directory.
        summary: ``summary.json`` (or the verb's result dict).
        model: the trained or pruned model (training verbs), loaded from its file.
    """

    output: Path
    summary: dict[str, Any] = field(default_factory=dict)
    model: Any = None

    def __getitem__(self, key: str) -> Any:
        return self.summary[key]


def _settings(cls: type, options: dict[str, Any] | None, kwargs: dict[str, Any]) -> Any:
    from compress.config import build, deep_merge, merge

    dotted = {k: v for k, v in kwargs.items() if "." in k}
    plain = {k: v for k, v in kwargs.items() if "." not in k and v is not None}
    data = merge(deep_merge(options or {}, plain), dotted)  # keywords win, nested keys merge
    return build(cls, data, where=f"compress.{cls.__name__}")


def _as_file(model: Any, directory: Path, name: str) -> str | None:
    """A path for `model`: as given when it is one, else the module saved into `directory`."""
    if model is None or isinstance(model, (str, Path)):
        return None if model is None else str(model)
    from compress.artifacts import model_header, save_model
    from compress.errors import CompressError
    from compress.outputs import make_owned_dir

    if model_header(model) is None:
        raise CompressError(
            f"the {name} module has no architecture record; build it with compress.create_model "
            "or load it with compress.load_model"
        )
    make_owned_dir(directory, kind="api")
    return str(save_model(model, directory / f"{name}.safetensors"))


def _inputs_dir(output: str | None, verb: str) -> Path:
    from compress.artifacts import default_output_dir

    base = Path(output) if output else default_output_dir(verb, "notebook")
    return base.parent / f"{base.name}.inputs"


def _trained(summary: dict[str, Any]) -> Result:
    from compress.artifacts import load_model

    out = Path(summary["output"])
    return Result(out, summary, load_model(out / "model.safetensors"))


def train(options: dict[str, Any] | None = None, /, *, log: Any = None, **kwargs: Any) -> Result:
    """Train a model from scratch (`compress train`); returns the run and the best model.

    Example:
        >>> r = compress.train(model="resnet8", data={"name": "digits"}, epochs=2)
        >>> r["top1"], r.model
    """
    from compress.train import TrainConfig
    from compress.train import train as run

    config = _settings(TrainConfig, options, kwargs)
    return _trained(run(config, log=log or print))


def distill(
    options: dict[str, Any] | None = None,
    /,
    *,
    teacher: Any = None,
    log: Any = None,
    **kwargs: Any,
) -> Result:
    """Distil a student (`compress distill`); `teacher` may be a file or an ``nn.Module``."""
    from compress.distill.api import distill as run
    from compress.distill.config import DistillConfig

    merged = {**(options or {}), **kwargs}
    path = _as_file(teacher, _inputs_dir(merged.get("output"), "distill"), "teacher")
    if path is not None:
        kwargs["teacher"] = path
    config = _settings(DistillConfig, options, kwargs)
    return _trained(run(config, log=log or print))


def prune(
    options: dict[str, Any] | None = None,
    /,
    *,
    model: Any = None,
    teacher: Any = None,
    log: Any = None,
    **kwargs: Any,
) -> Result:
    """Prune a model (`compress prune`); `model` and `teacher` may be files or modules."""
    from compress.prune.api import prune as run
    from compress.prune.config import PruneConfig

    merged = {**(options or {}), **kwargs}
    inputs = _inputs_dir(merged.get("output"), "prune")
    for name, value in (("model", model), ("teacher", teacher)):
        path = _as_file(value, inputs, name)
        if path is not None:
            kwargs[name] = path
    config = _settings(PruneConfig, options, kwargs)
    return _trained(run(config, log=log or print))


def export(
    options: dict[str, Any] | None = None, /, *, model: Any = None, log: Any = None, **kwargs: Any
) -> Result:
    """Export and validate (`compress export`); the summary is ``export.json``'s content."""
    from compress.exporters.api import export as run
    from compress.exporters.base import ExportConfig

    merged = {**(options or {}), **kwargs}
    path = _as_file(model, _inputs_dir(merged.get("output"), "export"), "model")
    if path is not None:
        kwargs["model"] = path
    result = run(_settings(ExportConfig, options, kwargs), log=log or print)
    return Result(Path(result["output"]), result)


def benchmark(
    options: dict[str, Any] | None = None,
    /,
    *,
    models: Any = None,
    log: Any = None,
    **kwargs: Any,
) -> Result:
    """The benchmark table (`compress benchmark`); `models` are files or modules."""
    from compress.deploy.benchmark import BenchmarkConfig
    from compress.deploy.benchmark import benchmark as run

    if models is not None:
        merged = {**(options or {}), **kwargs}
        inputs = _inputs_dir(merged.get("output"), "benchmark")
        items = models if isinstance(models, (list, tuple)) else [models]
        kwargs["models"] = [_as_file(m, inputs, f"model{i}") for i, m in enumerate(items)]
    result = run(_settings(BenchmarkConfig, options, kwargs), log=log or print)
    return Result(Path(result["output"]), result)
