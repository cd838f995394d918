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
@click.option(
    "--executor",
    metavar="local|ray[:ADDRESS]",
    help="Where the cells run: local (here, one after another; the default), ray (RAY_ADDRESS, "
    "a cluster started on this machine, or a new local Ray instance) or ray:ADDRESS "
    "(ray:auto, ray:HOST:PORT). Each cell asks for the recipe's resources: {cpus, gpus}.",
)
@click.option(
    "--dry-run", is_flag=True, help="List the cells, which are done and where each would run."
)
def study(
    config: str,
    output: str | None,
    device: str | None,
    executor: str | None,
    assignments: tuple[str, ...],
    dry_run: bool,
) -> None:
    """Run a grid of methods × data settings (label noise σ or imbalance γ) × seeds.

    One teacher per setting, trained on the same corrupted data; finished cells are skipped and
    an interrupted one resumes, so re-running continues the grid. Writes DIR/study.{md,csv,json}
    (mean ± std per cell, methods as rows) and DIR/study.png. See configs/study/.
    """
    from compress.study import StudyConfig, run_study

    settings = resolve_config(
        StudyConfig, config, {"output": output, "device": device, "executor": executor}, assignments
    )
    result = run_study(settings, dry_run=dry_run, log=echo)
    if dry_run:
        done = sum(c["done"] for c in result["cells"])
        echo(f"{config}: {len(result['cells'])} cell(s), {done} done, into {result['output']}")
        echo(f"executor {result['executor']}: each cell runs {result['where']}")
        for c in result["cells"]:
            echo(f"  {'done' if c['done'] else 'todo':<5} {c['cell']:<28} {c['dir']}")
        return
    echo("")
    echo(result["table"])
    echo(f"wrote {result['output']}/study.md, study.csv, study.json, study.png")
    if result["failed"]:
        from compress.errors import CompressError

        raise CompressError(
            f"{len(result['failed'])} cell(s) failed (listed under the table and in study.json); "
            "fix their cause and run the same command again: finished cells are kept"
        )
