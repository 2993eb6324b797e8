"""``gzsl predict``, ``plot``, ``compare`` and ``retrieve``: use, draw, compare, retrieve."""

from __future__ import annotations

import collections
import csv
import io
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gzsl.cli import app, console, err_console
from gzsl.data.errors import GZSLError

RunDirArgument = Annotated[Path, typer.Argument(
    help="A run directory written by `gzsl train` (holds results.json, classifier.pt, "
    "generator.pt).", show_default=False)]


def _log(message: str) -> None:
    err_console.print(message, highlight=False, soft_wrap=True)


def prediction_csv(names: list[list[str]], probabilities: list[list[float]],
                   paths: list[str] | None = None) -> str:
    """CSV text: ``index`` (or ``path`` when ``paths`` are given), ``predicted``,
    ``probability``, then ``top{i}_class, top{i}_probability``."""
    k = len(names[0]) if names else 1
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["index" if paths is None else "path", "predicted", "probability",
                     *(f"top{i}_{what}" for i in range(1, k + 1)
                       for what in ("class", "probability"))])
    for index, (row_names, row_probabilities) in enumerate(zip(names, probabilities,
                                                               strict=True)):
        pairs = [value for pair in zip(row_names, row_probabilities, strict=True)
                 for value in (pair[0], f"{pair[1]:.6g}")]
        writer.writerow([index if paths is None else paths[index], row_names[0],
                         f"{row_probabilities[0]:.6g}", *pairs])
    return buffer.getvalue()

RunRootOption = Annotated[Path | None, typer.Option(
    "--root", help="Dataset folder when the run's metadata.json does not record it (or it "
    "moved); not needed for 'demo'.")]

@app.command()
def predict(
    run_dir: RunDirArgument,
    inputs: Annotated[list[str], typer.Argument(
        help="Either ONE feature file (.npy, .npz or .mat holding an (N, D) matrix of raw "
        "features; D x N is accepted when unambiguous), or images: files, folders, quoted "
        "glob patterns. Anything not ending in .npy / .npz / .mat is taken for an image.",
        show_default=False)],
    key: Annotated[str | None, typer.Option(
        "--key", help="Array to read from a .npz / .mat file holding more than one.")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="CSV file to write (default: CSV on standard output).")] = None,
    top: Annotated[int, typer.Option(
        "--top", min=1, help="Also list the K most probable classes of each row.")] = 3,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
    batch_size: Annotated[int, typer.Option(
        "--batch-size", min=1, help="Images: how many go through the backbone at once.")] = 32,
) -> None:
    """Classify new features, or new images, with a trained run.

    Feature files go through the run's preprocessing and classifier. Images are first
    embedded with the backbone and transform recorded in the run's dataset (made by gzsl
    features extract + gzsl data make). Writes one CSV row per input row (index) or image
    (path): predicted class, its probability, and the top-K classes with their
    probabilities; unreadable images are listed on standard error. Examples: gzsl predict
    runs/demo feats.npy --out predictions.csv --top 5 ; gzsl predict runs/mine photos/
    'more/*.jpg' --out predictions.csv
    """
    from gzsl.experiments.runner import resolve_device
    from gzsl.experiments.trained import FEATURE_SUFFIXES, load_run, read_features

    feature_files = [i for i in inputs if Path(i).suffix.lower() in FEATURE_SUFFIXES]
    if feature_files and len(inputs) > 1:
        raise GZSLError("pass either one feature file (.npy, .npz, .mat) or images, not "
                        f"both or several feature files (got {', '.join(inputs[:4])})")
    run = load_run(run_dir, resolve_device(device))
    paths = None
    if feature_files:
        matrix = read_features(Path(feature_files[0]), key)
        names, probabilities = run.top_k(matrix, top)
    else:
        from gzsl.features.predict import expand_inputs, predict_images

        files, names, probabilities, problems = predict_images(
            run, expand_inputs(inputs), top=top, device=str(run.device),
            batch_size=batch_size, progress=True)
        paths = [str(p) for p in files]
        for file, reason in problems:
            _log(f"skipped {file}: {reason}")
        if not paths:
            raise GZSLError(f"none of the {len(problems)} file(s) could be read as an image")
    text = prediction_csv(names.tolist(), probabilities.tolist(), paths)
    if out is None:
        sys.stdout.write(text)
    else:
        from gzsl.experiments.compare import write_text

        write_text(out, text)
        counts = collections.Counter(names[:, 0].tolist()).most_common(5)
        shown = ", ".join(f"{name} ({count})" for name, count in counts)
        synthetic = " [run trained on SYNTHETIC data]" if run.synthetic_data else ""
        console.print(f"wrote {out}: {len(names)} rows; most predicted: {shown}{synthetic}",
                      highlight=False, soft_wrap=True)


@app.command()
def plot(
    run_dir: RunDirArgument,
    root: RunRootOption = None,
    max_classes: Annotated[int, typer.Option(
        "--max-classes", min=1, help="At most this many unseen classes in the t-SNE plot.")] = 15,
    per_class: Annotated[int, typer.Option(
        "--per-class", min=1, help="t-SNE: at most this many real and this many synthetic "
        "features per class.")] = 100,
    seed: Annotated[int, typer.Option("--seed", help="Seed of subsampling, synthesis and "
                                      "t-SNE.")] = 0,
) -> None:
    """Draw a run's t-SNE, confusion matrix, training curves and per-class accuracy.

    Each PNG goes to RUN_DIR/plots/ beside a CSV of the data it shows; a plot whose input
    is missing is skipped with a message. Example: gzsl plot runs/demo
    """
    from gzsl.experiments.plots import plot_run

    report = plot_run(run_dir, root=root, max_classes=max_classes, max_per_class=per_class,
                      seed=seed, log=_log)
    if not report.written:
        raise GZSLError(f"no plot could be drawn for {run_dir}: "
                        + "; ".join(f"{k}: {v}" for k, v in report.skipped.items()))
    console.print(f"{len(report.written)} plot(s) in {report.directory}"
                  + (f"; skipped: {', '.join(report.skipped)}" if report.skipped else ""),
                  highlight=False, soft_wrap=True)


def comparison_table(rows: list[dict], title: str) -> Table:
    """The rows of :func:`gzsl.experiments.compare.table_rows` as a rich table."""
    from gzsl.experiments.compare import format_metric
    from gzsl.experiments.reproduce import METRICS

    sources = [f"{row['method']} on {row['dataset']}: {row['source']}" for row in rows
               if row["kind"] == "published"]
    table = Table(title=title, caption="published: " + "; ".join(sources) if sources else None)
    with_variant = any(row["variant"] for row in rows)
    for column in ("method", "dataset", "selection"):
        table.add_column(column, overflow="fold", min_width=7)
    if with_variant:
        table.add_column("variant", overflow="fold", min_width=8)
    table.add_column("runs (seeds)", overflow="fold", min_width=7)
    for metric in METRICS:
        table.add_column(metric, justify="right", min_width=6)
    for row in rows:
        dataset = f"{row['dataset']} (SYNTHETIC)" if row["synthetic_data"] else row["dataset"]
        runs = ("published" if row["kind"] == "published"
                else f"{row['runs']} ({row['seeds']})")
        table.add_row(row["method"], dataset, row["selection"],
                      *([row["variant"]] if with_variant else []), runs,
                      *(format_metric(row[f"{m}_mean"], row[f"{m}_std"]) for m in METRICS),
                      style="dim" if row["kind"] == "published" else None)
    return table


@app.command()
def compare(
    paths: Annotated[list[Path], typer.Argument(
        help="Run directories, or folders searched recursively for results.json.",
        show_default=False)],
    published: Annotated[bool, typer.Option(
        "--published", help="Add the published numbers of each method and dataset (from "
        "the preset, recorded in results.json).")] = False,
    csv_path: Annotated[Path | None, typer.Option(
        "--csv", help="Also write the table as CSV (means and stds in columns).")] = None,
    markdown: Annotated[Path | None, typer.Option(
        "--markdown", help="Also write the table as Markdown.")] = None,
) -> None:
    """Compare runs: mean ± std over seeds by method, dataset and selection protocol.

    Selection protocols are never pooled; runs whose settings differ are separate
    variants. Example: gzsl compare runs/ --published --markdown results.md
    """
    from gzsl.experiments.compare import (
        compare_runs,
        find_results,
        find_unfinished,
        read_run,
        table_rows,
        to_csv,
        to_markdown,
        write_text,
    )

    files = find_results(paths)
    unfinished = find_unfinished(paths)
    if unfinished:
        _log(f"note: {len(unfinished)} unfinished run(s) left out (interrupted or still "
             f"running; continue one with `gzsl train --resume DIR`): "
             f"{', '.join(map(str, unfinished))}")
    if not files:
        raise GZSLError(f"no results.json found under {', '.join(map(str, paths))}. Fix: pass "
                        "run directories written by `gzsl train` (or folders holding them)")
    groups = compare_runs(read_run(path) for path in files)
    rows = table_rows(groups, published=published)
    console.print(comparison_table(rows, f"{len(files)} run(s): mean ± std over seeds"))
    for group in groups:
        if group.duplicate_seeds:
            _log(f"note: {group.method} on {group.dataset} ({group.selection}"
                 f"{', ' + group.variant if group.variant else ''}) holds several runs with "
                 f"the same seed (seeds {' '.join(map(str, group.seeds))}): copies of one run?")
    oracle = any(group.selection == "test-oracle" for group in groups)
    papers = any(row["kind"] == "published" for row in rows)
    if oracle or papers:
        which = " and ".join(name for name, shown in (("test-oracle runs", oracle),
                                                       ("published numbers", papers)) if shown)
        _log(f"note: {which} chose checkpoints on the test set; compare them with each "
             "other, not with val.")
    if csv_path is not None:
        write_text(csv_path, to_csv(groups, published=published))
        _log(f"wrote {csv_path}")
    if markdown is not None:
        write_text(markdown, to_markdown(groups, published=published))
        _log(f"wrote {markdown}")


@app.command()
def retrieve(
    run_dir: RunDirArgument,
    root: RunRootOption = None,
    n: Annotated[int, typer.Option(
        "--n", min=1, help="Synthetic features averaged into each class's query.")] = 100,
    k: Annotated[list[int] | None, typer.Option(
        "--k", min=1, help="Cut-off of precision@k; repeat for several (default: 5 and 10).",
        show_default=False)] = None,
    metric: Annotated[str, typer.Option(
        "--metric", help="euclidean (nearest images) or cosine (most similar).")] = "euclidean",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthesis.")] = 0,
) -> None:
    """Zero-shot image retrieval (AMAZ, Sec. III-D) with a run's generator.

    Each unseen class's query is the mean of N synthetic features; the real test images of
    the unseen classes are ranked by distance to it. Prints mean precision@k over the
    unseen classes and a per-class table, and writes RUN_DIR/retrieval.json. Works for any
    method's run. Example: gzsl retrieve runs/demo --k 5 --k 10 --metric cosine
    """
    from gzsl.experiments.rundir import RunDir

    if metric not in ("euclidean", "cosine"):
        raise typer.BadParameter("choose euclidean or cosine", param_hint="--metric")
    ks = tuple(sorted(set(k or (5, 10))))
    from gzsl.experiments.retrieve import retrieval_report

    report = retrieval_report(run_dir, root=root, n=n, ks=ks, metric=metric, seed=seed)
    RunDir(run_dir).write_json("retrieval.json", report)
    synthetic = " (SYNTHETIC data)" if report["synthetic_data"] else ""
    table = Table(title=f"{report['method']} on {report['dataset']}{synthetic}: zero-shot "
                  f"retrieval, query = mean of {n} synthetic features, {metric} distance",
                  caption=f"gallery: {report['gallery_images']} real unseen test images")
    table.add_column("class", overflow="fold")
    table.add_column("images", justify="right")
    for cutoff in ks:
        table.add_column(f"P@{cutoff}", justify="right")
    for name, row in report["per_class"].items():
        table.add_row(name, str(row["gallery_images"]),
                      *(f"{row[f'precision@{c}']:.1f}" for c in ks))
    table.add_row("mean", "", *(f"{report['mean'][f'precision@{c}']:.1f}" for c in ks),
                  style="bold")
    console.print(table)
    console.print(f"wrote {run_dir / 'retrieval.json'}", highlight=False, soft_wrap=True)
