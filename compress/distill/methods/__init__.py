"""Distillation methods, one file each; importing this package registers them all."""

from compress.distill.methods import dist, dkd, dml, kd, none, r2kd  # noqa: F401
