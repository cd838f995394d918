"""``state.pt``: everything a resume needs, loaded with ``weights_only=True`` (no code runs)."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch

from compress.artifacts import atomic_write_bytes
from compress.errors import CompressError

STATE_FORMAT = "compress-state"
STATE_VERSION = 1
#: Entries a resume reads, with their types.
REQUIRED = {
    "epoch": int,
    "global_step": int,
    "task": dict,
    "optimizer": dict,
    "scheduler": dict,
    "rng": dict,
}


def rng_state() -> dict[str, Any]:
    """The global torch RNG states (CPU and every CUDA device)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """Write a training state atomically."""
    buf = io.BytesIO()
    torch.save({"format": STATE_FORMAT, "version": STATE_VERSION, **state}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_state(path: str | Path) -> dict[str, Any]:
    """Read a training state with ``weights_only=True``.

    Raises:
        CompressError: if the file is missing, corrupt, or holds anything but tensors and plain
            data (such a file is refused without running any of it).
    """
    p = Path(path)
    if not p.is_file():
        raise CompressError(f"no training state at '{p}'; cannot resume")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # PyTorch's own message suggests loading without weights_only: never do that
        raise CompressError(
            f"'{p}' is not a safe training state: it holds objects other than tensors and plain "
            "data, which compress refuses to unpickle; start a new run in another --output"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CompressError(
            f"'{p}' is truncated or corrupt ({first[:200]}); start a new run in another --output"
        ) from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CompressError(f"'{p}' is not a compress training state")
    problems = [k for k, kind in REQUIRED.items() if not isinstance(state.get(k), kind)]
    if problems:
        raise CompressError(
            f"'{p}' is not a complete compress training state (missing or malformed: "
            f"{', '.join(problems)}); start a new run in another --output"
        )
    return state


def recorded_hash(path: str | Path) -> str | None:
    """The ``config_hash`` a run recorded in `path`: a ``state.pt`` or a JSON record."""
    p = Path(path)
    if p.suffix == ".json":
        import json

        try:
            return json.loads(p.read_text()).get("config_hash")
        except (OSError, ValueError, AttributeError):
            return None
    return load_state(p).get("config_hash")


def check_resume(path: str | Path, digest: str, config: Any = None) -> None:
    """Refuse to resume a run whose record (`path`) was written with another config hash.

    The one check every verb makes before it writes anything into a run it resumes
    (``train``, ``distill``, ``prune``; the trainer repeats it when it loads ``state.pt``).

    Raises:
        CompressError: the hashes differ.
    """
    from compress.errors import CompressError

    saved = recorded_hash(path)
    if saved != digest:
        where = Path(path).parent
        saved_config = where / "config.yaml"
        if not saved_config.exists():  # a seed's folder: the config is the run's, one up
            saved_config = where.parent / "config.yaml"
        changed = _changed_keys(saved_config, config) if config is not None else ""
        raise CompressError(
            f"the config differs from the one '{where}' was started with"
            + (f" ({changed})" if changed else f" (hash {saved} vs {digest})")
            + "; resume with the same config (and inputs), or start a new --output"
        )


def _changed_keys(saved_config: Path, config: Any) -> str:
    """``epochs: 240 → 4, optim.lr: …`` between a run's config.yaml and `config` (hashed keys)."""
    from compress.config import hashed_dict, load_yaml

    try:
        before = load_yaml(saved_config)
    except Exception:
        return ""
    now = hashed_dict(config)

    def flat(d: Any, prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in (d or {}).items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    a, b = flat(before), flat(now)
    diffs = [f"{k}: {a.get(k)!r} → {b[k]!r}" for k in b if k in a and a[k] != b[k]]
    diffs += [f"{k}: (new) {b[k]!r}" for k in b if k not in a]
    if not diffs:
        return "its inputs changed: a teacher or model file with other bytes"
    return "; ".join(diffs[:5]) + (f"; … {len(diffs) - 5} more" if len(diffs) > 5 else "")
