"""TensorRT engine runner with device buffers from libcudart (TensorRT 8.5 → 10.x APIs detected)."""

from typing import Any, Optional, Tuple

from compress.runtime.cuda import Cuda
from compress.runtime.engines import import_tensorrt
from compress.runtime.errors import AgentError
from compress.runtime.runners.base import Runner


class TensorRTRunner(Runner):
    """A TensorRT engine with device buffers from libcudart (no torch, no pycuda)."""

    name = "tensorrt"

    def __init__(self, path: str) -> None:
        super().__init__()
        import numpy as np

        trt = import_tensorrt()
        self.np = np
        self.cuda = Cuda()
        logger = trt.Logger(trt.Logger.WARNING)
        with open(path, "rb") as fh:
            self.engine = trt.Runtime(logger).deserialize_cuda_engine(fh.read())
        if self.engine is None:
            raise AgentError(
                f"TensorRT could not load '{path}' (built with another TensorRT version or GPU?)"
            )
        self.context = self.engine.create_execution_context()
        self.tensor_api = hasattr(self.engine, "num_io_tensors")
        names = (
            [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
            if self.tensor_api
            else [self.engine.get_binding_name(i) for i in range(self.engine.num_bindings)]
        )
        self.inputs = [n for n in names if self._is_input(trt, n)]
        self.outputs = [n for n in names if n not in self.inputs]
        self.input_name, self.output_name = self.inputs[0], self.outputs[0]
        lo, _opt, hi = self._profile_shapes(self.input_name)
        self.input_shape = (None, *hi[1:])
        self.max_batch = int(hi[0])
        self.min_batch = int(lo[0])
        self.classes = int(self._shape(self.output_name)[-1])
        self.stream = self.cuda.stream()
        item = 4  # float32 inputs and outputs (the exporters keep I/O in float32)
        self.d_in = self.cuda.malloc(item * int(np.prod(hi)))
        self.d_out = self.cuda.malloc(item * self.max_batch * self.classes)

    def _is_input(self, trt: Any, name: str) -> bool:
        if self.tensor_api:
            return self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        return self.engine.binding_is_input(name)

    def _shape(self, name: str) -> Tuple[int, ...]:
        if self.tensor_api:
            return tuple(self.engine.get_tensor_shape(name))
        return tuple(self.engine.get_binding_shape(name))

    def _profile_shapes(self, name: str) -> Tuple[Tuple[int, ...], ...]:
        if hasattr(self.engine, "get_tensor_profile_shape"):
            return tuple(tuple(s) for s in self.engine.get_tensor_profile_shape(name, 0))
        index = self.engine.get_binding_index(name)
        return tuple(tuple(s) for s in self.engine.get_profile_shape(0, index))

    def prepare(self, images: Any) -> Any:
        """Copy the batch to the device once and set the input shape."""
        self.infer(images)
        self.cuda.htod(self.d_in, images)
        return images.shape

    def run_prepared(self, prepared: Any) -> None:
        """Execute on the staged device buffer and wait; no copies."""
        self._execute(prepared)
        self.cuda.sync(self.stream)

    def _execute(self, shape: Tuple[int, ...]) -> None:
        if self.tensor_api:
            self.context.set_input_shape(self.input_name, shape)
            self.context.set_tensor_address(self.input_name, self.d_in)
            self.context.set_tensor_address(self.output_name, self.d_out)
            self.context.execute_async_v3(self.stream)
        else:
            self.context.set_binding_shape(self.engine.get_binding_index(self.input_name), shape)
            self.context.execute_async_v2([self.d_in, self.d_out], self.stream)

    def _infer_impl(self, images: Any) -> Any:
        n = images.shape[0]
        if n < self.min_batch:
            raise AgentError(f"tensorrt: batch {n} is below the engine's minimum {self.min_batch}")
        self.cuda.htod(self.d_in, images)
        out = self.np.empty((n, self.classes), dtype=self.np.float32)
        self._execute(images.shape)
        self.cuda.sync(self.stream)
        self.cuda.dtoh(out, self.d_out)
        return out

    def gpu_memory_bytes(self) -> Optional[int]:
        """Device memory in use (the engine and its buffers)."""
        return self.cuda.mem_used()

    def close(self) -> None:
        """Free the device buffers."""
        self.cuda.free(self.d_in)
        self.cuda.free(self.d_out)
