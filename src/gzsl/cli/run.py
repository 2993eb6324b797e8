"""``gzsl train``, ``reproduce``, ``ablate`` and ``list``: parse, call the library, print."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from gzsl.cli import app, console, err_console
from gzsl.experiments.config import SELECTIONS, list_presets, resolve
from gzsl.experiments.reproduce import (
    METRICS,
    Summary,
    ablation_overrides,
    run_seeds,
    summarise,
)
from gzsl.experiments.resume import resume_run
from gzsl.experiments.runner import RunResult, default_run_dir, run_experiment
from gzsl.experiments.tracking import tensorboard_tracker
from gzsl.methods.base import available_methods

RootOption = Annotated[Path | None, typer.Option(
    "--root", help="Folder holding the dataset's files (or a parent with DATASET/ inside); "
    "not needed for 'demo'.")]
PresetOption = Annotated[str | None, typer.Option(
    "--preset", help="Preset name of the method (default: the dataset's own preset) or a "
    ".toml path.")]
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a setting: section.key=value with section method, evaluation "
    "or data, e.g. --set method.epochs=10 --set evaluation.n_synthetic=200.")]
SelectionOption = Annotated[str, typer.Option(
    "--selection", help="val (honest default: choices made on the validation classes), "
    "final (fixed budget) or test-oracle (papers' best-on-test, for comparison only).")]
DeviceOption = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]
ResumeSeedsOption = Annotated[bool, typer.Option(
    "--resume", help="After an interruption, run the same command again with --resume: "
    "finished seeds are read back, interrupted ones continue from their last checkpoint.")]
OverwriteOption = Annotated[bool, typer.Option(
    "--overwrite", help="Write over what the output folder holds (a finished or "
    "interrupted run, or other files); without it such a folder is refused.")]


Tracker = Callable[[dict[str, Any]], None]


def _log(message: str) -> None:
    console.print(message, highlight=False)


@contextlib.contextmanager
def _on_interrupt(hint: str) -> Iterator[None]:
    """On Ctrl-C, say how to continue before the CLI reports the abort."""
    try:
        yield
    except KeyboardInterrupt:
        err_console.print(f"interrupted: {hint}", highlight=False)
        raise


def _check_selection(selection: str) -> None:
    if selection not in SELECTIONS:
        raise typer.BadParameter(f"choose one of {', '.join(SELECTIONS)}",
                                 param_hint="--selection")


def results_table(result: RunResult) -> Table:
    """U / S / H / T1 of one run, beside the published numbers when the preset has them."""
    synthetic = " (SYNTHETIC data)" if result.synthetic_data else ""
    table = Table(title=f"{result.method} on {result.dataset}{synthetic}, "
                        f"selection: {result.selection}, seed {result.seed}")
    table.add_column("")
    for metric in METRICS:
        table.add_column(metric, justify="right")
    table.add_row("this run", *(f"{getattr(result, m):.1f}" for m in METRICS))
    if result.published:
        table.add_row(f"published ({result.published.get('source', 'paper')})",
                      *(_published(result.published, m) for m in METRICS))
    return table


def summary_table(title: str, summaries: list[Summary], with_published: bool = True) -> Table:
    """Mean ± std over seeds of each summary, one row each, plus the published row."""
    table = Table(title=title)
    table.add_column("")
    table.add_column("selection")
    table.add_column("seeds", justify="right")
    for metric in METRICS:
        table.add_column(metric, justify="right")
    for summary in summaries:
        table.add_row(summary.label, summary.selection, str(len(summary.seeds)),
                      *(f"{summary.mean[m]:.1f} ± {summary.std[m]:.1f}" for m in METRICS))
    published = summaries[0].published if summaries else {}
    if with_published and published:
        table.add_row(f"published ({published.get('source', 'paper')})", "test-oracle", "",
                      *(_published(published, m) for m in METRICS))
    return table


def _published(published: dict, metric: str) -> str:
    value = published.get(metric)
    return "—" if value is None else f"{float(value):.1f}"


@app.command()
def train(
    method: Annotated[str | None, typer.Argument(
        help="Method name (see `gzsl list`); omitted with --resume.", show_default=False)] = None,
    dataset: Annotated[str | None, typer.Argument(
        help="Dataset name: demo, AWA1, AWA2, APY, CUB, SUN, FLO, or any name with --root; "
        "omitted with --resume.", show_default=False)] = None,
    root: RootOption = None,
    preset: PresetOption = None,
    set_: SetOption = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed (default 0).",
                                             show_default=False)] = None,
    device: Annotated[str | None, typer.Option(
        "--device", help="auto, cpu or cuda (default auto; with --resume, the run's own).",
        show_default=False)] = None,
    selection: Annotated[str | None, typer.Option(
        "--selection", help="val (honest default: choices made on the validation classes), "
        "final (fixed budget) or test-oracle (papers' best-on-test, for comparison only).",
        show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Run directory (default runs/METHOD-DATASET-SELECTION-seedN-TIME).")] = None,
    tensorboard: Annotated[bool, typer.Option(
        "--tensorboard", help="Also write TensorBoard event files (losses, U/S/H per "
        "checkpoint) to RUN_DIR/tensorboard; needs the tensorboard package.")] = False,
    resume: Annotated[Path | None, typer.Option(
        "--resume", metavar="RUN_DIR", help="Continue the interrupted run in RUN_DIR from its "
        "last saved checkpoint, with the run's own settings; ends with the result the "
        "uninterrupted run would have had.")] = None,
    save_every: Annotated[int, typer.Option(
        "--save-every", min=0, help="Save the state a resume needs (RUN_DIR/resume.pt) at "
        "every N-th checkpoint, 0 never; a killed run loses at most N checkpoint intervals. "
        "Removed when the run finishes.")] = 1,
    overwrite: OverwriteOption = False,
) -> None:
    """Train a generator, score it, and write a run directory with results and models."""
    if resume is not None:
        given = [name for name, value in (("METHOD", method), ("DATASET", dataset),
                                          ("--preset", preset), ("--set", set_),
                                          ("--seed", seed), ("--selection", selection),
                                          ("--out", out), ("--overwrite", overwrite or None))
                 if value not in (None, [])]
        if given:
            raise typer.BadParameter(f"{', '.join(given)} cannot be combined with --resume: a "
                                     f"resumed run keeps its own settings (RUN_DIR/config.json)",
                                     param_hint="--resume")
        out = resume

        def execute(tracker: Tracker | None) -> RunResult:
            return resume_run(resume, root=root, device=device, log=_log, tracker=tracker,
                              save_every=save_every)
    else:
        if method is None or dataset is None:
            raise typer.BadParameter("give METHOD and DATASET (or --resume RUN_DIR)",
                                     param_hint="METHOD DATASET")
        selection = selection or "val"
        seed = 0 if seed is None else seed
        _check_selection(selection)
        config = resolve(method, dataset, preset=preset, overrides=tuple(set_ or ()),
                         seed=seed, selection=selection, device=device or "auto")
        out = out or default_run_dir(config)
        _log(f"[bold]{config.method}[/] on [bold]{dataset}[/], selection [bold]{selection}[/], "
             f"seed {seed}, preset {config.preset or 'none (defaults)'}")

        def execute(tracker: Tracker | None) -> RunResult:
            return run_experiment(config, root=root, out=out, log=_log, tracker=tracker,
                                  save_every=save_every, overwrite=overwrite)

    tracker, close = tensorboard_tracker(out / "tensorboard") if tensorboard else (None, None)
    try:
        with _on_interrupt(f"continue with `gzsl train --resume {out}`"):
            result = execute(tracker)
    finally:
        if close is not None:
            close()
    console.print(results_table(result))
    _log(f"run directory: {out}")


@app.command()
def reproduce(
    method: Annotated[str, typer.Argument(help="Method name.")],
    dataset: Annotated[str, typer.Argument(help="Dataset name (its preset is used).")],
    root: RootOption = None,
    seeds: Annotated[int, typer.Option("--seeds", help="Number of seeds (0, 1, ...).")] = 3,
    preset: PresetOption = None,
    set_: SetOption = None,
    device: DeviceOption = "auto",
    selection: SelectionOption = "val",
    out: Annotated[Path | None, typer.Option("--out", help="Folder for the runs.")] = None,
    resume: ResumeSeedsOption = False,
    overwrite: OverwriteOption = False,
) -> None:
    """Run a preset over several seeds; print mean ± std beside the published numbers."""
    _check_selection(selection)
    if seeds < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--seeds")
    config = resolve(method, dataset, preset=preset, overrides=tuple(set_ or ()),
                     selection=selection, device=device)
    out = out or default_run_dir(config).with_name(
        f"reproduce-{config.method}-{dataset.lower()}-{selection}")
    with _on_interrupt("run the same command again with --resume to continue"):
        results = run_seeds(method, dataset, list(range(seeds)), root=root, preset=preset,
                            overrides=tuple(set_ or ()), selection=selection, device=device,
                            out=out, log=_log, resume=resume, overwrite=overwrite)
    summary = summarise(config.method, results)
    synthetic = " (SYNTHETIC data)" if results[0].synthetic_data else ""
    console.print(summary_table(f"{config.method} on {dataset}{synthetic}: mean ± std over "
                                f"{seeds} seed(s)", [summary]))
    _log(f"runs in: {out}")


@app.command()
def ablate(
    method: Annotated[str, typer.Argument(help="Method with an ablation table (gsmflow).")],
    dataset: Annotated[str, typer.Argument(help="Dataset name.")],
    root: RootOption = None,
    seeds: Annotated[int, typer.Option("--seeds", help="Seeds per variant.")] = 1,
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="Run only these ablations (repeatable).")] = None,
    preset: PresetOption = None,
    set_: SetOption = None,
    device: DeviceOption = "auto",
    selection: SelectionOption = "val",
    out: Annotated[Path | None, typer.Option("--out", help="Folder for the runs.")] = None,
    resume: ResumeSeedsOption = False,
    overwrite: OverwriteOption = False,
) -> None:
    """Run each of a method's ablations (e.g. GSMFlow's Table 3) and print one table."""
    _check_selection(selection)
    variants = ablation_overrides(method, list(only) if only else None)
    base = out or Path("runs") / f"ablate-{method.lower()}-{dataset.lower()}-{selection}"
    summaries, synthetic = [], False
    for name, overrides in variants.items():
        _log(f"[bold]ablation:[/] {name}")
        with _on_interrupt("run the same command again with --resume to continue"):
            results = run_seeds(method, dataset, list(range(seeds)), root=root,
                                preset=preset, overrides=tuple(set_ or ()) + overrides,
                                selection=selection, device=device,
                                out=base / name.replace(" ", "-"), log=_log, resume=resume,
                                overwrite=overwrite)
        synthetic = results[0].synthetic_data
        summaries.append(summarise(name, results))
    note = " (SYNTHETIC data)" if synthetic else ""
    console.print(summary_table(f"{method} ablations on {dataset}{note}", summaries,
                                with_published=False))
    _log(f"runs in: {base}")


@app.command("list")
def list_command() -> None:
    """Show the methods, datasets and presets available."""
    methods = Table(title="methods")
    methods.add_column("name")
    methods.add_column("description")
    for name, cls in available_methods().items():
        methods.add_row(name, (cls.__doc__ or "").strip().splitlines()[0])
    console.print(methods)
    datasets = Table(title="datasets")
    datasets.add_column("name")
    datasets.add_column("where the data comes from")
    from gzsl.data.demo import EMBEDDED_DATASETS

    for name, (description, _) in EMBEDDED_DATASETS.items():
        datasets.add_row(name, description)
    for name in ("AWA1", "AWA2", "APY", "CUB", "SUN", "FLO"):
        datasets.add_row(name, "your files: --root DIR (xlsa17 res101.mat + att_splits.mat, "
                               "data.mat + label.mat, or .npz)")
    console.print(datasets)
    presets = Table(title="presets")
    for column in ("method", "preset", "dataset", "published H", "description"):
        presets.add_column(column)
    for preset in list_presets():
        h = preset.published.get("H")
        presets.add_row(preset.method, preset.name, preset.dataset,
                        "—" if h is None else f"{h:.1f}", preset.description)
    console.print(presets)
