"""The target contract: where a model is profiled, one interface registered by URL scheme.

A target turns a `ProfileJob` (the model or export, the runtime, the batches, the timing and
an evaluation set) into the profile result dict. `LocalTarget` runs it in this process; targets
that reach a device (`SSHTarget`, `SubprocessTarget`) ship the device runtime (one zipapp) with
the files and read its JSON back, through `AgentTarget`. A new kind of device is one file in
this package: a `Target` subclass with a ``scheme``, registered with ``@register``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from compress.config import NO_HASH
from compress.errors import CompressError
from compress.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from compress.header import ModelHeader

#: scheme (``local``, ``ssh``, ...) → Target subclass
TARGETS: Registry = Registry("target")


@dataclass
class TargetSettings:
    """How targets are reached (the one place their options live).

    Attributes:
        target: ``local``, ``ssh://user@host[:port]``, or another registered scheme
            (``compress.deploy.targets``).
        ssh_config: an extra ssh config file for ssh targets (``ssh -F``).
        remote_python: the Python interpreter on the device.
    """

    target: str = "local"
    ssh_config: str | None = field(default=None, metadata=NO_HASH)
    remote_python: str = "python3"


@dataclass
class ProfileJob:
    """One profile to run on a target.

    Attributes:
        model: the model file, ONNX export or engine.
        runtime: ``torch``, ``onnxruntime`` or ``tensorrt``.
        meta: the model's header (``None`` for a foreign ONNX file).
        settings: the profile settings (`compress.deploy.profiler.ProfileSettings`).
        tmp: a scratch directory that lives as long as the job.
        eval_path: the evaluation set (``.npz``), or ``None``.
        batches: the batch sizes, sorted.
        onnx_for: ``onnx_for(precision)`` exports the model to ONNX when a runtime needs it.
        log: where progress lines go.
    """

    model: Path
    runtime: str
    meta: Any
    settings: Any
    tmp: Path
    eval_path: Path | None
    batches: list[int]
    onnx_for: Callable[[str], Path]
    log: Callable[[str], None] = print


class Target:
    """Where a model runs. Subclasses set ``scheme`` and implement `from_url` and `profile`."""

    scheme: ClassVar[str]
    #: the target can run the torch runtime (only this machine has torch)
    runs_torch: ClassVar[bool] = False
    #: engines are built there, not here (TensorRT engines are specific to a GPU)
    remote: ClassVar[bool] = True

    @classmethod
    def from_url(cls, url: str, settings: TargetSettings) -> Target:
        """The target a ``--target`` URL names (raise a one-line `CompressError` if malformed)."""
        raise NotImplementedError

    def profile(self, job: ProfileJob) -> dict[str, Any]:
        """Run the profile and return its result (``batches``, ``accuracy``, ...)."""
        raise NotImplementedError

    def describe(self) -> str:
        """A short description for logs and tables (the URL by default)."""
        return str(self)


def register(cls: type[Target]) -> type[Target]:
    """Class decorator: register a `Target` subclass under its ``scheme``."""
    TARGETS.add(cls.scheme, cls)
    return cls


def parse_target(text: str | None, settings: TargetSettings | None = None) -> Target:
    """The target of a ``--target`` value: ``local`` (or empty), ``ssh://…``, ``subprocess://…``.

    Raises:
        CompressError: an unknown scheme or a malformed URL, with the accepted forms.
    """
    value = (text or "local").strip()
    scheme = value.split("://", 1)[0] if "://" in value else value
    if scheme not in TARGETS:
        forms = ", ".join("'local'" if s == "local" else f"'{s}://…'" for s in TARGETS.names())
        raise CompressError(f"bad --target '{value}': use {forms} (e.g. ssh://nvidia@192.168.1.20)")
    return TARGETS.get(scheme).from_url(value, settings or TargetSettings())


class AgentTarget(Target):
    """A target that runs the device runtime (the zipapp) elsewhere and reads its JSON.

    Subclasses implement `run_agent`: copy `files` and the zipapp somewhere, run it with `args`,
    return its JSON.
    """

    def run_agent(self, files: list[Path], args: list[str]) -> dict[str, Any]:
        """Run ``python agent.pyz ARGS`` next to copies of `files`; its JSON result."""
        raise NotImplementedError

    def profile(self, job: ProfileJob) -> dict[str, Any]:  # noqa: D102
        s = job.settings
        if job.runtime == "torch":
            raise CompressError(
                "the device agent runs onnxruntime and tensorrt, not torch: profile an ONNX "
                "export, or the .safetensors file with --runtime onnxruntime (it is exported first)"
            )
        if job.model.suffix in (".plan", ".engine"):
            raise CompressError(
                "TensorRT engines are built on the device: give the .onnx export (or the model "
                "file) with --runtime tensorrt"
            )
        precision = s.precision if job.runtime == "tensorrt" else "fp32"
        onnx = job.onnx_for(precision)
        files = [onnx] + ([job.eval_path] if job.eval_path else [])
        args = ["profile", onnx.name, "--runtime", job.runtime,
                "--batches", ",".join(map(str, job.batches)), "--warmup", str(s.warmup),
                "--iters", str(s.iters), "--duration", str(s.duration)]  # fmt: skip
        if job.eval_path:
            args += ["--eval", job.eval_path.name]
        if job.meta is not None:
            args += ["--input-shape", ",".join(map(str, job.meta.input_shape))]
        if job.runtime == "tensorrt":
            profile = ":".join(map(str, engine_profile(s)))
            args += ["--build", precision, "--batch-profile", profile]
        if s.threads:
            args += ["--threads", str(s.threads)]
        if s.providers:
            args += ["--providers", ",".join(s.providers)]
        job.log(f"profiling {onnx.name} with {job.runtime} on {self}")
        return self.run_agent(files, args)


def parse_agent_output(proc: subprocess.CompletedProcess, where: str) -> dict[str, Any]:
    """The agent's JSON from its stdout, or a one-line error with what went wrong."""
    text = proc.stdout.strip()
    data: Any = None
    if text:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
    if isinstance(data, dict) and "error" in data:
        raise CompressError(f"on {where}: {data['error']}")
    if proc.returncode != 0 or not isinstance(data, dict):
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        if "No module named" in err or "not found" in err:
            raise CompressError(
                f"on {where}: the agent could not start ({err}); it needs python3 with numpy there"
            )
        raise CompressError(f"on {where}: the agent failed (exit {proc.returncode}): {err}")
    return data


def shape_of(meta: ModelHeader | None, model: Path) -> list[int]:
    """The input shape a model records, or a one-line error for a foreign ONNX file."""
    if meta is None:
        raise CompressError(
            f"'{model}' carries no compress metadata, so its input shape is unknown; export it "
            "with `compress export` first"
        )
    return list(meta.input_shape)


def engine_profile(settings: Any) -> tuple[int, int, int]:
    """TensorRT's optimisation profile, widened to cover every batch of the sweep."""
    from compress.exporters.base import BatchSpec

    spec = BatchSpec.parse(settings.batch_profile)
    return spec.min, spec.opt, max(spec.max, *settings.batches)
