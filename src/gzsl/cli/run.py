"""``gzsl train``, ``reproduce``, ``ablate`` and ``list``: parse, call the library, print."""

from __future__ import annotations

import contextlib
import re
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from gzsl import threads as cpu_threads
from gzsl.cli import app, console, err_console
from gzsl.data.errors import GZSLError
from gzsl.utils import did_you_mean

if TYPE_CHECKING:  # the commands import the library when they run: --help stays quick
    from gzsl.experiments.reproduce import Summary
    from gzsl.experiments.runner import RunResult

RootOption = Annotated[Path | None, typer.Option(
    "--root", metavar="DIR",
    help="Folder holding the dataset's files (or a parent with DATASET/ inside); "
    "not needed for 'demo'.")]
PresetOption = Annotated[str | None, typer.Option(
    "--preset", metavar="NAME",
    help="Preset name of the method (default: the dataset's own preset) or a "
    ".toml path.")]
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", metavar="SECTION.KEY=VALUE",
    help="Override a setting: section.key=value with section method, evaluation "
    "or data, e.g. --set method.epochs=10 --set evaluation.n_synthetic=200.")]
SelectionOption = Annotated[str | None, typer.Option(
    "--selection", metavar="[val|final|test-oracle]",
    help="val (honest default: choices made on the validation classes), "
    "final (fixed budget; the default of presets for data without validation classes, "
    "ImageNet-21K) or test-oracle (papers' best-on-test, for comparison only).",
    show_default=False)]
DeviceOption = Annotated[str, typer.Option(
    "--device", metavar="[auto|cpu|cuda]", help="auto, cpu or cuda.")]
ResumeSeedsOption = Annotated[bool, typer.Option(
    "--resume", help="After an interruption, run the same command again with --resume: "
    "finished seeds are read back, interrupted ones continue from their last checkpoint.")]
ThreadsOption = Annotated[int | None, typer.Option(
    "--threads", min=1, metavar="N", show_default=False,
    help="CPU threads for PyTorch (default: OMP_NUM_THREADS if set, else the CPUs a "
    "scheduler grants — affinity, cgroup quota, SLURM_CPUS_PER_TASK — else the idle cores). "
    "A run-time option: recorded in metadata.json, not part of the configuration.")]
OverwriteOption = Annotated[bool, typer.Option(
    "--overwrite", help="Write over what the output folder holds (a finished or "
    "interrupted run, or other files); without it such a folder is refused.")]


Tracker = Callable[[dict[str, Any]], None]


def _log(message: str) -> None:
    console.print(message, highlight=False)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _on_interrupt(hint: str) -> Iterator[None]:
    """Run the block with progress lines in logs; on Ctrl-C or SIGTERM (what a scheduler
    sends before it kills a job), say how to continue before the CLI reports the abort.

    Stopping anywhere is safe: the resume state is written atomically at checkpoints.
    """
    from gzsl.experiments import progress

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if main_thread else None
    try:
        with progress.reporting(progress.for_stderr()):
            yield
    except KeyboardInterrupt:
        err_console.print(f"interrupted: {hint}", highlight=False, soft_wrap=True)
        raise
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def _use_threads(requested: int | None) -> None:
    """Set PyTorch's thread count (see :mod:`gzsl.threads`) and say what was chosen."""
    choice = cpu_threads.apply_threads(requested)
    _log(f"CPU threads: {choice.threads} ({choice.reason})")


#: Dataset names the CLI knows without files (demo) or by their benchmark's name.
KNOWN_DATASETS = ("demo", "demo-awa2", "AWA1", "AWA2", "APY", "CUB", "SUN", "FLO")


def _check_dataset(dataset: str, root: Path | None) -> None:
    """A dataset not embedded (demo, demo-awa2) needs --root; a near-miss of a known name
    is named."""
    from gzsl.data.demo import embedded_name

    if root is None and embedded_name(dataset) is None:
        hint = did_you_mean(dataset, KNOWN_DATASETS)
        if hint:
            raise GZSLError(f"dataset {dataset!r} is not built in and no --root was given."
                            f"{hint} Otherwise pass --root DIR with its files")


def _check_selection(selection: str | None) -> None:
    from gzsl.experiments.config import SELECTIONS

    if selection is not None and selection not in SELECTIONS:
        raise typer.BadParameter(f"choose one of {', '.join(SELECTIONS)}",
                                 param_hint="--selection")


def results_table(result: RunResult) -> Table:
    """U / S / H / T1 of one run, beside the published numbers when the preset has them."""
    from gzsl.experiments.reproduce import METRICS

    synthetic = " (SYNTHETIC data)" if result.synthetic_data else ""
    table = Table(title=f"{result.method} on {result.dataset}{synthetic}, "
                        f"selection: {result.selection}, seed {result.seed}")
    table.add_column("")
    for metric in METRICS:
        table.add_column(metric, justify="right")
    table.add_row("this run", *(f"{getattr(result, m):.1f}" for m in METRICS))
    if result.published:
        table.add_row("published", *(_published(result.published, m) for m in METRICS))
        table.caption = _source(result.published)
    return table


def summary_table(title: str, summaries: list[Summary], with_published: bool = True) -> Table:
    """Mean ± std over seeds of each summary, one row each, plus the published row
    (a single seed's mean alone: it has no spread)."""
    from gzsl.experiments.reproduce import METRICS

    table = Table(title=title)
    table.add_column("")
    table.add_column("selection")
    table.add_column("seeds", justify="right")
    for metric in METRICS:
        table.add_column(metric, justify="right")
    for summary in summaries:
        table.add_row(summary.label, summary.selection, str(len(summary.seeds)),
                      *(f"{summary.mean[m]:.1f}" if len(summary.seeds) == 1
                        else f"{summary.mean[m]:.1f} ± {summary.std[m]:.1f}" for m in METRICS))
    published = summaries[0].published if summaries else {}
    if with_published and published:
        table.add_row("published", str(published.get("selection", "not stated")), "",
                      *(_published(published, m) for m in METRICS))
        table.caption = _source(published)
    return table


def _source(published: dict) -> str:
    """The caption under a table with a published row: where the numbers come from (a
    long text, which squeezed the table's columns as the row's label)."""
    return f"published: {published.get('source', 'the paper')}"


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
    seed: Annotated[int | None, typer.Option("--seed", metavar="N",
                                             help="Random seed (default 0).",
                                             show_default=False)] = None,
    device: Annotated[str | None, typer.Option(
        "--device", metavar="[auto|cpu|cuda]",
        help="auto, cpu or cuda (default auto; with --resume, the run's own).",
        show_default=False)] = None,
    selection: Annotated[str | None, typer.Option(
        "--selection", metavar="[val|final|test-oracle]",
        help="val (honest default: choices made on the validation classes), "
        "final (fixed budget; the default of presets for data without validation classes, "
        "ImageNet-21K) or test-oracle (papers' best-on-test, for comparison only).",
        show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", metavar="DIR",
        help="Run directory (default runs/METHOD-DATASET-SELECTION-seedN-TIME).")] = None,
    tensorboard: Annotated[bool, typer.Option(
        "--tensorboard", help="Also write TensorBoard event files (losses, U/S/H per "
        "checkpoint) to RUN_DIR/tensorboard; needs the tensorboard package.")] = False,
    mlflow: Annotated[bool, typer.Option(
        "--mlflow", help="Also log the run's settings and its losses and U/S/H per checkpoint "
        "to MLflow: the server in MLFLOW_TRACKING_URI, else a local store in ./mlruns; needs "
        "the mlflow package.")] = False,
    resume: Annotated[Path | None, typer.Option(
        "--resume", metavar="RUN_DIR", help="Continue the interrupted run in RUN_DIR from its "
        "last saved checkpoint, with the run's own settings; ends with the result the "
        "uninterrupted run would have had.")] = None,
    threads: ThreadsOption = None,
    save_every: Annotated[int, typer.Option(
        "--save-every", min=0, metavar="N",
        help="Save the state a resume needs (RUN_DIR/resume.pt) at "
        "every N-th checkpoint, 0 never; a killed run loses at most N checkpoint intervals. "
        "Removed when the run finishes.")] = 1,
    overwrite: OverwriteOption = False,
) -> None:
    """Train a generator, score it, and write a run directory with results and models."""
    from gzsl.experiments.config import flat_settings, resolve
    from gzsl.experiments.resume import resume_run
    from gzsl.experiments.runner import default_run_dir, run_experiment
    from gzsl.experiments.tracking import mlflow_tracker, tensorboard_tracker

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
        _use_threads(threads)

        def execute(tracker: Tracker | None) -> RunResult:
            return resume_run(resume, root=root, device=device, log=_log, tracker=tracker,
                              save_every=save_every)
    else:
        if method is None or dataset is None:
            raise typer.BadParameter("give METHOD and DATASET (or --resume RUN_DIR)",
                                     param_hint="METHOD DATASET")
        seed = 0 if seed is None else seed
        _check_selection(selection)
        _check_dataset(dataset, root)
        config = resolve(method, dataset, preset=preset, overrides=tuple(set_ or ()),
                         seed=seed, selection=selection, device=device or "auto")
        selection = config.selection
        out = out or default_run_dir(config)
        _use_threads(threads)
        _log(f"[bold]{config.method}[/] on [bold]{dataset}[/], selection [bold]{selection}[/], "
             f"seed {seed}, preset {config.preset or 'none (defaults)'}")

        def execute(tracker: Tracker | None) -> RunResult:
            return run_experiment(config, root=root, out=out, log=_log, tracker=tracker,
                                  save_every=save_every, overwrite=overwrite)

    trackers: list[tuple[Tracker, Callable[[], None]]] = []
    try:
        if tensorboard:
            trackers.append(tensorboard_tracker(out / "tensorboard"))
        if mlflow:
            settings = {} if resume is not None else {
                "method": config.method, "dataset": config.dataset, "seed": config.seed,
                "selection": config.selection, **flat_settings(config.to_dict())}
            trackers.append(mlflow_tracker(Path(out).name, params=settings))

        def tracker(row: dict[str, Any]) -> None:
            for track, _ in trackers:
                track(row)

        with _on_interrupt(f"continue with `gzsl train --resume {out}`"):
            result = execute(tracker if trackers else None)
    finally:
        for _, close in trackers:
            close()
    console.print(results_table(result))
    _log(f"run directory: {out}")


@app.command()
def reproduce(
    method: Annotated[str, typer.Argument(help="Method name.")],
    dataset: Annotated[str, typer.Argument(help="Dataset name (its preset is used).")],
    root: RootOption = None,
    seeds: Annotated[int, typer.Option("--seeds", metavar="N",
    help="Number of seeds (0, 1, ...).")] = 3,
    preset: PresetOption = None,
    set_: SetOption = None,
    device: DeviceOption = "auto",
    selection: SelectionOption = None,
    out: Annotated[Path | None, typer.Option(
        "--out", metavar="DIR", help="Folder for the runs.")] = None,
    resume: ResumeSeedsOption = False,
    threads: ThreadsOption = None,
    overwrite: OverwriteOption = False,
    jobs: Annotated[int, typer.Option(
        "--jobs", min=1, help="Run the seeds in N worker processes, each with its share of "
        "the cores as torch threads; results equal a sequential run.")] = 1,
) -> None:
    """Run a preset over several seeds; print mean ± std beside the published numbers."""
    from gzsl.experiments.config import resolve
    from gzsl.experiments.reproduce import run_seeds, summarise
    from gzsl.experiments.runner import default_run_dir

    _check_selection(selection)
    _check_dataset(dataset, root)
    if seeds < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--seeds")
    config = resolve(method, dataset, preset=preset, overrides=tuple(set_ or ()),
                     selection=selection, device=device)
    selection = config.selection
    out = out or default_run_dir(config).with_name(
        f"reproduce-{config.method}-{dataset.lower()}-{selection}")
    _use_threads(threads)
    with _on_interrupt("run the same command again with --resume to continue"):
        results = run_seeds(method, dataset, list(range(seeds)), root=root, preset=preset,
                            overrides=tuple(set_ or ()), selection=selection, device=device,
                            out=out, log=_log, resume=resume, overwrite=overwrite,
                            jobs=jobs)
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
    seeds: Annotated[int, typer.Option("--seeds", metavar="N", help="Seeds per variant.")] = 1,
    only: Annotated[list[str] | None, typer.Option(
        "--only", metavar="NAME", help="Run only these ablations (repeatable).")] = None,
    preset: PresetOption = None,
    set_: SetOption = None,
    device: DeviceOption = "auto",
    selection: SelectionOption = None,
    out: Annotated[Path | None, typer.Option(
        "--out", metavar="DIR", help="Folder for the runs.")] = None,
    resume: ResumeSeedsOption = False,
    threads: ThreadsOption = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Run each of a method's ablations (e.g. GSMFlow's Table 3) and print one table."""
    from gzsl.experiments.config import resolve
    from gzsl.experiments.reproduce import ablation_overrides, run_seeds, summarise

    _check_selection(selection)
    _check_dataset(dataset, root)
    variants = ablation_overrides(method, list(only) if only else None)
    selection = resolve(method, dataset, preset=preset, overrides=tuple(set_ or ()),
                        selection=selection).selection
    base = out or Path("runs") / f"ablate-{method.lower()}-{dataset.lower()}-{selection}"
    _use_threads(threads)
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


def plain(text: str) -> str:
    """Docstring text as users read it: no ``literal`` markup, no pointer to source."""
    text = re.sub(r"``(.*?)``", r"\1", " ".join(text.split()))
    return re.sub(r"[;,]? see the module docstring\.?", ".", text).replace("..", ".")


def first_clause(text: str) -> str:
    """``text`` up to its first full stop, colon, semicolon or parenthesis: one line."""
    return re.split(r"\. |: |; | \(", plain(text), maxsplit=1)[0].rstrip(".")


@app.command("list")
def list_command(
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Show each preset's whole description.")] = False,
) -> None:
    """Show the methods, datasets and presets available, one line each."""
    from gzsl.experiments.config import list_presets
    from gzsl.methods.base import available_methods

    methods = Table(title="methods")
    methods.add_column("name")
    methods.add_column("description")
    for name, cls in available_methods().items():
        methods.add_row(name, plain((cls.__doc__ or "").strip().splitlines()[0]))
    console.print(methods)
    datasets = Table(title="datasets")
    datasets.add_column("name")
    datasets.add_column("where the data comes from")
    from gzsl.data.demo import EMBEDDED_DATASETS
    from gzsl.data.loaders import KNOWN_DATASETS as BENCHMARKS

    for name, (description, _) in EMBEDDED_DATASETS.items():
        datasets.add_row(name, description)
    for name in BENCHMARKS:
        datasets.add_row(name, "your files: --root DIR (xlsa17 res101.mat + att_splits.mat, "
                               "data.mat + label.mat, or .npz)")
    from gzsl.data.imagenet import split_definitions

    for split in split_definitions().values():
        datasets.add_row(split.dataset, f"ImageNet-21K, {split.paper} ({split.size:,} unseen "
                         "classes): a feature store as --root DIR (gzsl data convert-imagenet, "
                         "or make-imagenet-synthetic: SYNTHETIC)")
    console.print(datasets)
    presets = Table(title="presets" + ("" if verbose else " (whole descriptions: --verbose)"))
    for column in ("method", "preset", "dataset", "settings", "published H", "description"):
        presets.add_column(column)
    for preset in list_presets():
        h = preset.published.get("H")
        presets.add_row(preset.method, preset.name, preset.dataset, preset.settings,
                        "—" if h is None else f"{h:.1f}",
                        plain(preset.description) if verbose
                        else first_clause(preset.description))
    console.print(presets)
