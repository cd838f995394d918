"""ONNX Runtime runner (CPU, or the CUDA / TensorRT execution providers when asked and present)."""

from typing import Any, List, Optional

from compress.runtime.errors import AgentError
from compress.runtime.runners.base import Runner


class OnnxRuntimeRunner(Runner):
    """ONNX Runtime session (CPU, or CUDA / TensorRT execution providers when asked and present)."""

    name = "onnxruntime"

    def __init__(
        self, path: str, *, providers: Optional[List[str]] = None, threads: Optional[int] = None
    ) -> None:
        super().__init__()
        try:
            import onnxruntime as ort
        except ImportError:
            raise AgentError(
                "onnxruntime is not installed on this machine: pip install onnxruntime"
            ) from None
        available = ort.get_available_providers()
        wanted = providers or ["CPUExecutionProvider"]
        missing = [p for p in wanted if p not in available]
        if missing:
            raise AgentError(
                f"onnxruntime here lacks {', '.join(missing)} (available: {', '.join(available)})"
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        from onnxruntime.capi.onnxruntime_pybind11_state import Fail, RuntimeException

        self._kernel_errors = (Fail, RuntimeException)
        self.path = path
        self.session = ort.InferenceSession(path, options, providers=wanted)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = tuple(d if isinstance(d, int) else None for d in inp.shape)
        self.providers = self.session.get_providers()

    def _infer_impl(self, images: Any) -> Any:
        try:
            return self.session.run(None, {self.input_name: images})[0]
        except self._kernel_errors as exc:  # a kernel that refused to run
            raise AgentError(f"onnxruntime could not run {self.path}: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    """ONNX Runtime's message without its status prefix, on one line.

    An INT8 kernel refuses scales whose ratio it cannot represent ("QLinearGlobalAveragePool
    parameter out of computation range"): a quantized file whose ranges are degenerate.
    """
    text = " ".join(str(exc).split())
    for marker in ("Non-zero status code returned while running ", "RUNTIME_EXCEPTION : "):
        if marker in text:
            text = text.split(marker, 1)[1]
    return text[:300]
