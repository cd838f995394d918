"""Runners by name, and the file-suffix → runtime map, in one small registry.

Every runner shares `Runner` (`compress.runtime.runners.base`). ``onnxruntime`` and
``tensorrt`` live here (they run on devices without torch); the host adds ``torch``
(`compress.deploy.runners`). `make_runner` is the only way any code builds a runner.
"""

import difflib
from typing import Any, Callable, Dict, List, Optional, Tuple

from compress.runtime.errors import AgentError
from compress.runtime.runners.base import Runner

#: runtime name → (factory(path, **options) -> Runner, file suffixes, one-line summary)
_RUNNERS: Dict[str, Tuple[Callable[..., Runner], Tuple[str, ...], str]] = {}


def register_runner(
    name: str, factory: Callable[..., Runner], suffixes: Tuple[str, ...], summary: str = ""
) -> None:
    """Register a runtime; a name registered twice is an error."""
    if name in _RUNNERS:
        raise ValueError("runtime '{}' is already registered".format(name))
    _RUNNERS[name] = (factory, tuple(suffixes), summary)


def runtime_names() -> List[str]:
    """Registered runtimes, in registration order."""
    return list(_RUNNERS)


def runtime_summary(name: str) -> str:
    """The one-line description of a runtime."""
    return _RUNNERS[name][2]


def runtime_for(path: str) -> Optional[str]:
    """The runtime that runs files like `path` (by suffix), or None."""
    lower = path.lower()
    for name, (_factory, suffixes, _summary) in _RUNNERS.items():
        if any(lower.endswith(s) for s in suffixes):
            return name
    return None


def make_runner(runtime: str, path: str, **options: Any) -> Runner:
    """A runner of `runtime` for `path` (an unknown runtime gets a suggestion).

    Options are passed to the runtime's factory (``providers``, ``threads``, ``device``,
    ``compile``); a factory ignores the options it does not take.
    """
    if runtime not in _RUNNERS:
        close = difflib.get_close_matches(runtime, list(_RUNNERS), n=1, cutoff=0.6)
        hint = " Did you mean '{}'?".format(close[0]) if close else ""
        raise AgentError(
            "unknown runtime '{}'.{} Valid: {}".format(runtime, hint, ", ".join(_RUNNERS))
        )
    return _RUNNERS[runtime][0](path, **options)


def _onnxruntime(
    path: str, providers: Optional[List[str]] = None, threads: Optional[int] = None, **_: Any
) -> Runner:
    from compress.runtime.runners.onnxruntime import OnnxRuntimeRunner

    return OnnxRuntimeRunner(path, providers=providers, threads=threads)


def _tensorrt(path: str, **_: Any) -> Runner:
    from compress.runtime.engines import check_engine
    from compress.runtime.runners.tensorrt import TensorRTRunner

    check_engine(path)
    return TensorRTRunner(path)


register_runner(
    "onnxruntime",
    _onnxruntime,
    (".onnx",),
    "ONNX Runtime (CPU; CUDA/TensorRT providers if present)",
)
register_runner(
    "tensorrt", _tensorrt, (".plan", ".engine"), "TensorRT engine (device buffers via libcudart)"
)

__all__ = ["Runner", "make_runner", "register_runner", "runtime_for", "runtime_names"]
