"""The ``gzsl`` command line: thin wrappers that parse, call the library and print."""

from __future__ import annotations

import functools
import sys

import typer
from rich.console import Console
from rich.markup import escape

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
)


@functools.cache
def _register_subcommands() -> None:
    from gzsl.cli import data as data_cli
    from gzsl.cli import features as features_cli
    from gzsl.cli import run  # noqa: F401  (defines train, reproduce, ablate, list)
    from gzsl.cli import study as study_cli

    # isort: split
    from gzsl.cli import results  # noqa: F401  (predict, plot, compare, retrieve)

    app.add_typer(data_cli.app, name="data", help="Check, convert and make dataset files.")
    app.add_typer(features_cli.app, name="features",
                  help="Image features and class semantics from your own images and words.")
    app.add_typer(study_cli.app, name="study", help="Hyperparameter studies on Optuna: search "
                  "on validation H with many workers (docs/studies.md).")


def main() -> None:
    """Console-script entry point: user errors print one clear line and exit with status 2."""
    _register_subcommands()
    try:
        code = app(standalone_mode=False)
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
