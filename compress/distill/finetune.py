"""Fine-tuning a pruned model by distillation: what ``compress prune`` is given by the verb layer.

`compress.prune` knows nothing of distillation (it sits below it); the verbs (CLI, pipeline,
notebook API, all through `compress.verbs`) hand it a `DistillFinetuner`, which checks the
method before any pruning work and runs `compress.distill.api.train_student`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from torch import nn

from compress.artifacts import file_ref, load_model, model_header, read_header
from compress.errors import CompressError


class DistillFinetuner:
    """The fine-tune step of ``compress prune`` (see `compress.prune.api.Finetuner`)."""

    def check(self, config: Any) -> None:
        """Fail before any pruning work when the fine-tuning method cannot run."""
        from compress.distill.config import method_settings
        from compress.distill.methods import METHODS

        spec = METHODS.get(config.method_name)
        if spec.online:
            raise CompressError(
                f"method '{config.method_name}' cannot fine-tune a pruned model (it trains a "
                "cohort)"
            )
        if spec.needs_teacher and not config.teacher:
            raise CompressError(f"fine-tuning with '{config.method_name}' needs --teacher FILE")
        if config.teacher:
            read_header(config.teacher)
        method_settings(config.method_name, config.preset, config.method_args)

    def __call__(self, model: nn.Module, job: Any, out: Path, epochs: int) -> dict[str, Any]:
        """Fine-tune the pruned `model` for `epochs` epochs into `out` (`train_student`)."""
        from compress.data import check_fits
        from compress.distill.api import train_student
        from compress.distill.config import method_settings
        from compress.distill.methods import METHODS

        config, info, device, log = job.config, job.info, job.device, job.log
        spec = METHODS.get(config.method_name)
        teacher = (
            load_model(config.teacher, device=device)
            if (config.teacher and spec.needs_teacher)
            else None
        )
        if teacher is not None:
            check_fits(teacher.compress_header, info, what="teacher")
        header = model_header(model)
        log(
            f"fine-tuning with {config.method_name} for {epochs} epoch(s)"
            + (f" from {config.teacher}" if teacher else "")
        )
        train = config.train_settings(epochs)
        preset = spec.engine_presets.get(config.preset or "", {})
        unset = {k: v for k, v in preset.items() if getattr(config, k, None) is None}
        if unset:  # what the preset sets outside the method (faithful: fp32), unless given
            train = dataclasses.replace(train, **unset)
        return train_student(
            model,
            teacher,
            method=config.method_name,
            settings=method_settings(config.method_name, config.preset, config.method_args),
            data=job.data,
            data_settings=job.data_settings,
            train=train,
            out_dir=out,
            device=device,
            digest=job.digest,
            save_meta={
                "pruning": header.pruning,
                "parent": config.model,
                "teacher": file_ref(config.teacher) if teacher is not None else None,
            },
            resume=config.resume and (Path(out) / "state.pt").exists(),
            log=log,
        )
