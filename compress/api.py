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


@dataclass(repr=False)
class Result:
    """What a verb returns.

    Attributes:
        output: the run directory.
        summary: ``summary.json`` (or the verb's result dict).
        model: the trained or pruned model (training verbs), loaded from its file.
        verb: the verb that made it.
    """

    output: Path
    summary: dict[str, Any] = field(default_factory=dict)
    model: Any = None
    verb: str = ""

    def __getitem__(self, key: str) -> Any:
        return self.summary[key]

    def keys(self) -> list[str]:
        """The summary's keys (``r["top1"]`` reads one)."""
        return list(self.summary)

    def to_dict(self) -> dict[str, Any]:
        """The summary and the output folder, as plain data."""
        return {"verb": self.verb, "output": str(self.output), **self.summary}

    def __repr__(self) -> str:
        top1 = self.summary.get("top1_int8", self.summary.get("top1"))
        score = f", top-1 {100 * top1:.2f}%" if isinstance(top1, (int, float)) else ""
        return f"Result({self.verb or 'run'}{score}, output={str(self.output)!r})"


def _settings(cls: type, options: dict[str, Any] | None, kwargs: dict[str, Any]) -> Any:
    from collections.abc import Mapping

    from compress.config import build, deep_merge, merge
    from compress.errors import ConfigError

    if options is not None and not isinstance(options, Mapping):
        raise ConfigError(
            f"the options of compress.{cls.__name__} must be a dict of config keys, not "
            f"{type(options).__name__}"
        )
    options = dict(options or {})
    for key in options:
        if not isinstance(key, str):
            raise ConfigError(f"config keys must be strings, got {key!r}")

    def split(d: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        dotted = {k: v for k, v in d.items() if "." in k}
        return {k: v for k, v in d.items() if "." not in k}, dotted

    opt_plain, opt_dotted = split(options)
    kw_plain, kw_dotted = split({k: v for k, v in kwargs.items() if v is not None})
    # the dict first (its dotted keys too), then the keywords; nested keys merge key by key
    data = merge(deep_merge(merge(opt_plain, opt_dotted), kw_plain), kw_dotted)
    return build(cls, data, where=f"compress.{cls.__name__}")


class _Inputs:
    """Where modules given to a verb are saved as files (``<output>.inputs/``).

    Used as a context manager around the run: when the verb refuses to start (a bad option, a
    folder that is not compress's) the folder made for its inputs is removed again, so a
    refused call leaves nothing behind; after a run has started the files stay, for a resume.
    """

    def __init__(self, output: Any, verb: str) -> None:
        from compress.artifacts import default_output_dir

        self.output = Path(output) if output else default_output_dir(verb, "notebook")
        self.directory = self.output.parent / f"{self.output.name}.inputs"
        self.created = False

    def file(self, model: Any, name: str) -> str | None:
        """A path for `model`: as given when it is one, else the module saved here."""
        if model is None or isinstance(model, (str, Path)):
            return None if model is None else str(model)
        from compress.artifacts import model_header, save_model
        from compress.errors import CompressError
        from compress.outputs import make_owned_dir

        if model_header(model) is None:
            raise CompressError(
                f"the {name} module has no architecture record; build it with "
                "compress.create_model or load it with compress.load_model"
            )
        if not self.directory.exists():
            self.created = True
        make_owned_dir(self.directory, kind="api")
        return str(save_model(model, self.directory / f"{name}.safetensors"))

    def __enter__(self) -> _Inputs:
        return self

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        from compress.outputs import RUN_FILES, remove_owned

        started = any((self.output / f).exists() for f in RUN_FILES if f != "config.yaml")
        if kind is not None and self.created and not started:
            remove_owned(self.directory)


def _output(options: Any, kwargs: dict[str, Any]) -> Any:
    """The ``output`` a call asks for (keyword first, then the dict)."""
    if kwargs.get("output") is not None:
        return kwargs["output"]
    return options.get("output") if isinstance(options, dict) else None


def _trained(summary: dict[str, Any], verb: str = "") -> Result:
    from compress.artifacts import load_model

    out = Path(summary["output"])
    return Result(out, summary, load_model(out / "model.safetensors"), verb)


def train(options: dict[str, Any] | None = None, /, *, log: Any = None, **kwargs: Any) -> Result:
    """Train a model from scratch (`compress train`); returns the run and the best model.

    Example:
        >>> r = compress.train(model="resnet8", data={"name": "digits"}, epochs=2)
        >>> r["top1"], r.model
    """
    from compress.verbs import VERBS

    verb = VERBS.get("train")
    return _trained(verb(_settings(verb.config_cls(), options, kwargs), log=log or print), "train")


def distill(
    options: dict[str, Any] | None = None,
    /,
    *,
    teacher: Any = None,
    log: Any = None,
    **kwargs: Any,
) -> Result:
    """Distil a student (`compress distill`); `teacher` may be a file or an ``nn.Module``."""
    from compress.verbs import VERBS

    verb = VERBS.get("distill")

    with _Inputs(_output(options, kwargs), "distill") as inputs:
        path = inputs.file(teacher, "teacher")
        if path is not None:
            kwargs["teacher"] = path
        config = _settings(verb.config_cls(), options, kwargs)
        return _trained(verb(config, log=log or print), verb.name)


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
    from compress.verbs import VERBS

    verb = VERBS.get("prune")

    with _Inputs(_output(options, kwargs), "prune") as inputs:
        for name, value in (("model", model), ("teacher", teacher)):
            path = inputs.file(value, name)
            if path is not None:
                kwargs[name] = path
        config = _settings(verb.config_cls(), options, kwargs)
        return _trained(verb(config, log=log or print), verb.name)


def export(
    options: dict[str, Any] | None = None, /, *, model: Any = None, log: Any = None, **kwargs: Any
) -> Result:
    """Export and validate (`compress export`); the summary is ``export.json``'s content."""
    from compress.verbs import VERBS

    verb = VERBS.get("export")

    with _Inputs(_output(options, kwargs), "export") as inputs:
        path = inputs.file(model, "model")
        if path is not None:
            kwargs["model"] = path
        result = verb(_settings(verb.config_cls(), options, kwargs), log=log or print)
    return Result(Path(result["output"]), result, verb=verb.name)


def benchmark(
    options: dict[str, Any] | None = None,
    /,
    *,
    models: Any = None,
    log: Any = None,
    **kwargs: Any,
) -> Result:
    """The benchmark table (`compress benchmark`); `models` are files or modules."""
    from compress.verbs import VERBS

    verb = VERBS.get("benchmark")

    with _Inputs(_output(options, kwargs), "benchmark") as inputs:
        if models is not None:
            items = models if isinstance(models, (list, tuple)) else [models]
            kwargs["models"] = [inputs.file(m, _name(m, i)) for i, m in enumerate(items)]
        result = verb(_settings(verb.config_cls(), options, kwargs), log=log or print)
    return Result(Path(result["output"]), result, verb=verb.name)


def _name(model: Any, index: int) -> str:
    """A file name for an in-memory model: its class, and its place when there are several."""
    from compress.outputs import slug

    return f"{slug(type(model).__name__)}-{index}" if not isinstance(model, (str, Path)) else ""


def quantize(
    options: dict[str, Any] | None = None,
    /,
    *,
    model: Any = None,
    teacher: Any = None,
    log: Any = None,
    **kwargs: Any,
) -> Result:
    """Quantization-aware training / distillation (`compress quantize`).

    `model` and `teacher` may be files or modules; returns the run and the fake-quantized model.
    """
    from compress.verbs import VERBS

    verb = VERBS.get("quantize")
    with _Inputs(_output(options, kwargs), "quantize") as inputs:
        for name, value in (("model", model), ("teacher", teacher)):
            path = inputs.file(value, name)
            if path is not None:
                kwargs[name] = path
        config = _settings(verb.config_cls(), options, kwargs)
        return _trained(verb(config, log=log or print), verb.name)


def _signature(config: str, *files: str) -> Any:
    """The signature a verb shows (``help``, tab completion).

    The options dict, then every key of its config as a keyword with its default, the module
    arguments and ``log``.
    """
    import dataclasses
    import importlib
    import inspect

    module, _, name = config.partition(":")
    cls = getattr(importlib.import_module(module), name)
    from compress.config import to_dict

    params = [inspect.Parameter("options", inspect.Parameter.POSITIONAL_ONLY, default=None)]
    taken = {"options", "log", *files}
    first = list(getattr(cls, "config_order", ()))
    fields = sorted(
        (f for f in dataclasses.fields(cls) if f.init and f.name not in taken),
        key=lambda f: first.index(f.name) if f.name in first else len(first),
    )
    for f in fields:
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None if f.default is dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            default = to_dict(default)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default))
    for extra in files:
        params.append(inspect.Parameter(extra, inspect.Parameter.KEYWORD_ONLY, default=None))
    params.append(inspect.Parameter("log", inspect.Parameter.KEYWORD_ONLY, default=None))
    return inspect.Signature(params, return_annotation="Result")


#: Each verb's config class and the module arguments it takes (files or nn.Modules).
SIGNATURES = {
    "train": ("compress.train:TrainConfig", ()),
    "distill": ("compress.distill.config:DistillConfig", ("teacher",)),
    "prune": ("compress.prune.config:PruneConfig", ("model", "teacher")),
    "quantize": ("compress.quantize.config:QuantizeConfig", ("model", "teacher")),
    "export": ("compress.exporters.base:ExportConfig", ("model",)),
    "benchmark": ("compress.deploy.benchmark:BenchmarkConfig", ("models",)),
}


def signature(verb: str) -> Any:
    """`inspect.Signature` of notebook verb `verb`."""
    config, files = SIGNATURES[verb]
    return _signature(config, *files)


for _verb in ("export", "benchmark"):  # plain functions: their signature set here
    globals()[_verb].__signature__ = signature(_verb)
