"""``compress import``: weights trained elsewhere → one self-describing model file.

Accepted inputs, all read without running code from the file:

* a plain state dict saved with ``torch.save(model.state_dict())`` (``.pt``/``.pth``), read
  with ``torch.load(weights_only=True)``;
* the checkpoint dicts training frameworks write, weights under ``model``, ``state_dict``,
  ``model_state_dict``, ``net`` or ``weights`` (RepDistiller/mdistiller ``ckpt_epoch_240.pth``
  keep them under ``model``);
* a safetensors file of weights.

A ``module.`` prefix (DataParallel/DDP) or ``_orig_mod.`` (``torch.compile``) on every key is
removed. Keys are matched strictly against the named architecture; a mismatch lists the missing
and unexpected keys and the likely cause. One forward pass checks the shapes before the file is
written, and the provenance records the source file and its SHA-256.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compress.errors import CompressError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

#: Checkpoint keys under which frameworks keep the weights, in the order they are tried.
WEIGHT_KEYS = ("model", "state_dict", "model_state_dict", "net", "weights", "model_state")
#: Key prefixes added by wrappers: DataParallel/DDP, torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
#: How many key names an error message lists.
SHOWN = 5


class WeightsImportError(CompressError):
    """Weights that cannot be brought in (the message says why and what to do)."""


@dataclass
class ImportSettings:
    """What ``compress import`` needs.

    Attributes:
        source: the weights file.
        arch: registry name of the architecture (``compress models``).
        num_classes: classifier outputs.
        in_channels: image channels.
        image_size: (H, W) the model was trained at; ``None``: 224 for torchvision/timm
            architectures, 32 for the CIFAR zoo.
        mean: per-channel normalisation mean (0–1 scale) the model was trained with.
        std: per-channel normalisation std.
        dataset: registry name of the dataset it was trained on (the default for later verbs).
        arch_kwargs: architecture options.
        class_names: one name per class, recorded in the file (so later data is checked by
            name, not only by count).
        output: the model file to write (never overwritten).
    """

    source: str
    arch: str
    num_classes: int
    output: str
    in_channels: int = 3
    image_size: tuple[int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    dataset: str | None = None
    arch_kwargs: dict[str, Any] | None = None
    class_names: tuple[str, ...] | None = None
    in_channels_given: bool = True


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file (state dict, checkpoint dict or safetensors), prefixes stripped.

    Raises:
        WeightsImportError: the file is missing, holds Python objects, or holds no state dict.
    """
    import torch

    if not path.is_file():
        raise WeightsImportError(f"weights file '{path}' does not exist; check the path")
    with open(path, "rb") as fh:
        head = fh.read(16)
    if len(head) >= 9 and head[8:9] == b"{":
        from safetensors.torch import load_file

        try:
            found: Any = load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own types for every corruption
            raise WeightsImportError(
                f"'{path}' is not a readable safetensors file ({exc})"
            ) from None
    else:
        if head.startswith(b"PK\x03\x04") and _is_torchscript(path):
            raise WeightsImportError(
                f"'{path}' is a TorchScript archive; compress imports weights, so save the "
                "state_dict() of the original nn.Module with torch.save and import that"
            )
        import warnings

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch's notes on sparse tensors: refused below
                found = torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise WeightsImportError(
                f"'{path}' holds Python objects besides tensors (a pickled model or optimiser "
                "class?); compress never unpickles them: save model.state_dict() with torch.save "
                "and import that"
            ) from None
        except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise WeightsImportError(
                f"'{path}' is not a PyTorch weights file compress can read ({first})"
            ) from None
    state = _find_state_dict(found, path)
    return strip_wrapper_prefixes(state)


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _is_state_dict(value: Any) -> bool:
    import torch

    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())
    )


#: The largest |weight| accepted: trained networks stay orders of magnitude below; 1e30 is a
#: corrupt or never-trained file that would import and then classify everything as one class.
MAX_ABS_WEIGHT = 1e8


def check_tensors(state: dict[str, torch.Tensor], model: nn.Module, path: Path) -> None:
    """Refuse tensors that would load wrongly: sparse, meta, wrong kind of dtype, non-finite, huge.

    A float parameter given as int64, bool or complex would be cast by ``load_state_dict`` and
    lose every weight (a constant model); sparse and meta tensors cannot be loaded at all.
    """
    import torch

    expected = model.state_dict()
    for key, tensor in state.items():
        if tensor.layout != torch.strided:
            raise WeightsImportError(
                f"'{path}': '{key}' is a {str(tensor.layout).replace('torch.', '')} tensor; "
                "compress imports dense weights: save the dense model's state_dict()"
            )
        if tensor.device.type == "meta":
            raise WeightsImportError(
                f"'{path}': '{key}' is a meta tensor (a shape with no values); save the "
                "state_dict() of a model whose weights are loaded"
            )
        want = expected.get(key)
        if want is None:
            continue
        if want.is_floating_point() and not tensor.is_floating_point():
            raise WeightsImportError(
                f"'{path}': '{key}' is stored as {str(tensor.dtype).replace('torch.', '')}, but "
                "the architecture needs floating-point weights there (casting would lose them); "
                "the file holds another kind of data: save the float state_dict()"
            )
        if tensor.is_floating_point():
            values = tensor.detach().float()
            if not bool(torch.isfinite(values).all()):
                raise WeightsImportError(
                    f"'{path}': '{key}' holds NaN or infinite values; the weights are corrupt"
                )
            big = float(values.abs().max()) if values.numel() else 0.0
            if big > MAX_ABS_WEIGHT:
                raise WeightsImportError(
                    f"'{path}': '{key}' holds values up to {big:.3g} (at most {MAX_ABS_WEIGHT:.0e} "
                    "is accepted); the weights are corrupt or were never trained"
                )


def _find_state_dict(found: Any, path: Path) -> dict[str, torch.Tensor]:
    if _is_state_dict(found):
        return dict(found)
    if isinstance(found, dict):
        for key in WEIGHT_KEYS:
            if _is_state_dict(found.get(key)):
                return dict(found[key])
        keys = ", ".join(repr(k) for k in list(found)[:8])
        raise WeightsImportError(
            f"'{path}' is a checkpoint dict with no state dict under {', '.join(WEIGHT_KEYS)} "
            f"(its keys: {keys}); save model.state_dict() and import that"
        )
    raise WeightsImportError(
        f"'{path}' holds a {type(found).__name__}, not a state dict; save model.state_dict() "
        "with torch.save and import that"
    )


def strip_wrapper_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove a ``module.`` / ``_orig_mod.`` prefix that every key carries (repeatedly)."""
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if state and all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
    return state


def match_shapes(model: nn.Module, state: dict[str, torch.Tensor], arch: str) -> None:
    """`match_state`'s checks of names and shapes, without loading (`model` may be on ``meta``)."""
    _mismatch(model.state_dict(), state, arch)


def _mismatch(expected: dict[str, Any], state: dict[str, torch.Tensor], arch: str) -> None:
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if not (missing or unexpected or shapes):
        return
    parts = []
    if missing:
        parts.append(f"missing {len(missing)} key(s) ({_first(missing)})")
    if unexpected:
        parts.append(f"unexpected {len(unexpected)} key(s) ({_first(unexpected)})")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatch(es) (file vs {arch}: {_first(shapes)})")
    raise WeightsImportError(
        f"the weights do not fit '{arch}': {'; '.join(parts)}; {_cause(missing, unexpected, shapes, expected, state)}"
    )


def match_state(model: nn.Module, state: dict[str, torch.Tensor], arch: str) -> None:
    """Load `state` into `model` strictly, or raise one error listing what does not fit.

    ``num_batches_tracked`` counters missing from older checkpoints are tolerated (they only
    count BatchNorm updates).
    """
    expected = model.state_dict()
    _mismatch(expected, state, arch)
    model.load_state_dict({**expected, **state}, strict=True)


def _first(items: list[str]) -> str:
    return ", ".join(items[:SHOWN]) + (", ..." if len(items) > SHOWN else "")


def _cause(
    missing: list[str],
    unexpected: list[str],
    shapes: list[str],
    expected: dict[str, Any],
    state: dict[str, Any],
) -> str:
    """The most likely reason for a mismatch, as advice."""
    if shapes and not missing and not unexpected:
        last = list(expected)[-1]
        if any(s.startswith(last.rsplit(".", 1)[0] + ".") for s in shapes):
            return (
                f"only the classifier differs: the file's classifier has {state[last].shape[0]} outputs, so "
                f"pass --num-classes {state[last].shape[0]}"
            )
        first_conv = next(iter(expected))
        if any(s.startswith(first_conv) for s in shapes):
            return "the first layer differs: check --in-channels"
        return "the layer widths differ: the file is of another size of this architecture"
    if unexpected and missing:
        for prefix in {k.split(".", 1)[0] + "." for k in unexpected}:
            stripped = {k[len(prefix) :] for k in unexpected if k.startswith(prefix)}
            if stripped and stripped >= set(missing):
                return (
                    f"the file's keys carry a '{prefix}' prefix: the model was wrapped when saved"
                )
    return "the file holds another architecture: check --arch (see `compress models`)"


def default_input_size(arch: str) -> tuple[int, int]:
    """The size a model is assumed to be trained at when none is given."""
    from compress.models import model_info

    source = model_info(arch).get("source")
    return (224, 224) if source in ("torchvision", "timm") else (32, 32)


def import_weights(settings: ImportSettings, *, log: Any = print) -> dict[str, Any]:
    """Write `settings.output`: the architecture, the imported weights and their provenance.

    Returns:
        Facts about the imported model: ``output``, ``arch``, ``params``, ``input_size``,
        ``source`` (path and SHA-256), ``prefix_stripped``.

    Raises:
        WeightsImportError: the file cannot be read or does not fit the architecture, or the output
            file already exists.
        CompressError: unknown architecture or option.
    """
    import math

    import torch

    from compress.artifacts import file_ref, save_model
    from compress.header import MAX_CHANNELS, MAX_CLASSES
    from compress.models import count_params, create_model

    source = Path(settings.source)
    out = Path(settings.output)
    if out.exists() or out.is_symlink():
        raise WeightsImportError(
            f"'{out}' already exists; compress never overwrites a file: choose another --output"
        )
    if out.suffix != ".safetensors":
        raise WeightsImportError(f"--output must end in .safetensors, got '{out.name}'")
    if not 1 <= settings.num_classes <= MAX_CLASSES:
        raise WeightsImportError(
            f"--num-classes must be between 1 and {MAX_CLASSES:,}, got {settings.num_classes:,}"
        )
    if not 1 <= settings.in_channels <= MAX_CHANNELS:
        raise WeightsImportError(
            f"--in-channels must be between 1 and {MAX_CHANNELS}, got {settings.in_channels:,}"
        )
    state = read_weights(source)
    with torch.device("meta"):  # count first: a wrong --num-classes must not allocate gigabytes
        skeleton = create_model(
            settings.arch,
            num_classes=settings.num_classes,
            in_channels=settings.in_channels,
            **(settings.arch_kwargs or {}),
        )
    match_shapes(skeleton, state, settings.arch)
    stored = sum(math.prod(t.shape) for t in state.values())
    wanted = sum(p.numel() for p in skeleton.parameters())
    if wanted > 2 * stored + 1000:
        raise WeightsImportError(
            f"'{settings.arch}' with these options has {wanted:,} parameters but the file holds "
            f"{stored:,} weights; check --arch, --num-classes and --in-channels"
        )
    del skeleton
    model = create_model(
        settings.arch,
        num_classes=settings.num_classes,
        in_channels=settings.in_channels,
        **(settings.arch_kwargs or {}),
    )
    check_tensors(state, model, source)
    match_state(model, state, settings.arch)
    if settings.class_names is not None and len(settings.class_names) != settings.num_classes:
        raise WeightsImportError(
            f"{len(settings.class_names)} class names given for --num-classes "
            f"{settings.num_classes}; give one name per class"
        )
    size = settings.image_size or default_input_size(settings.arch)
    model.eval()
    with torch.no_grad():
        try:
            logits = model(torch.zeros(2, settings.in_channels, *size))
        except RuntimeError as exc:
            first = (str(exc).strip().splitlines() or ["?"])[0]
            raise WeightsImportError(
                f"'{settings.arch}' with these weights cannot run on {size[0]}×{size[1]} images "
                f"({first}); pass the --image-size it was trained at"
            ) from None
    if tuple(logits.shape) != (2, settings.num_classes) or not torch.isfinite(logits).all():
        raise WeightsImportError(
            f"a forward pass gave {tuple(logits.shape)} outputs (expected (2, "
            f"{settings.num_classes})) or non-finite values; the weights are corrupt"
        )
    ref = {**file_ref(source), "format": "imported"}
    if out.parent.exists() and not out.parent.is_dir():
        raise WeightsImportError(f"cannot write '{out}': '{out.parent}' is a file, not a folder")
    save_model(
        model,
        out,
        input_size=list(size),
        mean=list(settings.mean) if settings.mean else None,
        std=list(settings.std) if settings.std else None,
        dataset=settings.dataset,
        class_names=list(settings.class_names) if settings.class_names else None,
        source=ref,
    )
    facts = {
        "output": str(out),
        "arch": settings.arch,
        "params": count_params(model),
        "input_size": list(size),
        "source": ref,
    }
    log(
        f"imported {source} ({len(state)} tensors, sha256 {ref['sha256'][:12]}…) as {settings.arch} "
        f"({facts['params'] / 1e6:.3f} M params, {settings.in_channels}×{size[0]}×{size[1]} input, "
        f"{settings.num_classes} classes) → {out}"
    )
    assumed = []
    if settings.image_size is None:
        assumed.append(
            f"input size {size[0]}×{size[1]} (the default for {settings.arch}; pass --image-size "
            "the size it was trained at)"
        )
    if settings.mean is None:
        assumed.append(
            "no normalisation (the dataset's own is used at run time; pass --mean/--std the "
            "values it was trained with)"
        )
    if not settings.in_channels_given:
        assumed.append(f"{settings.in_channels} input channels (--in-channels)")
    if settings.class_names is None:
        assumed.append("no class names (--classes a,b,c or --data-dir FOLDER records them)")
    if assumed:
        log("assumed: " + "; ".join(assumed))
    return facts
