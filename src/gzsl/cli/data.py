"""``gzsl data check`` and ``gzsl data convert``: inspect a dataset's files, write our .npz."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gzsl.data.dataset import GZSLData
from gzsl.data.errors import DataError, GZSLError
from gzsl.data.io import save_npz
from gzsl.data.loaders import EMBEDDED_NAMES, LAYOUTS, SEMANTICS, read_dataset
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
    "a parent folder holding DATASET/, a .npz file, a feature store folder, or an embedded "
    f"dataset: {' or '.join(repr(name) for name in EMBEDDED_NAMES)}.", show_default=False)]
DatasetOption = Annotated[str | None, typer.Option(
    "--dataset", help="Dataset name (AWA1, AWA2, APY, CUB, SUN, FLO, IMAGENET-2H..., demo, "
    "demo-awa2 or your own); default: the name of PATH.")]
LayoutOption = Annotated[str | None, typer.Option(
    "--layout", help=f"One of {', '.join(LAYOUTS)}; default: detected from the files.")]
SemanticsOption = Annotated[str, typer.Option(
    "--semantics", help="xlsa17 only: att (att_splits.mat, attributes) or sent "
    "(sent_splits.mat, CUB's sentence embeddings).")]


def _console() -> Console:
    return Console(highlight=False)


def _name_and_root(path: str, dataset: str | None) -> tuple[str | None, str | None]:
    """An embedded dataset (``check demo``, ``check demo-awa2``) needs no files; otherwise
    the name defaults to PATH's own name."""
    if dataset is not None and dataset.lower() in EMBEDDED_NAMES:
        return dataset, None
    if not Path(path).exists() and path.lower() in EMBEDDED_NAMES:
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

    A feature store (the folder `gzsl data convert-imagenet` or `make-imagenet-synthetic`
    writes) is checked in one streamed pass: shapes, labels, splits, checksums, non-finite
    rows; its features are never all in memory.

    Examples: gzsl data check ~/data/AWA2 ; gzsl data check ~/data --dataset CUB
    --semantics sent ; gzsl data check mine.npz ; gzsl data check demo-awa2 ; gzsl data
    check ~/data/imagenet-21k
    """
    _check_option(layout, LAYOUTS, "--layout")
    _check_option(semantics, SEMANTICS, "--semantics")
    store = _store_folder(path, dataset)
    if store is not None:
        _check_store(store)
        return
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


def _class_names_option(value: str | None) -> tuple[str, ...] | None:
    """A class list given as a file (one name per line) or as comma-separated names."""
    if value is None:
        return None
    from gzsl.data.make import read_names

    if Path(value).is_file():
        return tuple(read_names(value))
    return tuple(name.strip() for name in value.split(",") if name.strip())


@app.command()
def make(
    features: Annotated[Path, typer.Argument(
        help="Features file written by `gzsl features extract`.", show_default=False)],
    semantics: Annotated[Path, typer.Argument(
        help="Class semantics written by `gzsl features classes`.", show_default=False)],
    out: Annotated[Path, typer.Argument(help="The dataset .npz to write.",
                                        show_default=False)],
    unseen: Annotated[str | None, typer.Option(
        "--unseen", help="Unseen classes: a file (one name per line) or comma-separated "
        "names; default: drawn with --seed.")] = None,
    unseen_count: Annotated[int | None, typer.Option(
        "--unseen-count", min=1, help="How many unseen classes to draw (default: 20%).")
    ] = None,
    val: Annotated[str | None, typer.Option(
        "--val", help="Validation classes, among the seen: a file or comma-separated names; "
        "default: drawn with --seed.")] = None,
    val_count: Annotated[int | None, typer.Option(
        "--val-count", min=0, help="How many validation classes to draw (default: 20% of "
        "the seen; 0: no validation split).")] = None,
    test_share: Annotated[float, typer.Option(
        "--test-share", help="Share of each seen class's images held out as test-seen.")
    ] = 0.2,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random choice.")] = 0,
    name: Annotated[str | None, typer.Option(
        "--name", help="Dataset name (default: the features file's).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists.")] = False,
) -> None:
    """Make a dataset from image features, class semantics and a split, in our .npz layout.

    Unseen classes get no training image; each seen class keeps a held-out share of its
    images as test-seen (xlsa17's proposed split); validation classes come from the seen
    ones. The result is checked as `gzsl data check` checks it. Example: gzsl data make
    feats.npz classes.npz mine.npz --unseen unseen.txt
    """
    from gzsl.data.io import file_record
    from gzsl.data.make import SplitSpec, make_dataset
    from gzsl.features.extract import read_features_file
    from gzsl.features.semantics import read_semantics_file

    if out.suffix.lower() != ".npz":
        raise GZSLError(f"output {out} must end with .npz")
    if out.exists() and not force:
        raise GZSLError(f"{out} exists; pass --force to replace it")
    images = read_features_file(features)
    vectors = read_semantics_file(semantics)
    spec = SplitSpec(unseen=_class_names_option(unseen), unseen_count=unseen_count,
                     val=_class_names_option(val), val_count=val_count,
                     test_share=test_share, seed=seed)
    source = {"features": images.provenance, "semantics": vectors.provenance,
              "files": [file_record(features, "features"), file_record(semantics, "semantics")]}
    data = make_dataset(images.features, images.labels, images.class_names, vectors.semantics,
                        vectors.class_names, spec, name=name or images.name, source=source)
    save_npz(data, out)
    reloaded, problems = read_dataset(None, str(out), layout="npz")
    raise_if_problems(problems)
    assert reloaded is not None
    summary = reloaded.summary()
    split = data.source["split"]
    more = ", ..." if summary["unseen_classes"] > 8 else ""
    _console().print(
        f"wrote {out}: {summary['images']} images, {summary['classes']} classes "
        f"({summary['seen_classes']} seen, {summary['unseen_classes']} unseen: "
        f"{', '.join(split['unseen_classes'][:8])}{more}), validation classes: "
        f"{', '.join(split['val_classes']) or 'none'}; checked, no problems",
        soft_wrap=True, markup=False)


@app.command()
def valsplit(
    split_file: Annotated[Path, typer.Argument(
        help="xlsa17 att_splits.mat (or *_trainval_test_only.mat) lacking train_loc / "
        "val_loc.", show_default=False)],
    labels: Annotated[Path, typer.Argument(
        help="res101.mat of the same dataset (its 'labels'), or a .npy of 1-based labels.",
        show_default=False)],
    out: Annotated[Path, typer.Argument(help="The new .mat file to write.",
                                        show_default=False)],
    train_classes: Annotated[Path | None, typer.Option(
        "--train-classes", help="Default: trainclasses1.txt beside SPLIT_FILE or in its "
        "classlists/ folder.")] = None,
    val_classes: Annotated[Path | None, typer.Option(
        "--val-classes", help="Default: valclasses1.txt, found as --train-classes is.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists.")] = False,
) -> None:
    """Rebuild xlsa17's validation split (train_loc, val_loc) from its class lists.

    Writes a copy of SPLIT_FILE with train_loc (every seen image of the train classes) and
    val_loc (of the validation classes) added, as in the official files; SPLIT_FILE is
    only read. Example: gzsl data valsplit CUB/att_splits_trainval_test_only.mat
    CUB/res101.mat CUB/att_splits.mat
    """
    import numpy as np

    from gzsl.data.io import read_mat
    from gzsl.data.make import read_names, rebuild_validation_split

    if out.exists() and not force:
        raise GZSLError(f"{out} exists; pass --force to replace it")

    def find(given: Path | None, file_name: str) -> Path:
        if given is not None:
            return given
        for folder in (split_file.parent, split_file.parent / "classlists"):
            if (folder / file_name).is_file():
                return folder / file_name
        raise GZSLError(f"{file_name} not found beside {split_file} or in its classlists/ "
                        f"folder. Fix: pass --{file_name[:-12]}-classes FILE")

    if labels.suffix.lower() == ".npy":
        values = np.load(labels, allow_pickle=False)
    else:
        stored = read_mat(labels, ["labels"])
        if "labels" not in stored:
            raise GZSLError(f"{labels} has no 'labels'. Fix: pass res101.mat of the dataset")
        values = stored["labels"]
    counts = rebuild_validation_split(split_file, values,
                                      read_names(find(train_classes, "trainclasses1.txt")),
                                      read_names(find(val_classes, "valclasses1.txt")), out)
    _console().print(f"wrote {out}: train_loc {counts['train_loc']} images, val_loc "
                     f"{counts['val_loc']} images", soft_wrap=True)


def _store_folder(path: str, dataset: str | None) -> Path | None:
    """The feature store ``check`` should read: PATH itself, or (``--dataset
    IMAGENET-...``) the store in PATH; None for the other layouts."""
    from gzsl.data.imagenet import locate_store, split_of
    from gzsl.data.store import is_store

    if split_of(dataset) is not None:
        return locate_store(str(dataset), path)
    return Path(path) if Path(path).is_dir() and is_store(path) else None


class RowProgress:
    """A line on stderr every tenth of a long pass or every ``seconds``: rows done."""

    def __init__(self, what: str, seconds: float = 30.0) -> None:
        import time

        self.what, self.seconds, self._clock = what, seconds, time.monotonic
        self._last_time, self._last_tenth = self._clock(), 0

    def __call__(self, done: int, total: int) -> None:
        tenth = 10 * done // max(total, 1)
        now = self._clock()
        if done < total and tenth == self._last_tenth and now - self._last_time < self.seconds:
            return
        self._last_time, self._last_tenth = now, tenth
        Console(stderr=True, highlight=False).print(
            f"{self.what}: {done:,} / {total:,} rows ({100 * done // max(total, 1)}%)")


def store_report(store: Any, problems: list[Problem]) -> Table:
    """What a user checks first of a feature store: SYNTHETIC or not, shapes, splits."""
    from gzsl.data.store import summary

    info = summary(store)
    table = Table(title=f"feature store {info['name']}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    table.add_row("layout", f"gzsl feature store ({store.root})")
    table.add_row("synthetic features", "YES: SYNTHETIC, not extracted from images"
                  if info["synthetic"] else "no")
    table.add_row("classes", f"{info['classes']} ({info['seen_classes']} seen, "
                             f"{info['unseen_classes']} unseen with images)")
    table.add_row("features", f"{info['rows']:,} x {info['dim']} {info['dtype']}")
    table.add_row("semantic dim", str(info["semantic_dim"]))
    for part, count in info["images"].items():
        table.add_row(f"  {part}", f"{count:,} images")
    for split, (classes, images) in info["splits"].items():
        table.add_row(f"split {split}", f"{classes:,} unseen classes, {images:,} images")
    table.add_row("validation split", "no (the ImageNet-21K splits define none)")
    table.add_row("checksums", "not verified (see problems)" if problems else "verified")
    table.add_row("problems", str(len(problems)) if problems else "none")
    return table


def _check_store(root: Path) -> None:
    from gzsl.data.store import check_store

    store, problems = check_store(root, progress=RowProgress("checksum pass"))
    console = _console()
    console.print(store_report(store, problems))
    if problems:
        console.print(f"[bold red]{len(problems)} problem(s):[/]")
        for number, problem in enumerate(problems, start=1):
            console.print(f"{number}. {problem}", markup=False, soft_wrap=True)
        raise SystemExit(1)
    console.print("[green]no problems found[/]")


@app.command("convert-imagenet")
def convert_imagenet_command(
    source: Annotated[Path, typer.Argument(
        help="Folder holding Xian et al.'s ImageNet files: ILSVRC2012_res101_feature.mat, "
        "ImageNet_w2v.mat, ImageNet_splits.mat and res101_1crop_feature/*.bin (in it or "
        "in sub-folders).", show_default=False)],
    out: Annotated[Path, typer.Argument(help="The feature store folder to write.",
                                        show_default=False)],
    splits: Annotated[str | None, typer.Option(
        "--splits", help="Comma-separated splits whose unseen classes to convert (2H, 3H, "
        "M500, M1K, M5K, L500, L1K, L5K, ALL); default: every split in the split file.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists.")] = False,
) -> None:
    """Convert Xian et al.'s ImageNet-21K files once into a gzsl feature store.

    Streams the features in blocks into a float16 .npy matrix read a few rows at a
    time (never the whole matrix in memory), with labels, word vectors, split lists, a
    manifest and checksums beside them. Then train on IMAGENET-2H ... with --root OUT.
    Layout: docs/data-formats.md. Example: gzsl data convert-imagenet ~/downloads/xian
    ~/data/imagenet-21k --splits 2H,3H
    """
    from gzsl.data.imagenet_xian import convert_imagenet

    chosen = [s.strip().upper() for s in splits.split(",") if s.strip()] if splits else None
    written = convert_imagenet(source, out, splits=chosen, force=force,
                               progress=RowProgress("converting"))
    _print_written(written)


@app.command("make-imagenet-synthetic")
def make_imagenet_synthetic_command(
    out: Annotated[Path, typer.Argument(help="The feature store folder to write.",
                                        show_default=False)],
    seen: Annotated[int, typer.Option("--seen", min=1, help="Seen classes.")] = 1000,
    unseen: Annotated[int, typer.Option(
        "--unseen", min=1, help="Unseen classes (20345: the paper's ALL; split sizes scale "
        "with it).")] = 20345,
    dim: Annotated[int, typer.Option("--dim", min=1, help="Feature dimension.")] = 2048,
    semantic_dim: Annotated[int, typer.Option(
        "--semantic-dim", min=1, help="Semantic (word vector) dimension.")] = 500,
    train_per_class: Annotated[int, typer.Option(
        "--train-per-class", min=1, help="Training images per seen class.")] = 50,
    test_per_class: Annotated[int, typer.Option(
        "--test-per-class", min=1, help="Test images per seen class.")] = 10,
    unseen_images: Annotated[float, typer.Option(
        "--unseen-images", min=1, help="Median images per unseen class.")] = 20.0,
    popularity_spread: Annotated[float, typer.Option(
        "--popularity-spread", min=0, help="Log-normal spread of the unseen classes' image "
        "counts (0: all equal).")] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every draw.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists.")] = False,
) -> None:
    """Write an ImageNet-shaped SYNTHETIC world (features not from any image) to a store.

    1,000 seen and up to 20,345 unseen classes, a synthetic hierarchy (hops from the
    seen classes, for 2H / 3H) and popularity (for M* / L*), features from the demo's
    generator, written in blocks. Example: gzsl data make-imagenet-synthetic
    runs/imagenet-synthetic --unseen 1509 --dim 64 --semantic-dim 32
    """
    from gzsl.data.imagenet import make_synthetic_imagenet

    written = make_synthetic_imagenet(
        out, seen=seen, unseen=unseen, feature_dim=dim, semantic_dim=semantic_dim,
        train_per_class=train_per_class, test_per_class=test_per_class,
        unseen_images=unseen_images, popularity_spread=popularity_spread, seed=seed,
        force=force, progress=RowProgress("writing"))
    _print_written(written)


def _print_written(root: Path) -> None:
    from gzsl.data.store import open_store, summary

    info = summary(open_store(root))
    splits = ", ".join(f"{name} {classes}" for name, (classes, _) in info["splits"].items())
    _console().print(
        f"wrote {root}: {info['rows']:,} x {info['dim']} float16 features, "
        f"{info['seen_classes']} seen and {info['unseen_classes']} unseen classes; splits "
        f"(unseen classes): {splits}" + ("; SYNTHETIC features" if info["synthetic"] else ""),
        soft_wrap=True, markup=False)
