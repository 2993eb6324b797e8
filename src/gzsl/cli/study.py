"""``gzsl study run``, ``report``, ``plot`` and ``list``: hyperparameter studies on Optuna."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    name="study",
    help="Hyperparameter studies on Optuna: search on validation H, many workers, one "
    "storage (docs/studies.md).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

StorageOption = Annotated[str | None, typer.Option(
    "--storage", help="Optuna storage shared by every worker: a journal file path ending in "
    ".log, or a database URL (sqlite:///study.db, postgresql://...). Default: "
    "STUDY_DIR/journal.log.")]


def _console() -> Console:
    return Console(highlight=False)


def _log(message: str) -> None:
    _console().print(message, markup=False, soft_wrap=True)


@app.command("run")
def run_command(
    study: Annotated[str, typer.Argument(
        help="A study file (.toml) or the name of a shipped study (`gzsl study list`).",
        show_default=False)],
    out: Annotated[Path | None, typer.Option(
        "--out", help="Study folder (default studies/NAME); run the same command again to "
        "continue it.")] = None,
    jobs: Annotated[int, typer.Option(
        "--jobs", min=1, help="Worker processes on this machine; each gets its share of "
        "the cores as torch threads.")] = 1,
    storage: StorageOption = None,
    root: Annotated[Path | None, typer.Option(
        "--root", help="Folder holding the dataset's files (or a .npz); not needed for "
        "'demo'.")] = None,
    device: Annotated[str, typer.Option(
        "--device", help="auto, cpu, cuda or cuda:K (one worker per GPU: one command "
        "per GPU with the same --storage).")] = "auto",
    threads: Annotated[int | None, typer.Option(
        "--threads", min=1, help="Torch threads per worker (default: this machine's cores "
        "divided by --jobs).", show_default=False)] = None,
) -> None:
    """Run a study, join it (same --storage from another machine) or continue it.

    Each trial trains one run per seed of the study under the `val` protocol, in
    STUDY_DIR/trials/trial-NNNN/seedS; its score is the mean validation H over the seeds.
    """
    from gzsl.experiments.studies import load_study
    from gzsl.experiments.studies.running import default_study_dir, run_study

    spec = load_study(study)
    folder = out or default_study_dir(spec)
    run_study(spec, folder, jobs=jobs, storage=storage, root=root, device=device,
              threads=threads, log=_log)
    _log(f"study folder: {folder}   (next: gzsl study report {folder})")


@app.command("report")
def report_command(
    study_dir: Annotated[Path, typer.Argument(help="A study folder.", show_default=False)],
    storage: StorageOption = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Folder for trials.csv, best-preset.toml and slice.png (default "
        "STUDY_DIR/report).")] = None,
) -> None:
    """The trials table, the best setting as a preset file, and a slice / importance figure."""
    from gzsl.experiments.studies.report import report_study

    report = report_study(study_dir, storage=storage, out=out)
    spec = report.spec
    table = Table(title=f"study {spec.name}: {spec.method} on {spec.dataset}, validation H "
                        f"(mean ± std over seeds {list(spec.seeds)})")
    table.add_column("trial", justify="right")
    keys = [p.key for p in spec.space]
    for key in keys:
        table.add_column(key)
    for column in ("validation H", "state", "seconds", "note"):
        table.add_column(column)
    for row in report.rows:
        score = "" if row.mean is None else f"{row.mean:.2f} ± {row.std or 0.0:.2f}"
        best = " *" if report.best is not None and row.number == report.best.number else ""
        table.add_row(str(row.number), *(str(row.params.get(k, "")) for k in keys),
                      score + best, row.state,
                      "" if row.seconds is None else f"{row.seconds:.0f}", row.note)
    _console().print(table)
    for note in report.notes:
        _log(f"note: {note}")
    for path in report.files:
        _log(f"wrote {path}")
    if report.best is not None:
        preset = (out or study_dir / "report") / "best-preset.toml"
        _log(f"best: trial {report.best.number} (*). Its test numbers come only from a "
             f"separate run: gzsl reproduce {spec.method} {spec.dataset} --preset {preset}")


@app.command("plot")
def plot_command(
    study_dirs: Annotated[list[Path], typer.Argument(
        help="Study folders of one parameter (e.g. one per dataset); one line each.",
        show_default=False)],
    out: Annotated[Path, typer.Option(
        "--out", help="Output path without suffix: OUT.png and OUT.csv.")] = Path(
        "sensitivity"),
    param: Annotated[str | None, typer.Option(
        "--param", help="The parameter on the x axis (needed when a study searches "
        "several).", show_default=False)] = None,
    storage: StorageOption = None,
) -> None:
    """A sensitivity figure as in the papers: validation H, and the TEST H and T1 of the
    same runs (labelled; never used to choose), against the parameter, mean ± std band
    over seeds."""
    from gzsl.experiments.studies.report import plot_sensitivity

    for path in plot_sensitivity(list(study_dirs), out, param=param, storage=storage):
        _log(f"wrote {path}")


@app.command("list")
def list_command() -> None:
    """The study files shipped with gzsl."""
    from gzsl.experiments.studies import list_studies, load_study

    table = Table(title="studies (gzsl study run NAME; descriptions in docs/studies.md)")
    table.add_column("name", no_wrap=True)
    for column in ("dataset", "trials x seeds", "searches"):
        table.add_column(column)
    for path in list_studies():
        spec = load_study(path)
        table.add_row(spec.name, spec.dataset, f"{spec.n_trials} x {len(spec.seeds)}",
                      "; ".join(f"{p.key}: {p.describe()}" for p in spec.space))
    _console().print(table)
