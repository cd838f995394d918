"""``local``: this machine, in this process (every runtime, torch included)."""

from __future__ import annotations

from typing import Any

from compress.deploy.targets.base import ProfileJob, Target, TargetSettings, register
from compress.errors import CompressError


@register
class LocalTarget(Target):
    """This machine."""

    scheme = "local"
    runs_torch = True
    remote = False

    @classmethod
    def from_url(cls, url: str, settings: TargetSettings) -> LocalTarget:  # noqa: D102
        if url != "local":
            raise CompressError(f"bad --target '{url}': the local target is just 'local'")
        return cls()

    def __str__(self) -> str:
        return "local"

    def profile(self, job: ProfileJob) -> dict[str, Any]:  # noqa: D102
        from compress.runtime.errors import AgentError
        from compress.runtime.profile import profile_runner

        s = job.settings
        try:
            with self._runner(job) as runner:
                return profile_runner(
                    runner,
                    job.batches,
                    model_path=str(job.model),
                    eval_path=str(job.eval_path) if job.eval_path else None,
                    input_shape=list(job.meta.input_shape) if job.meta is not None else None,
                    warmup=s.warmup,
                    iters=s.iters,
                    duration=s.duration,
                )
        except AgentError as exc:
            raise CompressError(str(exc)) from None

    def _runner(self, job: ProfileJob) -> Any:
        from pathlib import Path

        from compress.deploy.runners import make_runner
        from compress.runtime.engines import build_cached
        from compress.runtime.errors import AgentError

        s, model = job.settings, job.model
        try:
            if job.runtime == "torch":
                return make_runner(
                    "torch", str(model), device=s.device, compile=s.compile, threads=s.threads
                )
            if job.runtime == "onnxruntime":
                onnx = job.onnx_for("fp32")
                return make_runner(
                    "onnxruntime", str(onnx), providers=s.providers, threads=s.threads
                )
            if model.suffix in (".plan", ".engine"):
                return make_runner("tensorrt", str(model))
            from compress.deploy.targets.base import engine_profile, shape_of
            from compress.exporters.tensorrt import require_tensorrt

            require_tensorrt()
            plan = build_cached(
                str(job.onnx_for(s.precision)),
                s.precision,
                engine_profile(s),
                shape_of(job.meta, model),
                str(Path.home() / ".cache" / "compress" / "engines"),
                log=job.log,
            )
            return make_runner("tensorrt", plan)
        except AgentError as exc:
            raise CompressError(str(exc)) from None
