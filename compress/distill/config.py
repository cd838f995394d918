"""``compress distill`` settings (readable without importing torch until validated)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from compress.config import NO_HASH, build, deep_merge, to_dict
from compress.data.base import DataSettings
from compress.engine.settings import TrainSettings
from compress.errors import ConfigError
from compress.registry import suggest


def method_settings(method: str, preset: str | None, args: dict[str, Any]) -> Any:
    """Build the settings dataclass of `method`: its defaults, then `preset`, then `args`.

    Raises:
        UnknownNameError: unknown method (with a suggestion).
        ConfigError: unknown preset or a bad method setting (naming the closest valid key).
    """
    from compress.distill.methods import METHODS

    spec = METHODS.get(method)
    base: dict[str, Any] = {}
    if preset:
        if preset not in spec.presets:
            valid = sorted(spec.presets)
            raise ConfigError(
                f"method '{method}' has no preset '{preset}'.{suggest(preset, valid)} "
                f"Presets: {', '.join(valid) or 'none'}"
            )
        base = spec.presets[preset]
    return build(
        spec.settings_cls,
        deep_merge(base, args or {}),
        where=f"method '{method}'",
        prefix="method_args.",
    )


def apply_engine_preset(config: Any, method: str, preset: str | None) -> None:
    """Set what `preset` sets outside the method (e.g. ``amp: none``) on fields left unset."""
    from compress.distill.methods import METHODS

    if not preset:
        return
    for key, value in METHODS.get(method).engine_presets.get(preset, {}).items():
        if getattr(config, key) is None:
            setattr(config, key, value)


@dataclass
class DistillConfig(TrainSettings):
    """Everything ``compress distill`` needs.

    Attributes:
        student: registry name of the student architecture.
        student_kwargs: architecture options of the student.
        teacher: the teacher's model file (``compress train`` output); online methods take none.
        method: the distillation method (``compress methods`` lists them).
        preset: a named bundle of method settings, e.g. ``faithful`` for R2KD; explicit
            ``method_args`` still win over it.
        method_args: the method's settings; the resolved config holds every one of them.
        seeds: train this many students (seeds ``seed``, ``seed+1``, ...) and report mean ± std.
        data: dataset and batching; ``name`` empty (the default) means the teacher's dataset
            (``digits`` for online methods), and the teacher's recorded image size and
            normalisation apply unless set.
        output: run directory (default ``runs/distill/<student>_<method>_<dataset>``).
        resume: continue the run(s) in ``output``.
    """

    config_order: ClassVar[tuple[str, ...]] = (
        "student",
        "student_kwargs",
        "teacher",
        "method",
        "preset",
        "method_args",
        "seeds",
        "data",
        "epochs",
    )

    student: str = "resnet8"
    student_kwargs: dict[str, Any] = field(default_factory=dict)
    teacher: str | None = field(default=None, metadata=NO_HASH)  # its SHA-256 is hashed instead
    method: str = "r2kd"
    preset: str | None = None
    method_args: dict[str, Any] = field(default_factory=dict)
    seeds: int = 1
    data: DataSettings = field(default_factory=lambda: DataSettings(name=""))
    output: str | None = field(default=None, metadata=NO_HASH)
    resume: bool = field(default=False, metadata=NO_HASH)

    def __post_init__(self) -> None:
        apply_engine_preset(self, self.method, self.preset)
        super().__post_init__()
        if self.seeds < 1:
            raise ValueError(f"seeds must be ≥ 1, got {self.seeds}")
        self.method_args = to_dict(method_settings(self.method, self.preset, self.method_args))
        check_pairing(self)

    def settings(self) -> Any:
        """The method's settings dataclass."""
        return method_settings(self.method, None, self.method_args)


def check_pairing(config: DistillConfig) -> None:
    """Refuse, when the config is built, what ``compress distill`` would refuse once it starts.

    An unknown student, a teacher given to an online method, and (when the teacher file can be
    read) feature methods whose student and teacher have different numbers of stages.

    Raises:
        ValueError: with the one-line reason (the config builder turns it into a `ConfigError`).
    """
    from pathlib import Path

    from compress.distill.methods import METHODS
    from compress.models import MODELS, model_info

    MODELS.get(config.student)  # an unknown name: one line with a suggestion
    spec = METHODS.get(config.method)
    if spec.online and config.teacher:
        raise ValueError(
            f"method '{config.method}' trains students together without a pretrained teacher; "
            "drop teacher, or pick a teacher-based method (kd, dist, dkd, r2kd)"
        )
    if config.method == "fsp" and config.teacher and Path(config.teacher).is_file():
        from compress.artifacts import read_header
        from compress.errors import CompressError

        try:
            arch = read_header(config.teacher).arch
        except CompressError:
            return  # distill() reports an unreadable teacher with its own message
        s_stages = model_info(config.student).get("stages") or ()
        t_stages = model_info(arch).get("stages") or ()
        if s_stages and t_stages and len(s_stages) != len(t_stages):
            raise ValueError(
                f"fsp pairs stages one to one, but the student {config.student} has "
                f"{len(s_stages)} stages and the teacher {arch} {len(t_stages)}; pick a teacher "
                "of the same family"
            )
