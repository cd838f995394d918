"""``compress quantize``: quantization-aware training and distillation of a model file.

The float model is traced, its BatchNorm folded, and fake quantization inserted with TensorRT's
explicit-quantization conventions (`compress.quantize.graph`); the scales start from a
calibration on real training images (as the PTQ path's), then the fake-quantized model
fine-tunes with a distillation objective — by default KD from the float model itself
(self-distillation QAD), or any logit method with any teacher, R2KD's pruned copy included.
The observers move the scales during the first part of the run, then freeze
(`compress.quantize.callback`). The model file carries the quantization (replayed on load) and
exports to Q/DQ ONNX with the learned scales (``compress export --format onnx-int8``).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

from compress.artifacts import default_output_dir, file_ref, load_model, read_header
from compress.config import config_hash, hashed_dict, write_config
from compress.errors import CompressError
from compress.outputs import run_directory_main
from compress.quantize.config import QuantizeConfig


def quantize(config: QuantizeConfig, *, log: Any = print) -> dict[str, Any]:
    """Fine-tune a fake-quantized copy of ``config.model``; write it to ``output``.

    Writes ``output/model.safetensors`` (the last epoch's model, its quantization recorded),
    the training files and ``summary.json`` with ``top1_fp32`` (the float model),
    ``top1_int8_calibrated`` (right after calibration: what PTQ with these quantizers gives)
    and ``top1_int8`` (after the fine-tuning, last epoch), all on the test split.

    Raises:
        CompressError: no model, a model that is already quantized, a teacher whose classes
            differ, an architecture torch.fx cannot trace.
    """
    from compress.data import check_fits, holdout_loader, load_data_for_model, settings_for_model
    from compress.distill.api import train_student
    from compress.distill.config import method_settings
    from compress.engine import evaluate, resolve_device
    from compress.quantize.callback import QATCallback
    from compress.quantize.graph import calibrate, insert, scales

    if not config.model:
        raise CompressError("give the model file to quantize: compress quantize MODEL.safetensors")
    header = read_header(config.model)
    if header.quantized:
        parent = (header.provenance.get("parent") or {}).get("path", "its float parent")
        raise CompressError(
            f"'{config.model}' is already quantized; quantize the float model it came from "
            f"({parent}) instead"
        )
    import torch

    torch.manual_seed(config.seed)
    teacher_path = config.teacher or config.model
    teacher_header = read_header(teacher_path)
    settings = method_settings(config.method, config.preset, config.method_args)
    from compress.distributed import barrier, env, rank_log, together

    device = resolve_device(config.device)
    data_settings = settings_for_model(header, config.data)
    with together():  # under torchrun, a data error on one rank stops every rank at once
        data = load_data_for_model(header, config.data, seed=config.seed)
        check_fits(teacher_header, data.info, what="teacher")
    stem = Path(config.model).parent.name or Path(config.model).stem
    out = Path(config.output) if config.output else default_output_dir("quantize", stem)
    main = env().is_main  # under torchrun rank 0 speaks and writes; the others train with it
    log = rank_log(log)
    with run_directory_main(out, kind="quantize", resume=config.resume):
        digest = config_hash(
            {
                "config": hashed_dict(config),
                "model": file_ref(config.model)["sha256"],
                "teacher": file_ref(teacher_path)["sha256"],
            }
        )
        resume = config.resume and (out / "state.pt").exists()
        if resume:
            from compress.engine.checkpoint import check_resume

            check_resume(out / "state.pt", digest, config)
        if main:
            write_config(config, out, digest=digest)
        float_model = load_model(config.model, device=device)
        from compress.data import build_loaders

        _, eval_loader = build_loaders(data, data_settings, device=device, seed=config.seed)
        top1_fp32 = evaluate(float_model, eval_loader)["top1"]
        qmodel, record = insert(
            copy.deepcopy(float_model).cpu(),
            config.activation_type,
            reduce_range=config.reduce_range,
        )
        qmodel.compress_header = header.replace(quantization=record)
        qmodel.to(device)
        held = holdout_loader(data, data_settings, config.calib_images, device=device)
        seen = calibrate(qmodel, held, config.calib_images)
        calibrated = scales(qmodel)
        top1_calibrated = evaluate(qmodel, eval_loader)["top1"]
        log(
            f"quantize {header.arch}: {len(record['layers'])} layers, "
            f"{record['activations']} activation quantizers ({record['residual_adds']} residual "
            f"adds), BatchNorm folded; scales calibrated on {seen:,} training images; test "
            f"top-1 fp32 {100 * top1_fp32:.2f}% → fake INT8 {100 * top1_calibrated:.2f}%"
        )
        teacher = load_model(teacher_path, device=device)
        train = dataclasses.replace(config, output=str(out))
        summary = train_student(
            qmodel,
            teacher if config.method != "none" else None,
            method=config.method,
            settings=settings,
            data=data,
            data_settings=data_settings,
            train=train,
            out_dir=out,
            device=device,
            digest=digest,
            save_meta={
                **data.info.header(),
                "pruning": header.pruning,
                "quantization": record,
                "parent": config.model,
                "teacher": file_ref(teacher_path),
                "extra": {"method": config.method, "fp32_top1": top1_fp32},
            },
            summary_extra={"method": config.method, "teacher_file": file_ref(teacher_path)},
            resume=resume,
            log=log,
            callbacks=[QATCallback(config.observe)],
            keep="last",
        )
        barrier()  # rank 0 wrote the model file
        final = load_model(out / "model.safetensors", device=device)
        moved = sum(
            1 for name, values in scales(final).items() if values != calibrated.get(name, values)
        )
        summary.update(
            top1_fp32=top1_fp32,
            top1_int8_calibrated=top1_calibrated,
            top1_int8=summary["top1_last"],
            scales_moved=moved,
            quantization=record,
            calibration_images=seen,
        )
        from compress.artifacts import atomic_write_json

        if main:
            atomic_write_json(out / "summary.json", summary)
        log(
            f"INT8 (fake-quantized) top-1 {100 * summary['top1_int8']:.2f}% after "
            f"{config.epochs} epoch(s), fp32 {100 * top1_fp32:.2f}% → {out / 'model.safetensors'}"
        )
    return {**summary, "output": str(out)}
