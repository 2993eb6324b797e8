"""The ``gzsl`` command line: thin wrappers that parse, call the library and print."""

from __future__ import annotations

import functools
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

import gzsl
from gzsl.data.errors import GZSLError

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="gzsl",
    help="Generalized zero-shot learning by generative feature synthesis "
    "(GSMFlow, VAE-cFlow, AMAZ and a Gaussian baseline).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        console.print(f"gzsl {gzsl.__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option(
        "--version", callback=_show_version, is_eager=True,
        help="Show gzsl's version and exit.")] = False) -> None:
    """Generalized zero-shot learning by generative feature synthesis."""


def conventional_metavars(command: Any) -> None:
    """Name values as Unix help does (``--seed SEED``, ``PATH``), flags with none, in
    ``command`` and every subcommand; explicit metavars are kept."""
    for param in command.params:
        if getattr(param, "is_flag", False):
            param.metavar = ""
        elif param.metavar is None and param.name:
            param.metavar = param.name.rstrip("_").upper()
        if param.param_type_name == "argument":  # its name says it all: no "<str>" beside
            param.display_type_rich = lambda ctx: None
    for sub in (getattr(command, "commands", None) or {}).values():
        conventional_metavars(sub)


def _note(message: Warning | str, category: type[Warning], filename: str, lineno: int,
          file: Any = None, line: str | None = None) -> None:
    """Warnings of gzsl's own code as ``note:`` lines; others as Python prints them."""
    if Path(filename).resolve().is_relative_to(Path(gzsl.__file__).resolve().parent):
        err_console.print(f"note: {escape(str(message))}", highlight=False, soft_wrap=True)
    else:
        _show_warning(message, category, filename, lineno, file, line)


_show_warning = warnings.showwarning


@functools.cache
def _register_subcommands() -> None:
    from gzsl.cli import data as data_cli
    from gzsl.cli import features as features_cli
    from gzsl.cli import run  # noqa: F401  (defines train, reproduce, ablate, list)
    from gzsl.cli import study as study_cli

    # isort: split
    from gzsl.cli import results  # noqa: F401  (predict, plot, compare, retrieve)

    help_names = {"help_option_names": ["-h", "--help"]}
    app.add_typer(data_cli.app, name="data", help="Check, convert and make dataset files.",
                  context_settings=help_names)
    app.add_typer(features_cli.app, name="features", context_settings=help_names,
                  help="Image features and class semantics from your own images and words.")
    app.add_typer(study_cli.app, name="study", context_settings=help_names,
                  help="Hyperparameter studies on Optuna: search on validation H with many "
                  "workers (docs/studies.md).")


def main() -> None:
    """Console-script entry point: user errors print one clear line and exit with status 2."""
    _register_subcommands()
    warnings.showwarning = _note
    command = typer.main.get_command(app)
    conventional_metavars(command)
    try:
        code = command.main(prog_name="gzsl", standalone_mode=False)
    except GZSLError as error:
        err_console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False,
                          soft_wrap=True)
        sys.exit(2)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except typer.TyperException as error:  # usage errors, shown in click's own format
        show = getattr(error, "show", None)
        if show is not None:
            show()
        sys.exit(getattr(error, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)
