"""The ``compress`` command line: a click group with one thin module per verb.

Commands only parse flags, build settings and call one public function; heavy imports (torch,
onnxruntime) happen inside them, so ``compress --help`` is instant.
"""

from __future__ import annotations

import sys

import click

from compress import __version__
from compress.errors import CompressError


class Group(click.Group):
    """A click group that prints user errors (`CompressError`) on one line, without a traceback."""

    def invoke(self, ctx: click.Context):  # noqa: D102
        try:
            return super().invoke(ctx)
        except CompressError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            raise click.Abort() from None


HELP = """Distil, prune, export and profile compact image classifiers.

\b
Typical flow:
  compress train   --config configs/digits/teacher.yaml --output runs/teacher
  compress run     configs/quickstart.yaml

Every verb takes --config FILE.yaml plus flags; flags override the file, the file overrides the
defaults, and the resolved config is saved beside every output.
"""


@click.group(
    cls=Group,
    help=HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="compress")
def cli() -> None:
    """The ``compress`` command group."""


def _register() -> None:
    from compress.cli import benchmark, distill, export, info, listing, profile, prune, run, train
    from compress.cli import eval as eval_cmd

    for command in (
        train.train,
        distill.distill,
        prune.prune,
        export.export,
        profile.profile,
        benchmark.benchmark,
        eval_cmd.eval_cmd,
        info.info,
        run.run,
        listing.models,
        listing.datasets,
        listing.methods,
    ):
        cli.add_command(command)


_register()


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="compress")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
