"""Model files, run directories and atomic writes.

A model is one ``.safetensors`` file. Its metadata holds a JSON header under the key
``"compress"``: the registry name and kwargs of the architecture, number of classes, input
shape and normalisation, the pruning history (so a pruned model is rebuilt by replaying it on a
fresh instance) and provenance. `load_model` needs nothing else. No pickles are involved.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compress.errors import CompressError, ModelFileError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

FORMAT_NAME = "compress-model"
FORMAT_VERSION = 1
HEADER_KEY = "compress"

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
    "metrics",
    "config_hash",
    "parent",
    "teacher",
    "extra",
)


# --------------------------------------------------------------------------- atomic writes


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is fsynced and renamed onto `path`.

    A crash or kill at any moment leaves either the old file or the new one, never a torn one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, target)
        with contextlib.suppress(OSError):
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> None:
    """Write `data` as indented JSON to `path` atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON line to `path` (used for append-only logs such as ``metrics.jsonl``)."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def file_sha256(path: str | Path) -> str:
    """The SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_ref(path: str | Path) -> dict[str, str]:
    """A provenance reference to a file: its path and SHA-256."""
    p = Path(path)
    return {"path": str(p), "sha256": file_sha256(p)}


# --------------------------------------------------------------------------- run directories


def prepare_output_dir(
    path: str | Path, *, resume: bool = False, markers: tuple[str, ...] = ("state.pt",)
) -> Path:
    """Create an output directory, refusing to overwrite an earlier run unless resuming.

    Raises:
        CompressError: if `path` already holds one of `markers` and `resume` is false, or if
            `resume` is true and there is nothing to resume.
    """
    out = Path(path)
    found = [m for m in markers if (out / m).exists()]
    if found and not resume:
        raise CompressError(
            f"output directory '{out}' already holds a run ({found[0]}); pass --resume to continue "
            "it or choose another --output"
        )
    if resume and not found:
        raise CompressError(
            f"--resume given but '{out}' holds no run to resume (no {markers[0]}); drop --resume "
            "to start a new run"
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


def default_output_dir(verb: str, stem: str, root: str | Path = "runs") -> Path:
    """``runs/<verb>/<stem>``, or ``<stem>-2``, ``<stem>-3``, ... when taken (like yolo's exp2)."""
    base = Path(root) / verb
    candidate = base / stem
    n = 2
    while candidate.exists():
        candidate = base / f"{stem}-{n}"
        n += 1
    return candidate


# --------------------------------------------------------------------------- model files


def model_header(model: nn.Module) -> dict[str, Any]:
    """The header a model carries (set by `create_model` / `load_model`), or an empty dict."""
    return copy.deepcopy(getattr(model, "compress_header", None) or {})


def save_model(model: nn.Module, path: str | Path, **meta: Any) -> Path:
    """Save `model` as one ``.safetensors`` file with a self-describing JSON header.

    The architecture (registry name + kwargs) comes from the model itself, which must have been
    built by `compress.create_model` or loaded by `compress.load_model`. Anything the model
    already carries (normalisation, pruning history, ...) is kept unless overridden here.

    Args:
        model: the model to save.
        path: destination; written atomically.
        **meta: header fields to set: ``num_classes``, ``in_channels``, ``input_size`` (H, W),
            ``mean``, ``std``, ``dataset``, ``class_names``, ``pruning`` (history), ``metrics``,
            ``config_hash``, ``parent`` (path of the file this one derives from), ``teacher``
            (path of the teacher it was distilled from), ``extra`` (any JSON data).

    Returns:
        The path written.
    """
    from safetensors.torch import save as st_save

    from compress import __version__

    unknown = sorted(set(meta) - set(HEADER_FIELDS))
    if unknown:
        raise TypeError(f"save_model() got unknown header fields {unknown}; valid: {HEADER_FIELDS}")
    header = model_header(model)
    if "arch" not in header:
        raise CompressError(
            "this model has no architecture record; build it with compress.create_model(...) "
            "or load it with compress.load_model(...) so it can be saved and rebuilt"
        )
    provenance = header.pop("provenance", {}) or {}
    for key in ("config_hash", "parent", "teacher"):
        if key in meta:
            value = meta.pop(key)
            if key in ("parent", "teacher") and value is not None:
                value = file_ref(value) if not isinstance(value, dict) else value
            provenance[key] = value
    header.update(meta)
    header.setdefault("pruning", None)  # the slot a pruned model's replayable history goes in
    provenance.update(
        toolkit_version=__version__,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    header["provenance"] = provenance
    header["format"] = FORMAT_NAME
    header["format_version"] = FORMAT_VERSION
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    blob = st_save(state, metadata={HEADER_KEY: json.dumps(header, default=_json_default)})
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


def read_header(path: str | Path) -> dict[str, Any]:
    """Read the JSON header of a compress model file without loading its weights.

    Raises:
        ModelFileError: if the file is missing, truncated, or not a compress model file.
    """
    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"model file '{p}' does not exist; check the path")
    if p.is_dir():
        hint = (
            " (did you mean its model.safetensors?)" if (p / "model.safetensors").exists() else ""
        )
        raise ModelFileError(f"'{p}' is a directory, not a model file{hint}")
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt") as fh:
            metadata = fh.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for every corruption
        raise ModelFileError(
            f"'{p}' is not a readable .safetensors model file (truncated or corrupt: "
            f"{_first_line(exc)}); re-create it or pass another file"
        ) from None
    if HEADER_KEY not in metadata:
        raise ModelFileError(
            f"'{p}' is a safetensors file but not a compress model (no '{HEADER_KEY}' header); "
            "save models with compress.save_model"
        )
    try:
        header = json.loads(metadata[HEADER_KEY])
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"'{p}' has a corrupt compress header: {exc}") from None
    if header.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(
            f"'{p}' was written by a newer compress (model format {header['format_version']}); "
            "upgrade compress-toolkit to read it"
        )
    return header


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


def load_model(path: str | Path, *, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model from its ``.safetensors`` file: architecture, pruning, weights.

    The returned model is in eval mode and carries its header as ``model.compress_header``.

    Raises:
        ModelFileError: if the file is missing, corrupt, or its weights do not fit the recorded
            architecture.
    """
    from compress.models import create_model

    header = read_header(path)
    arch = header.get("arch") or {}
    if "name" not in arch:
        raise ModelFileError(f"'{path}' has no architecture record in its header")
    model = create_model(arch["name"], **arch.get("kwargs", {}))
    if header.get("pruning"):
        from compress.prune.structured import replay_history

        replay_history(model, header["pruning"], header)
    state = load_state(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(
            f"the weights in '{path}' do not fit architecture '{arch['name']}': {_first_line(exc)}"
        ) from None
    model.compress_header = header  # type: ignore[assignment]
    return model.to(device).eval()
