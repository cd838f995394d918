"""Calibration images as ONNX Runtime's data reader (used by INT8 export and its sensitivity ranking)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class Calibration:
    """ONNX Runtime's CalibrationDataReader over a float32 array, in batches (also iterable)."""

    def __init__(self, images: Any, input_name: str, batch: int = 32) -> None:
        self.batches = [images[i : i + batch] for i in range(0, len(images), batch)]
        self.input_name = input_name
        self.index = 0

    def get_next(self) -> dict[str, Any] | None:
        """The next batch as an input feed, or ``None`` at the end."""
        if self.index >= len(self.batches):
            return None
        self.index += 1
        return {self.input_name: self.batches[self.index - 1]}

    def rewind(self) -> None:
        """Start again from the first batch."""
        self.index = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter({self.input_name: b} for b in self.batches)
