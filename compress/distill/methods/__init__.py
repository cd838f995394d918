"""Distillation methods, one file each, and their table (as mdistiller's ``distillers/__init__``).

Importing this package registers every method in `METHODS`; the rest of the toolkit looks
methods up here (``compress.distill.config`` no longer reaches into ``compress.distill.api``).
"""

from compress.distill.base import METHODS, MethodSpec
from compress.distill.methods import (  # noqa: F401  (registration)
    at,
    bss,
    dist,
    dkd,
    dml,
    fitnet,
    fsp,
    kd,
    none,
    one,
    r2kd,
    rkd,
    sp,
)

__all__ = ["METHODS", "MethodSpec", "list_methods"]


def list_methods() -> list[str]:
    """Registered distillation method names."""
    return METHODS.names()
