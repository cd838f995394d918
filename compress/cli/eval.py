"""``compress eval``."""

from __future__ import annotations

import click

from compress.cli.common import config_options, echo, resolve_config
from compress.cli.flags import Flag, options, overrides
from compress.evaluate import EvalConfig

FLAGS = (
    Flag("--dataset", "data.name", "Dataset (the one recorded in the model file if unset)."),
    Flag("--data-dir", "data.data_dir", "Where the dataset files are.", kind="dir"),
    Flag("--image-size", "data.image_size", "Measure at this image size on purpose (the size recorded in the model file if unset)."),
    Flag("--batch-size", "data.eval_batch_size", "Evaluation batch size."),
    Flag("--device", "device", "auto, cpu, cuda or cuda:N."),
    Flag("--json", "json", "Also write the result as JSON (never over a file compress did not write).", kind="file"),
)  # fmt: skip


@click.command("eval")
@click.argument("model", type=click.Path(), required=False)
@config_options
@options(FLAGS, EvalConfig)
def eval_cmd(
    model: str | None, config_path: str | None, assignments: tuple[str, ...], **kw: object
) -> None:
    """Test-split top-1/top-5 of a model file, at the geometry the file records.

    The dataset, image size and normalisation come from the model file unless --dataset,
    --image-size or --set data.KEY=VALUE say otherwise.
    """
    from compress.errors import CompressError
    from compress.evaluate import evaluate_model_file
    from compress.outputs import write_report
    from compress.runtime.reports import refusal

    given = overrides(FLAGS, kw)
    json_path = given.pop("json", None)
    config = resolve_config(EvalConfig, config_path, {"model": model, **given}, assignments)
    if not config.model:
        raise CompressError("give the model file to evaluate: compress eval MODEL.safetensors")
    if json_path and refusal(json_path):  # before the work, not after it
        raise CompressError(refusal(json_path))
    result = evaluate_model_file(config.model, config.data, device=config.device)
    echo(
        f"{config.model} on {result['dataset']} ({result['samples']:,} test images): "
        f"top-1 {100 * result['top1']:.2f}%  top-5 {100 * result['top5']:.2f}%  loss {result['loss']:.4f}"
    )
    if json_path:
        write_report(json_path, result)
        echo(f"wrote {json_path}")
