"""Quantization-aware training and distillation: ``compress quantize`` (docs/quantization.md)."""

from compress._lazy import make_callable

# `compress.quantize(...)` is the notebook API's verb, although this is also a package
make_callable(__name__, "compress.api", "quantize")
