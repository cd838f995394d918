"""``compress study``."""

from __future__ import annotations

import click

from compress.cli.common import echo, resolve_config


@click.command("study")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--output", "-o", type=click.Path(file_okay=False), help="Study directory.")
@click.option("--device", help="Device for every run: auto, cpu, cuda or cuda:N.")
@click.option(
    "--set", "assignments", multiple=True, metavar="KEY=VALUE", help="Override a study key."
)
@click.option("--dry-run", is_flag=True, help="List the cells and which are done; run nothing.")
def study(
    config: str, output: str | None, device: str | None, assignments: tuple[str, ...], dry_run: bool
) -> None:
    """Run a grid of methods × data settings (label noise σ or imbalance γ) × seeds.

    One teacher per setting, trained on the same corrupted data; finished cells are skipped and
    an interrupted one resumes, so re-running continues the grid. Writes DIR/study.{md,csv,json}
    (mean ± std per cell, methods as rows) and DIR/study.png. See configs/study/.
    """
    from compress.study import StudyConfig, run_study

    settings = resolve_config(
        StudyConfig, config, {"output": output, "device": device}, assignments
    )
    result = run_study(settings, dry_run=dry_run, log=echo)
    if dry_run:
        done = sum(c["done"] for c in result["cells"])
        echo(f"{config}: {len(result['cells'])} cell(s), {done} done, into {result['output']}")
        for c in result["cells"]:
            echo(f"  {'done' if c['done'] else 'todo':<5} {c['cell']:<28} {c['dir']}")
        return
    echo("")
    echo(result["table"])
    echo(f"wrote {result['output']}/study.md, study.csv, study.json, study.png")
