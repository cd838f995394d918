"""The ``compress`` command line: a click group with one thin module per verb.

Commands only parse flags, build settings and call one public function; heavy imports (torch,
onnxruntime) happen inside them, so ``compress --help`` is instant.
"""

from __future__ import annotations

import sys

import click

from compress._version import __version__
from compress.errors import CompressError


class UserError(click.ClickException):
    """A user mistake: one line on stderr, exit code 2 (as click's own usage errors)."""

    exit_code = 2

    def format_message(self) -> str:  # noqa: D102
        return " ".join(self.message.split())  # one line, whatever the message held


class InternalError(click.ClickException):
    """A bug: one line pointing at the log file that holds the traceback."""

    exit_code = 3


def write_crash_log(exc: BaseException) -> str:
    """Write the traceback of `exc` to a log file and return its path."""
    import datetime as dt
    import os
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"compress-error-{stamp}-{os.getpid()}.log"
    base = os.environ.get("COMPRESS_LOG_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "compress", "logs"
    )
    for directory in (base, tempfile.gettempdir()):
        try:
            os.makedirs(directory, exist_ok=True)
            path = os.path.join(directory, name)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(f"compress {__version__}: {' '.join(sys.argv)}\n{text}")
            return path
        except OSError:
            continue
    return "(no writable log directory)"


def _interrupted() -> int:
    """Say where an interrupted run stopped and how to continue it; the exit code (130)."""
    trainer = sys.modules.get("compress.engine.trainer")
    run = getattr(trainer, "CURRENT", None) if trainer else None
    if not run:
        click.echo("stopped (Ctrl-C)", err=True)
        return 130
    argv = [a for a in sys.argv[1:]]
    if "--resume" not in argv:
        argv.append("--resume")
    if run["done"] == 0:
        where = "before its first epoch finished (nothing to resume yet)"
    else:
        where = f"after epoch {run['done']}/{run['epochs']} (its checkpoint is in {run['out']})"
    click.echo(f"stopped {where}; resume with: compress {' '.join(argv)}", err=True)
    return 130


class Group(click.Group):
    """A click group under which no exception prints a Python traceback.

    A `CompressError` (a user mistake) prints its message on one line and exits with 2; any
    other exception is a bug: it prints "internal error" with the path of a log file holding
    the traceback and exits with 3.
    """

    def invoke(self, ctx: click.Context):  # noqa: D102
        try:
            return super().invoke(ctx)
        except CompressError as exc:
            raise UserError(str(exc)) from None
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            raise click.exceptions.Exit(_interrupted()) from None
        except BrokenPipeError:  # `compress … | head`: the reader left; nothing is wrong
            import os

            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise click.exceptions.Exit(1) from None
        except Exception as exc:
            from compress.runtime.errors import AgentError  # stdlib only: cheap, on errors only

            if isinstance(exc, AgentError):  # the runtime refused the input or the file
                raise UserError(str(exc)) from None
            log = write_crash_log(exc)
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise InternalError(
                f"internal error ({type(exc).__name__}: {first}); this is a bug in compress, "
                f"please report it with the log {log}"
            ) from None


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
    from compress.cli import (
        benchmark,
        distill,
        export,
        import_,
        info,
        listing,
        profile,
        prune,
        quantize,
        run,
        study,
        train,
    )
    from compress.cli import eval as eval_cmd

    for command in (
        train.train,
        distill.distill,
        prune.prune,
        quantize.quantize,
        export.export,
        profile.profile,
        benchmark.benchmark,
        eval_cmd.eval_cmd,
        info.info,
        import_.import_cmd,
        run.run,
        study.study,
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
