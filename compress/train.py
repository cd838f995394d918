"""``compress train``: train a teacher, or a no-KD baseline, from scratch."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from compress._lazy import make_callable
from compress.config import NO_HASH, config_hash, write_config
from compress.data.base import DataSettings
from compress.engine.settings import TrainSettings


@dataclass
class TrainConfig(TrainSettings):
    """Everything ``compress train`` needs: model, data and the engine settings.

    Attributes:
        model: registry name of the architecture.
        model_kwargs: architecture options (e.g. ``{width_mult: 1.0}``).
        data: dataset and batching.
        label_smoothing: cross-entropy label smoothing.
        output: run directory (default ``runs/train/<model>_<dataset>``).
        resume: continue the run in ``output``.
    """

    config_order: ClassVar[tuple[str, ...]] = ("model", "model_kwargs", "data", "epochs")

    model: str = "resnet20"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    data: DataSettings = field(default_factory=DataSettings)
    label_smoothing: float = 0.0
    output: str | None = field(default=None, metadata=NO_HASH)
    resume: bool = field(default=False, metadata=NO_HASH)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")


def describe_data(info: Any) -> str:
    """``digits (1,437 train / 360 test, 10 classes, 1×8×8)``."""
    h, w = info.input_size
    return (
        f"{info.name} ({info.train_size:,} train / {info.test_size:,} test, {info.num_classes} classes, "
        f"{info.in_channels}×{h}×{w})"
    )


def train(config: TrainConfig, *, log: Any = print) -> dict[str, Any]:
    """Train ``config.model`` on ``config.data`` with plain cross-entropy.

    Returns:
        The run summary (``summary.json``), plus ``"output"``: the run directory.
    """
    import torch

    from compress.artifacts import default_output_dir
    from compress.data import build_loaders, load_data
    from compress.distributed import env, rank_log, together
    from compress.engine import SupervisedTask, fit, resolve_device
    from compress.engine.checkpoint import check_resume
    from compress.models import count_params, create_model
    from compress.outputs import run_directory_main

    device = resolve_device(config.device)
    with together():  # under torchrun, a data error on one rank stops every rank at once
        data = load_data(config.data, seed=config.seed)
        info = data.info
        torch.manual_seed(config.seed)
        model = create_model(
            config.model,
            num_classes=info.num_classes,
            in_channels=info.in_channels,
            **config.model_kwargs,
        )
    out = (
        Path(config.output)
        if config.output
        else default_output_dir("train", f"{config.model}_{info.name}")
    )
    main = env().is_main
    log = rank_log(log)
    with run_directory_main(out, kind="train", resume=config.resume):
        digest = config_hash(config)
        # a run killed before its first checkpoint has nothing to resume: it starts over
        resume = config.resume and (out / "state.pt").exists()
        if resume:
            check_resume(out / "state.pt", digest, config)
        if main:
            write_config(config, out)
        channels_last = device.type == "cuda" and config.channels_last
        train_loader, eval_loader = build_loaders(
            data, config.data, device=device, seed=config.seed, channels_last=channels_last
        )
        log(
            f"train {config.model} ({count_params(model) / 1e6:.3f} M params) on {describe_data(info)}, "
            f"{config.epochs} epochs on {device} → {out}"
        )
        summary = fit(
            SupervisedTask(model, config.label_smoothing),
            train_loader,
            eval_loader,
            config,
            out_dir=out,
            device=device,
            config_hash=digest,
            save_meta=info.header(),
            summary_extra={
                "model": config.model,
                "dataset": info.name,
                "data_protocol": info.protocol,
            },
            resume=resume,
            per_class=info.protocol is not None,
            log=log,
        )
        log(
            f"best top-1 {100 * summary['top1']:.2f}% (epoch {summary['best_epoch']}), last "
            f"{100 * summary['top1_last']:.2f}% → {out / 'model.safetensors'}"
        )
    return {**summary, "output": str(out)}


# `compress.train(...)` is the notebook API's verb, although this is also a module
make_callable(__name__, "compress.api", "train")
