"""The model registry (kept in its own module so architecture files can import it cheaply)."""

from __future__ import annotations

from compress.registry import Registry

#: name → factory(num_classes=..., in_channels=..., **kwargs) -> nn.Module. Registration info:
#: ``family``, ``stages`` (module names of the stage outputs, for feature-based KD),
#: ``embedding`` (the classifier module whose input is the pooled embedding), ``head`` (the
#: modules after the shared layers, in forward order, for ONE's branches), ``source``.
#: Third-party architectures register through the ``compress.models`` entry-point group.
MODELS: Registry = Registry("model", entry_points="compress.models")
