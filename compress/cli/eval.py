"""``compress eval``."""

from __future__ import annotations

import click

from compress.cli.common import config_options, echo, resolve_config


@click.command("eval")
@click.argument("model", type=click.Path(), required=False)
@config_options
@click.option("--dataset", help="Dataset (default: the one recorded in the model file).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where the dataset files are.")
@click.option(
    "--image-size",
    type=int,
    help="Measure at this image size on purpose (default: the size recorded in the model file).",
)
@click.option("--batch-size", type=int, help="Evaluation batch size (default 500).")
@click.option("--device", help="auto (default), cpu, cuda or cuda:N.")
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), help="Also write the result as JSON."
)
def eval_cmd(
    model: str | None,
    config_path: str | None,
    assignments: tuple[str, ...],
    dataset: str | None,
    data_dir: str | None,
    image_size: int | None,
    batch_size: int | None,
    device: str | None,
    json_path: str | None,
) -> None:
    """Test-split top-1/top-5 of a model file, at the geometry the file records.

    The dataset, image size and normalisation come from the model file unless --dataset,
    --image-size or --set data.KEY=VALUE say otherwise.
    """
    from compress.errors import CompressError
    from compress.evaluate import EvalConfig, evaluate_model_file
    from compress.outputs import write_report
    from compress.runtime.reports import refusal

    overrides = {
        "model": model,
        "data.name": dataset,
        "data.data_dir": data_dir,
        "data.image_size": image_size,
        "data.eval_batch_size": batch_size,
        "device": device,
    }
    config = resolve_config(EvalConfig, config_path, overrides, assignments)
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
