"""``gzsl data check`` and ``gzsl data convert``: inspect a dataset's files, write our .npz."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gzsl.data.dataset import GZSLData
from gzsl.data.errors import DataError, GZSLError
from gzsl.data.io import save_npz
from gzsl.data.loaders import LAYOUTS, SEMANTICS, read_dataset
from gzsl.data.validation import Problem, raise_if_problems

app = typer.Typer(
    name="data",
    help="Check a dataset's files, or convert them to gzsl's .npz layout "
    "(layouts: docs/data-formats.md).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

PathArgument = Annotated[str, typer.Argument(
    help="Folder holding the files (res101.mat + att_splits.mat, or data.mat + label.mat), "
    "a parent folder holding DATASET/, a .npz file, or 'demo'.", show_default=False)]
DatasetOption = Annotated[str | None, typer.Option(
    "--dataset", help="Dataset name (AWA1, AWA2, APY, CUB, SUN, FLO, demo or your own); "
    "default: the name of PATH.")]
LayoutOption = Annotated[str | None, typer.Option(
    "--layout", help=f"One of {', '.join(LAYOUTS)}; default: detected from the files.")]
SemanticsOption = Annotated[str, typer.Option(
    "--semantics", help="xlsa17 only: att (att_splits.mat, attributes) or sent "
    "(sent_splits.mat, CUB's sentence embeddings).")]


def _console() -> Console:
    return Console(highlight=False)


def _name_and_root(path: str, dataset: str | None) -> tuple[str | None, str | None]:
    """``check demo`` needs no files; otherwise the name defaults to PATH's own name."""
    if dataset is not None and dataset.lower() == "demo":
        return dataset, None
    if not Path(path).exists() and path.lower() == "demo":
        return path, None
    location = Path(path)
    if dataset is None and location.suffix.lower() == ".npz":
        return None, path
    if location.suffix.lower() == ".mat":
        location = location.parent
    return dataset or location.resolve().name, path


def _read(name: str | None, root: str | None, **options: str | None) -> tuple:
    """:func:`read_dataset`, its fix lines naming this command's PATH argument (the
    training commands' --root does not exist here)."""
    try:
        return read_dataset(name, root, **options)
    except DataError as error:
        if error.fix and "--root DIR" in error.fix:
            raise DataError(error.message, file=error.file, key=error.key,
                            fix=error.fix.replace("pass --root DIR, ", "give as PATH ")) from error
        raise


def _check_option(value: str | None, allowed: tuple[str, ...], option: str) -> None:
    if value is not None and value not in allowed:
        raise typer.BadParameter(f"choose one of {', '.join(allowed)}", param_hint=option)


def report(data: GZSLData | None, problems: list[Problem]) -> Table | None:
    """A table of what a user checks first: classes, images per split, dimensions, files."""
    if data is None:
        return None
    summary = data.summary()
    table = Table(title=f"dataset {data.name}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    layout = data.source.get("layout", "embedded" if data.synthetic else "?")
    table.add_row("layout", str(layout) + (f", semantics {data.source['semantics']}"
                                           if "semantics" in data.source else ""))
    table.add_row("synthetic features", "YES: not extracted from images" if data.synthetic
                  else "no")
    table.add_row("classes", f"{summary['classes']} ({summary['seen_classes']} seen, "
                             f"{summary['unseen_classes']} unseen)")
    table.add_row("feature dim", str(summary["feature_dim"]))
    table.add_row("semantic dim", str(summary["semantic_dim"]))
    table.add_row("images", str(summary["images"]))
    for split in ("trainval", "test_seen", "test_unseen", "train", "val"):
        if split in data.splits:
            table.add_row(f"  {split}", str(len(data.splits[split])))
    table.add_row("validation split", "yes" if data.has_validation else
                  "no (train_loc / val_loc absent)")
    for record in data.source.get("files", []):
        table.add_row(f"file ({record['role']})",
                      f"{record['path']}\nsha256 {record['sha256'][:16]}...")
    for note in data.source.get("notes", []):
        table.add_row("note", note)
    table.add_row("problems", str(len(problems)) if problems else "none")
    return table


@app.command()
def check(
    path: PathArgument,
    dataset: DatasetOption = None,
    layout: LayoutOption = None,
    semantics: SemanticsOption = "att",
) -> None:
    """Load a dataset, print what it holds and every problem found; exit 1 on a problem,
    2 when a file cannot be read at all (empty, truncated, corrupt, not readable).

    Examples: gzsl data check ~/data/AWA2 ; gzsl data check ~/data --dataset CUB
    --semantics sent ; gzsl data check mine.npz ; gzsl data check demo
    """
    _check_option(layout, LAYOUTS, "--layout")
    _check_option(semantics, SEMANTICS, "--semantics")
    name, root = _name_and_root(path, dataset)
    data, problems = _read(name, root, layout=layout, semantics=semantics)
    console = _console()
    table = report(data, problems)
    if table is not None:
        console.print(table)
    if problems:
        console.print(f"[bold red]{len(problems)} problem(s):[/]")
        for number, problem in enumerate(problems, start=1):
            console.print(f"{number}. {problem}", markup=False, soft_wrap=True)
        raise SystemExit(1)  # not typer.Exit: gzsl.cli.main runs click non-standalone
    console.print("[green]no problems found[/]")


@app.command()
def convert(
    path: PathArgument,
    out: Annotated[Path, typer.Argument(help="The .npz file to write.", show_default=False)],
    dataset: DatasetOption = None,
    layout: LayoutOption = None,
    semantics: SemanticsOption = "att",
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists.")] = False,
) -> None:
    """Load a dataset (checking it) and write it in gzsl's .npz layout.

    The .npz holds features (N x D), 0-based labels, semantics (C x A), class names, the
    0-based index sets and the provenance of the original files. The input files are only
    read. Example: gzsl data convert ~/data/CUB cub_sent.npz --semantics sent
    """
    _check_option(layout, LAYOUTS, "--layout")
    _check_option(semantics, SEMANTICS, "--semantics")
    if out.suffix.lower() != ".npz":
        raise GZSLError(f"output {out} must end with .npz")
    if out.exists() and not force:
        raise GZSLError(f"{out} exists; pass --force to replace it")
    name, root = _name_and_root(path, dataset)
    if root is not None and Path(root).is_file() and Path(root).resolve() == out.resolve():
        raise GZSLError(f"{out} is the input file; write to another path")
    data, problems = _read(name, root, layout=layout, semantics=semantics)
    raise_if_problems(problems)
    assert data is not None
    written = save_npz(data, out)
    summary = data.summary()
    _console().print(
        f"wrote {written}: {summary['images']} images, {summary['classes']} classes "
        f"({summary['seen_classes']} seen, {summary['unseen_classes']} unseen), features "
        f"{summary['feature_dim']}-d, semantics {summary['semantic_dim']}-d"
        + (", SYNTHETIC features" if data.synthetic else ""), soft_wrap=True)
