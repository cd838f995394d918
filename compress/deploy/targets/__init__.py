"""Where a model is profiled: one `Target` contract, one module per kind of target.

Every module of this package is imported here, so a new target is one file: a `Target`
subclass with a ``scheme``, decorated with ``@register`` (see `compress.deploy.targets.base`).
"""

from __future__ import annotations

import importlib
import pkgutil

from compress.deploy.targets.base import (
    TARGETS,
    AgentTarget,
    ProfileJob,
    Target,
    TargetSettings,
    parse_agent_output,
    parse_target,
    register,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

from compress.deploy.targets.local import LocalTarget  # noqa: E402
from compress.deploy.targets.ssh import SSHTarget  # noqa: E402

__all__ = [
    "TARGETS",
    "AgentTarget",
    "LocalTarget",
    "ProfileJob",
    "SSHTarget",
    "Target",
    "TargetSettings",
    "parse_agent_output",
    "parse_target",
    "register",
]
