"""Model files, run directories and atomic writes.

A model is one ``.safetensors`` file. Its metadata holds a JSON header under the key
``"compress"``: the registry name and kwargs of the architecture, number of classes, input
shape and normalisation, the pruning history (so a pruned model is rebuilt by replaying it on a
fresh instance) and provenance. `load_model` needs nothing else. No pickles are involved.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compress.atomic import (  # noqa: F401  (re-exported: the file helpers live at the bottom)
    append_jsonl,
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    file_ref,
    file_sha256,
)
from compress.errors import CompressError, ModelFileError
from compress.header import ModelHeader

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

HEADER_KEY = "compress"
#: Largest header JSON read, and largest model a header may ask to build (parameters).
MAX_HEADER_BYTES = 16 << 20
MAX_PARAMS = 500_000_000

#: Header keys `save_model` accepts as keyword arguments.
HEADER_FIELDS = (
    "num_classes",
    "in_channels",
    "input_size",
    "mean",
    "std",
    "dataset",
    "class_names",
    "pruning",
    "quantization",
    "metrics",
    "config_hash",
    "parent",
    "teacher",
    "source",
    "extra",
)


# --------------------------------------------------------------------------- run directories


def default_output_dir(verb: str, stem: str, root: str | Path = "runs") -> Path:
    """``runs/<verb>/<stem>``, or ``<stem>-2``, ``<stem>-3``, ... when taken (like yolo's exp2)."""
    from compress.outputs import slug

    base = Path(root) / verb
    stem = slug(stem)
    candidate = base / stem
    n = 2
    while candidate.exists():
        candidate = base / f"{stem}-{n}"
        n += 1
    return candidate


# --------------------------------------------------------------------------- model files


def model_header(model: nn.Module) -> ModelHeader | None:
    """The header a model carries (set by `create_model` / `load_model`), or ``None``."""
    header = getattr(model, "compress_header", None)
    return copy.deepcopy(header) if isinstance(header, ModelHeader) else None


def save_model(model: nn.Module, path: str | Path, **meta: Any) -> Path:
    """Save `model` as one ``.safetensors`` file with a self-describing JSON header.

    The architecture (registry name + kwargs) comes from the model itself, which must have been
    built by `compress.create_model` or loaded by `compress.load_model`. Anything the model
    already carries (normalisation, pruning history, ...) is kept unless overridden here.

    Args:
        model: the model to save.
        path: destination; written atomically.
        **meta: header fields to set: ``num_classes``, ``in_channels``, ``input_size`` (H, W),
            ``mean``, ``std``, ``dataset``, ``class_names``, ``pruning`` (history),
            ``quantization`` (the fake-quantization record), ``metrics``,
            ``config_hash``, ``parent`` (path of the file this one derives from), ``teacher``
            (path of the teacher it was distilled from), ``source`` (provenance of imported
            weights), ``extra`` (any JSON data).

    Returns:
        The path written.
    """
    from safetensors.torch import save as st_save

    from compress._version import __version__

    unknown = sorted(set(meta) - set(HEADER_FIELDS))
    if unknown:
        raise TypeError(f"save_model() got unknown header fields {unknown}; valid: {HEADER_FIELDS}")
    header = model_header(model)
    if header is None:
        raise CompressError(
            "this model has no architecture record; build it with compress.create_model(...) "
            "or load it with compress.load_model(...) so it can be saved and rebuilt"
        )
    provenance = dict(header.provenance)
    for key in ("config_hash", "parent", "teacher", "source"):
        if key in meta:
            value = meta.pop(key)
            if key in ("parent", "teacher") and value is not None:
                value = file_ref(value) if not isinstance(value, dict) else value
            provenance[key] = value
    provenance.update(
        toolkit_version=__version__,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    header = header.replace(**meta, provenance=provenance)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    text = json.dumps(header.to_dict(), default=_json_default)
    blob = st_save(state, metadata={HEADER_KEY: text})
    target = Path(path)
    atomic_write_bytes(target, blob)
    model.compress_header = header  # type: ignore[assignment]
    return target


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"header value of type {type(value).__name__} is not JSON-serialisable")


def describe_foreign_file(path: Path) -> str | None:
    """What `path` is, when it is a model of another kind (pickle, zip checkpoint, ONNX, ...).

    Returns a sentence that says how to bring it in, or ``None`` when it looks like safetensors.
    """
    import zipfile

    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return None
    suffix = path.suffix.lower()
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < (1 << 30):
        return None  # a safetensors file: 8-byte header length, then its JSON header
    if suffix in (".plan", ".engine", ".trt"):
        return (
            "a TensorRT engine; profile it with `compress profile FILE` (engines are built from "
            "ONNX exports, not loaded as models)"
        )
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError):
            names = []
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            return (
                "a TorchScript archive; compress rebuilds models from weights, so save the "
                "state_dict() of the scripted model's original nn.Module and run `compress import`"
            )
        return (
            "a PyTorch checkpoint (torch.save zip); bring it in with `compress import FILE --arch "
            "NAME --num-classes N --output model.safetensors`"
        )
    if head[:1] == b"\x80":
        return (
            "a pickle (torch.save legacy format or a pickled model); compress never unpickles "
            "models: save its state_dict() with torch.save and run `compress import`"
        )
    if suffix == ".onnx" or (head[:1] == b"\x08" and b"onnx" in _peek(path, 256).lower()):
        return (
            "an ONNX model; profile it with `compress profile FILE` (training verbs need a "
            "compress .safetensors model file)"
        )
    return None


def _peek(path: Path, n: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


def _metadata(path: Path) -> tuple[dict[str, str], dict[str, list[int]]]:
    """The safetensors metadata and the shape of every tensor, without reading the weights."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        metadata = fh.metadata() or {}
        shapes = {k: list(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118 (safe_open is no dict)
    return metadata, shapes


def read_header(path: str | Path) -> ModelHeader:
    """Read and check the header of a compress model file without loading its weights.

    Raises:
        ModelFileError: the file is missing, truncated, of another kind (the message says how
            to bring it in), or its header is invalid.
    """
    return _read(Path(path))[0]


def _read(p: Path) -> tuple[ModelHeader, dict[str, list[int]]]:
    if not p.exists():
        raise ModelFileError(f"model file '{p}' does not exist; check the path")
    if p.is_dir():
        hint = (
            " (did you mean its model.safetensors?)" if (p / "model.safetensors").exists() else ""
        )
        raise ModelFileError(f"'{p}' is a directory, not a model file{hint}")
    foreign = describe_foreign_file(p)
    if foreign:
        raise ModelFileError(f"'{p}' is {foreign}")
    try:
        metadata, shapes = _metadata(p)
    except Exception as exc:  # safetensors raises its own error types for every corruption
        raise ModelFileError(
            f"'{p}' is not a readable .safetensors model file (truncated or corrupt: "
            f"{_first_line(exc)}); re-create it or pass another file"
        ) from None
    if HEADER_KEY not in metadata:
        raise ModelFileError(
            f"'{p}' is a plain safetensors file with no compress header (weights only); bring it "
            "in with `compress import FILE --arch NAME --num-classes N --output model.safetensors`"
        )
    raw = metadata[HEADER_KEY]
    if len(raw) > MAX_HEADER_BYTES:
        raise ModelFileError(f"'{p}' has a compress header of {len(raw):,} bytes; it is corrupt")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ModelFileError(f"'{p}' has a corrupt compress header: {_first_line(exc)}") from None
    return ModelHeader.from_dict(data, source=str(p)), shapes


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Load the tensors of a model file (CPU)."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:
        raise ModelFileError(
            f"'{path}' could not be read ({_first_line(exc)}); the file is truncated or corrupt"
        ) from None


def _check_size(header: ModelHeader, shapes: dict[str, list[int]], path: Path) -> None:
    """Refuse a header that would build a model far bigger than the weights in the file.

    The architecture is built on PyTorch's ``meta`` device (no memory) and counted first.
    """
    import torch

    from compress.models import create_model

    with torch.device("meta"):
        skeleton = create_model(header.arch, **header.arch_kwargs)
    wanted = sum(p.numel() for p in skeleton.parameters())
    stored = sum(math.prod(s) for s in shapes.values())
    limit = min(MAX_PARAMS, stored * 1000) if header.pruned else stored * 2
    if wanted > limit:
        raise ModelFileError(
            f"'{path}' describes a {header.arch} of {wanted:,} parameters but holds "
            f"{stored:,} weights; the header is corrupt or belongs to another file"
        )


def load_model(path: str | Path, *, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model from its ``.safetensors`` file: architecture, pruning, weights.

    The returned model is in eval mode and carries its header as ``model.compress_header``
    (a `ModelHeader`).

    Raises:
        ModelFileError: if the file is missing, corrupt, or its weights do not fit the recorded
            architecture.
    """
    from compress.models import create_model

    p = Path(path)
    header, shapes = _read(p)
    _check_size(header, shapes, p)
    model = create_model(header.arch, **header.arch_kwargs)
    if header.pruned:
        from compress.models.pruning import replay_history

        try:
            replay_history(model, header.pruning)  # type: ignore[arg-type]
        except Exception as exc:  # torch-pruning's errors for a history of another model
            raise ModelFileError(
                f"the pruning history in '{p}' does not fit architecture '{header.arch}' "
                f"({_first_line(exc)}); the file is corrupt"
            ) from None
    if header.quantized:
        from compress.quantize.graph import rebuild

        model = rebuild(model, header.quantization)  # type: ignore[arg-type]
    state = load_state(p)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(
            f"the weights in '{p}' do not fit architecture '{header.arch}': {_first_line(exc)}"
        ) from None
    model.compress_header = header  # type: ignore[assignment]
    if header.quantized:  # a loaded model's scales are fixed: evaluating it never moves them
        from compress.quantize.graph import set_fake_quant, set_observers

        set_observers(model, False)
        set_fake_quant(model, True)
    return model.to(device).eval()
