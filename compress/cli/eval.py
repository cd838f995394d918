"""``compress eval``."""

from __future__ import annotations

import click

from compress.cli.common import echo


@click.command("eval")
@click.argument("model", type=click.Path())
@click.option("--dataset", help="Dataset (default: the one recorded in the model file).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Where the dataset files are.")
@click.option(
    "--batch-size", type=int, default=500, show_default=True, help="Evaluation batch size."
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), help="Also write the result as JSON."
)
def eval_cmd(
    model: str,
    dataset: str | None,
    data_dir: str | None,
    batch_size: int,
    device: str,
    json_path: str | None,
) -> None:
    """Test-split top-1/top-5 of a model file."""
    from compress.artifacts import atomic_write_json
    from compress.data.base import DataSettings
    from compress.evaluate import evaluate_model_file

    settings = DataSettings(name=dataset or "", data_dir=data_dir, eval_batch_size=batch_size)
    result = evaluate_model_file(model, settings, device=device)
    echo(
        f"{model} on {result['dataset']} ({result['samples']:,} test images): "
        f"top-1 {100 * result['top1']:.2f}%  top-5 {100 * result['top5']:.2f}%  loss {result['loss']:.4f}"
    )
    if json_path:
        atomic_write_json(json_path, result)
        echo(f"wrote {json_path}")
