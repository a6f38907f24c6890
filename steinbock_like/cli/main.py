"""The root command group: global options, logging and error reporting."""

from __future__ import annotations

import logging
import re
import sys
import traceback
from pathlib import Path

import click

from steinbock_like import __version__
from steinbock_like.cli.options import AppContext
from steinbock_like.errors import InputError, SteinbockLikeError, describe_error

logger = logging.getLogger("steinbock_like")

#: Commands that do not read the data directory (``example`` creates it).
COMMANDS_WITHOUT_DATA = ("example", "models", "doctor")

HELP = """Segment multiplexed tissue images (IMC, CODEX, IF, IHC).

Commands work on a directory with the conventional layout (panel.csv, img/,
ilastik_img/, ilastik_probabilities/, masks/, ...), given by --data (the
current directory by default, /data in the container). Every output is written
atomically; rerun with --resume to continue an interrupted run.

\b
Typical workflows:
  steinbock-like example imc demo                 # synthetic dataset to try things on
  steinbock-like --data demo segment mesmer       # deep-learning segmentation
  steinbock-like --data demo classify ilastik prepare   # pixel classification route
"""


@click.group(help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    envvar="STEINBOCK_LIKE_DATA",
    help="Data directory that relative paths are resolved against [env: STEINBOCK_LIKE_DATA].",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug messages).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.option("--debug", is_flag=True, help="Show Python tracebacks on errors.")
@click.version_option(__version__, prog_name="steinbock-like")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path, verbose: int, quiet: bool, debug: bool) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose > 1 or debug else logging.INFO
    _configure_logging(level)
    ctx.obj = AppContext(data_dir=data_dir, debug=debug)
    if ctx.invoked_subcommand not in COMMANDS_WITHOUT_DATA and not data_dir.is_dir():
        raise InputError(data_dir, "data directory not found (--data / STEINBOCK_LIKE_DATA)")


def _configure_logging(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger("steinbock_like")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    logging.captureWarnings(True)
    warnings_logger = logging.getLogger("py.warnings")
    warnings_logger.handlers[:] = [handler]
    warnings_logger.propagate = False


def _register_commands() -> None:
    from steinbock_like.cli.apps import apps_group
    from steinbock_like.cli.check import check_cmd
    from steinbock_like.cli.classify import classify_group
    from steinbock_like.cli.doctor import doctor_cmd
    from steinbock_like.cli.evaluate import evaluate_cmd
    from steinbock_like.cli.example import example_group
    from steinbock_like.cli.export import export_group
    from steinbock_like.cli.measure import measure_group
    from steinbock_like.cli.models import models_group
    from steinbock_like.cli.preprocess import preprocess_group
    from steinbock_like.cli.process import process_cmd
    from steinbock_like.cli.repair import repair_cmd
    from steinbock_like.cli.segment import segment_group
    from steinbock_like.cli.steinbock_compat import apply_steinbock_names
    from steinbock_like.cli.utils import utils_group
    from steinbock_like.cli.view import view_cmd

    for command in (
        example_group,
        preprocess_group,
        classify_group,
        check_cmd,
        evaluate_cmd,
        repair_cmd,
        apps_group,
        segment_group,
        measure_group,
        export_group,
        models_group,
        process_cmd,
        doctor_cmd,
        utils_group,
        view_cmd,
    ):
        cli.add_command(command)
    # Last: steinbock's option names and -v/--verbosity on every command registered above.
    apply_steinbock_names(cli)


_register_commands()


def _first_sentences(group: click.Group) -> None:
    """Give every command whose help has no short form its first sentence, whole.

    Click otherwise cuts the summary in a group's command list at about 45
    characters, mid-phrase ("Check that a dataset's files are consistent, without...").
    """
    for command in group.commands.values():
        if not command.short_help and command.help:
            paragraph = " ".join(command.help.strip().split("\n\n")[0].split())
            sentence = re.split(r"(?<!e\.g)(?<!i\.e)\.\s", paragraph)[0].rstrip(".")
            command.short_help = f"{sentence}."
        if isinstance(command, click.Group):
            _first_sentences(command)


_first_sentences(cli)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one line on stderr and a non-zero exit for user errors."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        # Without standalone mode click returns ctx.exit()'s code instead of exiting.
        status = cli.main(args=args, prog_name="steinbock-like", standalone_mode=False)
        sys.exit(status if isinstance(status, int) else 0)
    except click.exceptions.Exit as exit_:
        sys.exit(exit_.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except SteinbockLikeError as error:
        if debug:
            traceback.print_exc()
        click.echo(f"Error: {error}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted; rerun with --resume to continue.", err=True)
        sys.exit(130)
    except Exception as error:
        if debug:
            traceback.print_exc()
        click.echo(
            f"Error: unexpected {describe_error(error)} (rerun with --debug for details)",
            err=True,
        )
        sys.exit(1)
