"""The runner contract, after Polygraphy's ``BaseRunner``.

`infer` checks the input and times the call; a backend only fills `_infer_impl`. Runners are
context managers that release what they hold on exit.
"""

import time
from typing import Any, Optional, Tuple

from compress.runtime.errors import AgentError


class Runner:
    """Base of the runners: `infer` checks the input, times the call; backends fill `_infer_impl`."""

    name = "runner"

    def __init__(self) -> None:
        self.input_shape: Tuple[Optional[int], ...] = ()  # (batch or None, C, H, W)
        self.max_batch: Optional[int] = None
        self.min_batch = 1
        self.last_ms: float = 0.0

    def infer(self, images: Any) -> Any:
        """Logits for a float32 (N, C, H, W) batch of normalised images."""
        import numpy as np

        if not isinstance(images, np.ndarray) or images.ndim != 4:
            raise AgentError(
                f"{self.name}: expected a 4-D numpy array (N, C, H, W), got {type(images).__name__}"
            )
        if images.dtype != np.float32:
            raise AgentError(f"{self.name}: expected float32 input, got {images.dtype}")
        expected = tuple(self.input_shape[1:])
        if (
            expected
            and all(d is not None for d in expected)
            and tuple(images.shape[1:]) != expected
        ):
            raise AgentError(
                f"{self.name}: expected images of shape (N, {', '.join(map(str, expected))}), got {images.shape}"
            )
        fixed = self.input_shape[0] if self.input_shape else None
        if fixed is not None and images.shape[0] != fixed:
            raise AgentError(
                f"{self.name}: the model takes batches of exactly {fixed} (shape "
                f"{tuple(self.input_shape)}), got {tuple(images.shape)}; export it with a dynamic "
                "batch (compress export --batch MIN:OPT:MAX) or profile --batch "
                f"{fixed}"
            )
        if self.max_batch is not None and images.shape[0] > self.max_batch:
            raise AgentError(
                f"{self.name}: batch {images.shape[0]} exceeds the engine's maximum {self.max_batch}"
            )
        t0 = time.perf_counter()
        out = self._infer_impl(np.ascontiguousarray(images))
        self.last_ms = (time.perf_counter() - t0) * 1000.0
        return out

    def _infer_impl(self, images: Any) -> Any:
        raise NotImplementedError

    def prepare(self, images: Any) -> Any:
        """Stage a batch where the backend reads it (device buffer, tensor) for `run_prepared`."""
        self.infer(images)  # validates the input once
        return images

    def run_prepared(self, prepared: Any) -> None:
        """Run on a staged batch without input conversion or host↔device copies (model-only time)."""
        self._infer_impl(prepared)

    def close(self) -> None:
        """Release resources."""

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def gpu_memory_bytes(self) -> Optional[int]:
        """GPU memory this runner holds (None on the CPU)."""
        return None
