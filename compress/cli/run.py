"""``compress run``."""

from __future__ import annotations

import click

from compress.cli.common import echo, echo_table


@click.command("run")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False),
    help="Pipeline directory (default: the file's 'output').",
)
@click.option("--device", help="Device for every stage: auto, cpu, cuda or cuda:N.")
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="STAGE.KEY=VALUE",
    help="Override a stage's key (e.g. --set pruned.finetune_epochs=1) or a default "
    "(--set defaults.seed=1); repeatable.",
)
@click.option(
    "--dry-run", is_flag=True, help="Check every stage's config and print the plan; run nothing."
)
def run(
    config: str,
    output: str | None,
    device: str | None,
    assignments: tuple[str, ...],
    dry_run: bool,
) -> None:
    """Run the stages of a pipeline YAML file (stage types: train, distill, prune, export, benchmark).

    Each stage writes into OUTPUT/<stage name>/. A finished stage whose resolved config and
    inputs are unchanged is skipped, so re-running resumes; see configs/quickstart.yaml.
    """
    from compress.config import config_hash, parse_assignments
    from compress.pipeline import explain_plan, plan_pipeline, results_table, run_pipeline

    sets = parse_assignments(assignments)
    if dry_run:
        root, planned = plan_pipeline(config, output=output, device=device, assignments=sets)
        echo(f"{config}: {len(planned)} stage(s) into {root}")
        for stage, action, reason in explain_plan(planned):
            echo(
                f"  {stage.name:<12} {stage.type:<10} {action:<8} ({reason}); config "
                f"{config_hash(stage.config)} → {stage.directory}"
            )
        return
    results = run_pipeline(config, output=output, device=device, assignments=sets, log=echo)
    echo("")
    echo_table(results_table(results))
    tables = [r for r in results if r.type == "benchmark" and r.summary.get("table")]
    if tables:
        echo("")
        echo(f"benchmark ({tables[-1].summary['output']}):")
        echo_table(tables[-1].summary["table"])
