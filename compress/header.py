"""The model header: one typed object, checked and bounded where a model file is read.

A model file's safetensors metadata holds this header as JSON under the key ``"compress"``.
`ModelHeader.from_dict` is the only code that reads that JSON: it checks every field's type and
bounds it (classes, channels, input size, pruning history) before anything is built from it, so
a hostile or corrupt header cannot make the toolkit allocate terabytes or run code. Everything
past the file boundary takes the object.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from compress.errors import ModelFileError

FORMAT_NAME = "compress-model"
FORMAT_VERSION = 1

#: Bounds on what a header may ask to build.
MAX_CLASSES = 50_000
MAX_CHANNELS = 64
MAX_SIDE = 1024
MAX_NAME = 200
MAX_ROUNDS = 32
MAX_PRUNED_INDICES = 10_000_000
MAX_JSON_DEPTH = 12
MAX_JSON_ITEMS = 2_000_000

#: Sane normalisation on the 0–1 pixel scale (as `compress.data.base.MEAN_RANGE` / `STD_RANGE`).
MEAN_RANGE = (-1.0, 2.0)
STD_RANGE = (1e-3, 10.0)

#: Input size assumed for a model that records none (a freshly created CIFAR-style model).
DEFAULT_INPUT_SIZE = (32, 32)


@dataclass
class ModelHeader:
    """What a model file says about its model.

    Attributes:
        arch: registry name of the architecture.
        arch_kwargs: the keyword arguments it was built with (``num_classes``, ...).
        num_classes: classifier outputs.
        in_channels: image channels.
        input_size: (H, W) the model was trained at; ``None`` when never recorded.
        mean: per-channel normalisation mean (0–1 scale).
        std: per-channel normalisation std.
        dataset: registry name of the dataset it was trained on.
        class_names: one name per class.
        pruning: the replayable pruning history (``{"rounds": [...]}``), or ``None``.
        quantization: the replayable fake-quantization record (`compress.quantize.graph`),
            replayed after the pruning history; ``None`` for a float model.
        metrics: the metrics recorded at save time (``top1``, ``epoch``, ...).
        provenance: toolkit version, creation time, config hash, parent / teacher / source files.
        extra: any JSON data a verb adds (method, seed, ...).
        format_version: the model-file format version.
    """

    arch: str
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    num_classes: int = 10
    in_channels: int = 3
    input_size: tuple[int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    dataset: str | None = None
    class_names: tuple[str, ...] | None = None
    pruning: dict[str, Any] | None = None
    quantization: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] | None = None
    format_version: int = FORMAT_VERSION

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one input (``DEFAULT_INPUT_SIZE`` when no size was recorded)."""
        h, w = self.input_size or DEFAULT_INPUT_SIZE
        return self.in_channels, h, w

    @property
    def quantized(self) -> bool:
        """Whether the file carries fake quantization."""
        return bool(self.quantization)

    @property
    def pruned(self) -> bool:
        """Whether the file carries a pruning history."""
        return bool(self.pruning and self.pruning.get("rounds"))

    def replace(self, **changes: Any) -> ModelHeader:
        """A copy with `changes` applied (and checked)."""
        return ModelHeader.from_dict({**self.to_dict(), **_dict_names(changes)}, source="header")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in the file."""
        return {
            "format": FORMAT_NAME,
            "format_version": self.format_version,
            "arch": {"name": self.arch, "kwargs": dict(self.arch_kwargs)},
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "input_size": list(self.input_size) if self.input_size else None,
            "mean": list(self.mean) if self.mean is not None else None,
            "std": list(self.std) if self.std is not None else None,
            "dataset": self.dataset,
            "class_names": list(self.class_names) if self.class_names is not None else None,
            "pruning": self.pruning,
            "quantization": self.quantization,
            "metrics": self.metrics,
            "provenance": dict(self.provenance),
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "model file") -> ModelHeader:
        """Check and bound a header read from JSON.

        Raises:
            ModelFileError: a field is missing, of the wrong type or out of bounds (the message
                names the field and the file).
        """
        check = _Checker(source)
        if not isinstance(data, dict):
            check.fail("header", f"must be a JSON object, not {type(data).__name__}")
        check.json_size(data)
        if data.get("format", FORMAT_NAME) != FORMAT_NAME:
            check.fail("format", f"is {data.get('format')!r}, not {FORMAT_NAME!r}")
        version = check.integer(data, "format_version", 0, 10**6, default=FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise ModelFileError(
                f"'{source}' was written by a newer compress (model format {version}); upgrade "
                "compress-toolkit to read it"
            )
        arch = data.get("arch")
        if not isinstance(arch, dict) or not isinstance(arch.get("name"), str):
            check.fail("arch", "must be an object with the architecture's registry 'name'")
        name = check.text(arch, "name", "arch.name")
        kwargs = arch.get("kwargs") or {}
        if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            check.fail("arch.kwargs", "must be an object of option names to values")
        for key, value in kwargs.items():
            if not _is_plain_option(value):
                check.fail(f"arch.kwargs.{key}", f"must be a number, string or flag, not {value!r}")
        num_classes = check.integer(data, "num_classes", 1, MAX_CLASSES)
        in_channels = check.integer(data, "in_channels", 1, MAX_CHANNELS)
        for key, value in (("num_classes", num_classes), ("in_channels", in_channels)):
            if key in kwargs and kwargs[key] != value:
                check.fail(f"arch.kwargs.{key}", f"is {kwargs[key]!r} but {key} is {value}")
        input_size = check.size(data.get("input_size"), "input_size")
        mean = check.floats(data.get("mean"), "mean", in_channels)
        std = check.floats(data.get("std"), "std", in_channels)
        if std is not None and any(v <= 0 for v in std):
            check.fail("std", "must be positive")
        for key, values, (lo, hi) in (("mean", mean, MEAN_RANGE), ("std", std, STD_RANGE)):
            if values is not None and not all(lo <= v <= hi for v in values):
                check.fail(key, f"must be between {lo:g} and {hi:g} (the 0–1 pixel scale)")
        names = data.get("class_names")
        if names is not None:
            if not isinstance(names, list) or len(names) != num_classes:
                check.fail("class_names", f"must be a list of {num_classes} names")
            names = tuple(check.text({"n": n}, "n", "class_names[]") for n in names)
        dataset = data.get("dataset")
        if dataset is not None:
            dataset = check.text(data, "dataset", "dataset")
        return cls(
            arch=name,
            arch_kwargs=dict(kwargs),
            num_classes=num_classes,
            in_channels=in_channels,
            input_size=input_size,
            mean=mean,
            std=std,
            dataset=dataset,
            class_names=names,
            pruning=check.pruning(data.get("pruning")),
            quantization=check.quantization(data.get("quantization")),
            metrics=check.mapping(data, "metrics"),
            provenance=check.mapping(data, "provenance") or {},
            extra=check.mapping(data, "extra"),
            format_version=version,
        )


def _dict_names(changes: dict[str, Any]) -> dict[str, Any]:
    """Attribute names → JSON keys for `ModelHeader.replace` (tuples become lists)."""
    out = {}
    for key, value in changes.items():
        if key == "arch_kwargs":
            continue
        if isinstance(value, tuple):
            value = list(value)
        out[key] = value
    if "arch" in changes or "arch_kwargs" in changes:
        raise TypeError("the architecture of a header cannot be replaced")
    return out


def _is_plain_option(value: Any) -> bool:
    if value is None or isinstance(value, (bool, str)):
        return not isinstance(value, str) or len(value) <= MAX_NAME
    if isinstance(value, int):
        return abs(value) <= 10**9
    if isinstance(value, float):
        return math.isfinite(value) and abs(value) <= 1e9
    if isinstance(value, list):
        return len(value) <= 64 and all(
            _is_plain_option(v) and not isinstance(v, list) for v in value
        )
    return False


class _Checker:
    """Field checks that raise one `ModelFileError` naming the file and the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> None:
        if not key.isprintable():  # a hostile field name must not break the one-line message
            key = repr(key)
        raise ModelFileError(
            " ".join(
                f"'{self.source}' has an invalid header: {key} {problem}; the file is corrupt or "
                "was not written by compress (re-create it, or bring weights in with `compress "
                "import`)".split()
            )
        )

    def json_size(self, data: Any) -> None:
        count = 0
        stack = [(data, 0)]
        while stack:
            value, depth = stack.pop()
            count += 1
            if depth > MAX_JSON_DEPTH or count > MAX_JSON_ITEMS:
                self.fail("header", "is nested too deeply or holds too many values")
            if isinstance(value, dict):
                stack.extend((v, depth + 1) for v in value.values())
            elif isinstance(value, list):
                stack.extend((v, depth + 1) for v in value)

    def integer(
        self, data: dict[str, Any], key: str, lo: int, hi: int, *, default: int | None = None
    ) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"must be an integer, not {value!r}")
        if not lo <= value <= hi:
            self.fail(key, f"is {value}; it must be between {lo} and {hi:,}")
        return value

    def text(self, data: dict[str, Any], key: str, label: str) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME:
            self.fail(label, f"must be a name of 1 to {MAX_NAME} characters, not {value!r}")
        return value

    def size(self, value: Any, key: str) -> tuple[int, int] | None:
        if value is None:
            return None
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            self.fail(key, f"must be [height, width], not {value!r}")
        if not all(1 <= v <= MAX_SIDE for v in value):
            self.fail(key, f"is {value}; each side must be between 1 and {MAX_SIDE}")
        return int(value[0]), int(value[1])

    def floats(self, value: Any, key: str, length: int) -> tuple[float, ...] | None:
        if value is None:
            return None
        if (
            not isinstance(value, list)
            or len(value) != length
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            or not all(math.isfinite(v) for v in value)
        ):
            self.fail(key, f"must be a list of {length} finite numbers (one per channel)")
        return tuple(float(v) for v in value)

    def mapping(self, data: dict[str, Any], key: str) -> dict[str, Any] | None:
        value = data.get(key)
        if value is not None and not isinstance(value, dict):
            self.fail(key, f"must be an object, not {type(value).__name__}")
        return value

    def quantization(self, value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("scheme"), str):
            self.fail("quantization", "must be an object with a 'scheme'")
        layers = value.get("layers")
        if not isinstance(layers, list) or len(layers) > 100_000:
            self.fail("quantization.layers", "must be a list of at most 100,000 layer names")
        if not all(isinstance(n, str) and 0 < len(n) <= MAX_NAME for n in layers):
            self.fail("quantization.layers", "must hold layer names")
        self.integer(value, "activations", 0, 1_000_000)
        if not isinstance(value.get("reduce_range", False), bool):
            self.fail("quantization.reduce_range", "must be true or false")
        return value

    def pruning(self, value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        rounds = value.get("rounds") if isinstance(value, dict) else None
        if not isinstance(rounds, list) or len(rounds) > MAX_ROUNDS:
            self.fail("pruning", f"must be an object with a list of at most {MAX_ROUNDS} 'rounds'")
        total = 0
        for i, record in enumerate(rounds):
            where = f"pruning.rounds[{i}]"
            if not isinstance(record, dict) or not isinstance(record.get("history"), list):
                self.fail(where, "must be an object with a 'history' list")
            shape = record.get("input_shape")
            if not isinstance(shape, list) or len(shape) != 3:
                self.fail(f"{where}.input_shape", "must be [channels, height, width]")
            self.integer({"c": shape[0]}, "c", 1, MAX_CHANNELS)
            self.size(shape[1:], f"{where}.input_shape")
            for step in record["history"]:
                if (
                    not isinstance(step, list)
                    or len(step) != 3
                    or not isinstance(step[0], str)
                    or not isinstance(step[1], bool)
                    or not isinstance(step[2], list)
                    or not all(
                        isinstance(j, int) and not isinstance(j, bool) and 0 <= j < 10**6
                        for j in step[2]
                    )
                ):
                    self.fail(
                        f"{where}.history",
                        "must list [layer name, out-channels flag, channel indices] steps",
                    )
                total += len(step[2])
        if total > MAX_PRUNED_INDICES:
            self.fail("pruning", "lists more pruned channels than any model has")
        return value


def header_fields() -> tuple[str, ...]:
    """The attribute names of `ModelHeader` (for error messages)."""
    return tuple(f.name for f in dataclasses.fields(ModelHeader))
