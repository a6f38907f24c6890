"""steinbock 0.16.5 compatibility: the one table of steinbock's names for our options.

Our commands keep their own option names; where steinbock 0.16.5 spells an option
differently, its spelling is added to the same click option (:data:`ALIASES`), so
a lab's ``steinbock.sh`` runs with the program name changed. steinbock options we
have no use for are accepted (:data:`ACCEPTED`): ignored where they cannot change
the result, an error where a value other than steinbock's default would. Every
command also takes steinbock's ``-v/--verbosity LVL``.

:func:`apply_steinbock_names` applies the table to the command tree once, at start-up;
:func:`migration_markdown` renders ``docs/migration.md`` from it, so the page cannot
drift (``python -m steinbock_like.cli.steinbock_compat > docs/migration.md``).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import click

from steinbock_like.cli.options import OVERWRITE_ENVVAR

STEINBOCK_VERSION = "0.16.5"
VERBOSITY_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


@dataclass(frozen=True)
class Alias:
    """steinbock's name(s) for one of our options."""

    command: str  #: our command path, e.g. "classify ilastik fix"
    param: str  #: our click parameter name
    names: tuple[str, ...] = ()  #: steinbock's option names
    negations: tuple[str, ...] = ()  #: steinbock's "--no-x" names of a boolean flag


_ANY = object()


@dataclass(frozen=True)
class Accepted:
    """A steinbock option we accept without an option of our own."""

    command: str
    declaration: str  #: click declaration, e.g. "--mmap/--no-mmap" or "--cellprofiler"
    default: object  #: steinbock's default
    reason: str
    #: the value we in effect use; another value given explicitly is an error.
    #: ``_ANY``: any value is fine (it cannot change the outputs)
    ours: object = _ANY
    type: object = str

    @property
    def is_flag(self) -> bool:
        return "/" in self.declaration

    @property
    def ignored(self) -> bool:
        return self.ours is _ANY

    @property
    def effective(self) -> object:
        return self.default if self.ignored else self.ours


ALIASES: tuple[Alias, ...] = (
    Alias("classify ilastik fix", "crop_dir", ("--crop",)),
    Alias("classify ilastik fix", "axes", ("--axisorder",)),
    Alias("segment cellprofiler run", "probabilities_dir", ("--probabs",)),
)

_MMAP = "memory mapping is a speed/memory hint; outputs are the same without it"
_FINDS_TOOL = "steinbock-like finds the tool itself, as the command's help says"

ACCEPTED: tuple[Accepted, ...] = (
    *(
        Accepted(command, "--mmap/--no-mmap", False, _MMAP)
        for command in (
            "measure intensities",
            "measure regionprops",
            "measure neighbors",
            "utils expand",
            "utils match",
            "utils mosaics tile",
            "utils mosaics stitch",
        )
    ),
    Accepted(
        "segment cellprofiler run",
        "--cellprofiler",
        "cellprofiler",
        "CellProfiler runs as 'PYTHON -m cellprofiler', PYTHON given by --python",
        ours="cellprofiler",
    ),
    Accepted("apps ilastik", "--ilastik", "/opt/ilastik/run_ilastik.sh", _FINDS_TOOL),
    Accepted("apps cellprofiler", "--python", "/opt/cellprofiler-venv/bin/python", _FINDS_TOOL),
    Accepted("apps cellprofiler", "--cellprofiler", "cellprofiler", _FINDS_TOOL),
    Accepted("apps cellprofiler", "--plugins-directory", "/opt/cellprofiler_plugins", _FINDS_TOOL),
    Accepted("apps jupyter", "--python", "python", _FINDS_TOOL),
    Accepted("apps jupyter", "--jupyter", "jupyter", _FINDS_TOOL),
    Accepted("apps jupyterlab", "--python", "python", _FINDS_TOOL),
    Accepted("apps jupyterlab", "--jupyter", "jupyter", _FINDS_TOOL),
    Accepted("segment cellpose", "--channel-axis", 0, "images are CYX (channel axis 0)", 0, int),
)

#: behaviour that differs on purpose, for the migration page
NOTES = (
    f"Existing outputs are refused unless `--overwrite` is given (steinbock silently "
    f"replaces them). `{OVERWRITE_ENVVAR}=1` in the environment turns `--overwrite` on "
    f"for every command of a script; `--resume` skips existing outputs instead.",
    "`-v/--verbosity LVL` (steinbock's, after the command) and `-v`/`-q` before the command "
    "(ours) both set how much is logged.",
    "`segment deepcell` runs Mesmer on our ONNX copy of the network (no TensorFlow); "
    "`segment mesmer` is the same with our option names (`--type both`, `--chunk-size`).",
    "`classify ilastik run` and `segment cellprofiler run` use ilastik and CellProfiler "
    "where installed and our native implementations otherwise (`--backend`).",
    "`segment mesmer --type nuclear -o DIR` writes the nuclear masks to DIR, as steinbock's "
    "`segment deepcell` does (`--nuclei-out` names it explicitly).",
    "`measure cellprofiler prepare` writes steinbock's `cellprofiler_input/` byte for byte, "
    "but a pipeline of stock CellProfiler 4.2 modules (no ImcPluginsCP plugins needed); "
    "`measure cellprofiler run` (real CellProfiler only) writes the same `Cell.csv` and "
    "`Object relationships.csv`; in `Image.csv` only the `ExecutionTime_`/`ModuleError_` "
    "columns of modules 7-9 are named after other modules.",
    "`view IMAGE` opens napari as `apps napari` does; `--pixelsize` is accepted but layers "
    "are shown in pixels.",
)


def _names_of(command: click.Command) -> set[str]:
    names = set()
    for param in command.params:
        names.update(param.opts)
        names.update(param.secondary_opts)
    return names


def _set_verbosity(ctx: click.Context, param: click.Parameter, value: str | None):
    if value is None:
        return None
    level = value.upper()
    if level not in VERBOSITY_LEVELS:
        raise click.BadParameter(f"{value!r}: use one of {', '.join(VERBOSITY_LEVELS)}")
    logging.getLogger("steinbock_like").setLevel(getattr(logging, level))
    return None


def verbosity_option() -> click.Option:
    """steinbock's ``-v/--verbosity LVL`` (sets the log level; not passed to the command)."""
    return click.Option(
        ["-v", "--verbosity"],
        metavar="LVL",
        default=None,
        expose_value=False,
        is_eager=True,
        callback=_set_verbosity,
        help=f"Log level: {', '.join(VERBOSITY_LEVELS)} (steinbock's option).",
    )


def _accepted_option(entry: Accepted) -> click.Option:
    def check(ctx: click.Context, param: click.Parameter, value):
        if entry.ignored or value == entry.ours:
            return None
        if ctx.get_parameter_source(param.name) is click.core.ParameterSource.DEFAULT:
            return None
        raise click.BadParameter(f"{value!r} is not supported: {entry.reason}")

    kwargs = {"type": entry.type} if not entry.is_flag else {}
    return click.Option(
        [entry.declaration],
        default=entry.effective,
        expose_value=False,
        callback=check,
        help=f"steinbock's option, accepted: {entry.reason}.",
        **kwargs,
    )


def _resume_beats_environment(callback):
    """An explicit ``--resume`` wins over ``--overwrite`` from the environment."""

    @functools.wraps(callback)
    def wrapper(*args, **kwargs):
        ctx = click.get_current_context()
        source = ctx.get_parameter_source("overwrite")
        if kwargs.get("resume") and source is click.core.ParameterSource.ENVIRONMENT:
            kwargs["overwrite"] = False
        return callback(*args, **kwargs)

    return wrapper


def commands_of(group: click.Group, prefix: tuple[str, ...] = ()):
    """Every leaf command of ``group`` as (path, command) pairs."""
    for name, command in group.commands.items():
        path = (*prefix, name)
        if isinstance(command, click.Group):
            yield from commands_of(command, path)
        else:
            yield " ".join(path), command


def apply_steinbock_names(root: click.Group) -> None:
    """Add steinbock's option names, accepted options and ``-v/--verbosity`` in place."""
    commands = dict(commands_of(root))
    for alias in ALIASES:
        command = commands[alias.command]
        (param,) = [p for p in command.params if p.name == alias.param]
        taken = _names_of(command)
        param.opts.extend(name for name in alias.names if name not in taken)
        param.secondary_opts.extend(name for name in alias.negations if name not in taken)
    for entry in ACCEPTED:
        command = commands.get(entry.command)
        if command is None:
            continue
        option = _accepted_option(entry)
        if not set(option.opts) & _names_of(command):
            command.params.append(option)
    for command in commands.values():
        if not {"-v", "--verbosity"} & _names_of(command):
            command.params.append(verbosity_option())
        names = {param.name for param in command.params}
        for param in command.params:  # commands with their own --overwrite
            if param.name == "overwrite" and isinstance(param, click.Option) and not param.envvar:
                param.envvar = OVERWRITE_ENVVAR
        if {"overwrite", "resume"} <= names and command.callback is not None:
            command.callback = _resume_beats_environment(command.callback)


def migration_markdown() -> str:
    """The migration page (``docs/migration.md``), from the tables above."""
    lines = [
        "# Migrating steinbock scripts",
        "",
        "<!-- generated by `python -m steinbock_like.cli.steinbock_compat > docs/migration.md`"
        "; do not edit -->",
        "",
        f"steinbock-like accepts steinbock {STEINBOCK_VERSION}'s commands and option names: "
        "replace `steinbock` by `steinbock-like` in a script. Our own names work as well. "
        "This page lists where the two differ.",
        "",
        "## Behaviour",
        "",
        *(f"- {note}" for note in NOTES),
        "",
        "## Option names",
        "",
        "| steinbock | steinbock-like |",
        "| --- | --- |",
    ]
    for alias in ALIASES:
        ours = _our_names(alias)
        for name in alias.names:
            lines.append(
                f"| `steinbock {alias.command} {name} X` | "
                f"`steinbock-like {alias.command} {ours[0]} X` |"
            )
        for name in alias.negations:
            lines.append(
                f"| `steinbock {alias.command} {name}` | "
                f"`steinbock-like {alias.command} {name}` (or leave out `{ours[0]}`) |"
            )
    lines += [
        "",
        "## steinbock options accepted without an equivalent",
        "",
        "| command | option | steinbock's default | steinbock-like |",
        "| --- | --- | --- | --- |",
    ]
    for entry in ACCEPTED:
        effect = "any value, ignored" if entry.ignored else f"`{entry.ours}` only"
        lines.append(
            f"| `{entry.command}` | `{entry.declaration}` | `{entry.default}` | "
            f"{effect}: {entry.reason} |"
        )
    lines += [
        "",
        f"Every command also takes `-v/--verbosity LVL` ({', '.join(VERBOSITY_LEVELS)}).",
        "",
    ]
    return "\n".join(lines)


def _our_names(alias: Alias) -> list[str]:
    from steinbock_like.cli.main import cli

    command = dict(commands_of(cli))[alias.command]
    (param,) = [p for p in command.params if p.name == alias.param]
    steinbock = set(alias.names) | set(alias.negations)
    return [name for name in param.opts if name not in steinbock] or list(param.opts)


if __name__ == "__main__":
    click.echo(migration_markdown(), nl=False)
