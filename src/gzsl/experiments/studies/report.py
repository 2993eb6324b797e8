"""What a study found: the trials table, the best setting as a preset, and figures.

Everything here is chosen on validation numbers. Test numbers appear only in sensitivity
plots (:func:`plot_sensitivity`), beside the validation ones and labelled TEST; the best
setting's honest test numbers come from a separate ``gzsl reproduce`` of its preset.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gzsl.data.errors import GZSLError
from gzsl.experiments.rundir import RunDir
from gzsl.experiments.studies.definition import StudySpec
from gzsl.experiments.studies.running import open_storage, read_study_dir
from gzsl.utils import atomic_write

REPORT = "report"
BEST_PRESET = "best-preset.toml"


@dataclass(frozen=True)
class TrialRow:
    """One trial as the report shows it (surplus trials are left out)."""

    number: int
    state: str
    params: dict[str, Any]
    seeds: tuple[float, ...]
    mean: float | None
    std: float | None
    seconds: float | None
    note: str = ""
    folder: str | None = None


@dataclass
class StudyReport:
    spec: StudySpec
    rows: list[TrialRow]
    best: TrialRow | None
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def load_trials(study_dir: str | Path, storage: str | None = None
                ) -> tuple[StudySpec, list[Any]]:
    """The study file of ``study_dir`` and its Optuna trials (read-only)."""
    import optuna

    study_dir = Path(study_dir)
    spec, recorded = read_study_dir(study_dir)
    url = storage or recorded
    try:
        study = optuna.load_study(study_name=spec.name,
                                  storage=open_storage(study_dir, url, spec.heartbeat_seconds))
    except KeyError as error:
        raise GZSLError(f"the storage of {study_dir} holds no study {spec.name}; nothing has "
                        "run yet (or pass the --storage the study ran with)") from error
    return spec, study.get_trials(deepcopy=False)


def trial_rows(trials: list[Any]) -> list[TrialRow]:
    """The trials table: parameters, validation H mean ± std over seeds, state, time."""
    retried = {number for trial in trials
               for number in trial.system_attrs.get("retry_history", ())}
    rows = []
    for trial in trials:
        attrs = trial.user_attrs
        if attrs.get("surplus"):
            continue
        seeds = tuple(attrs.get("validation_H", ()))
        notes = []
        if "failed_trial" in trial.system_attrs:
            notes.append(f"retry of trial {trial.system_attrs['failed_trial']}")
        if trial.state.name == "PRUNED" and attrs.get("pruned_at"):
            at = attrs["pruned_at"]
            notes.append(f"pruned at seed {at['seed']}, iteration {at['iteration']} "
                         f"(validation H {at['validation_H']:.2f})")
        if trial.state.name == "FAIL":
            notes.append("stopped (killed, interrupted or an error); queued again"
                         if trial.number in retried else "failed")
        seconds = None
        if trial.datetime_start and trial.datetime_complete:
            seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
        rows.append(TrialRow(
            number=trial.number, state=trial.state.name.lower(), params=dict(trial.params),
            seeds=seeds, mean=trial.value if trial.state.name == "COMPLETE" else None,
            std=attrs.get("validation_H_std"), seconds=seconds, note="; ".join(notes),
            folder=attrs.get("trial_dir")))
    return rows


def best_row(rows: list[TrialRow]) -> TrialRow | None:
    """The complete trial with the highest mean validation H (the first of ties)."""
    complete = [r for r in rows if r.state == "complete" and r.mean is not None]
    return max(complete, key=lambda r: (r.mean, -r.number)) if complete else None


def report_study(study_dir: str | Path, *, storage: str | None = None,
                 out: str | Path | None = None) -> StudyReport:
    """Write ``trials.csv``, the best setting as ``best-preset.toml`` and the slice /
    importance figure to ``out`` (default ``STUDY_DIR/report``)."""
    study_dir = Path(study_dir)
    spec, trials = load_trials(study_dir, storage)
    rows = trial_rows(trials)
    report = StudyReport(spec, rows, best_row(rows))
    out = Path(out) if out is not None else study_dir / REPORT
    keys = [p.key for p in spec.space]
    lines = [["trial", "state", *keys, "validation_H_mean", "validation_H_std",
              "validation_H_per_seed", "seconds", "note", "folder"]]
    for row in rows:
        lines.append([row.number, row.state, *(row.params.get(k, "") for k in keys),
                      "" if row.mean is None else round(row.mean, 4),
                      "" if row.std is None else round(row.std, 4),
                      " ".join(f"{v:.4f}" for v in row.seeds),
                      "" if row.seconds is None else round(row.seconds, 1), row.note,
                      row.folder or ""])
    report.files.append(_write(out / "trials.csv", _csv(lines)))
    if report.best is not None and report.best.folder:
        preset = best_preset_text(spec, study_dir / report.best.folder, report.best)
        report.files.append(_write(out / BEST_PRESET, preset.encode()))
    else:
        report.notes.append("no complete trial yet: no best setting to write")
    figure = _slice_figure(spec, rows, trials)
    if figure is not None:
        report.files.append(_write(out / "slice.png", figure))
    else:
        report.notes.append("slice / importance figure needs at least two complete trials")
    return report


def _write(path: Path, data: bytes) -> Path:
    try:
        return atomic_write(path, lambda handle: handle.write(data))
    except OSError as error:
        raise GZSLError(f"cannot write {path}: {error.strerror}. Fix: choose a writable "
                        "--out") from error


def _csv(lines: list[list[Any]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(lines)
    return buffer.getvalue().encode()


# ----------------------------------------------------------------- best preset


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else
                                                         ("inf" if value > 0 else "-inf"))
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise GZSLError(f"cannot write {value!r} into a preset")


def best_preset_text(spec: StudySpec, folder: Path, best: TrialRow) -> str:
    """A preset (``gzsl train --preset FILE``) holding every setting of the best trial,
    as its first seed's run recorded them in ``config.json``."""
    run = folder / f"seed{spec.seeds[0]}"
    config = RunDir(run).config()
    chosen = ", ".join(f"{k} = {v}" for k, v in best.params.items())
    description = (f"best of study {spec.name} by mean validation H over seeds "
                   f"{list(spec.seeds)} (trial {best.number}: {best.mean:.2f} ± "
                   f"{best.std or 0.0:.2f}; {chosen}). Its test numbers come only from "
                   f"`gzsl reproduce {spec.method} {spec.dataset} --preset FILE`")
    lines = [f"description = {_toml_value(description)}",
             f"dataset = {_toml_value(config['dataset'])}"]
    for section, table in (("data", "data"), ("method", "method_config"),
                           ("evaluation", "evaluation")):
        lines += ["", f"[{section}]"]
        for key, value in config.get(table, {}).items():
            if value is not None:
                lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------- figures


def _subplots(nrows: int, ncols: int, figsize: tuple[float, float]) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize)
    FigureCanvasAgg(figure)
    return figure, figure.subplots(nrows, ncols, squeeze=False)


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def _importances(trials: list[Any]) -> dict[str, float]:
    """Optuna's fANOVA parameter importances over the complete trials ({} if unavailable)."""
    import optuna

    complete = [t for t in trials if t.state.name == "COMPLETE"]
    if len(complete) < 2:
        return {}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    study.add_trials(complete)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    except (RuntimeError, ValueError):
        return {}


def _slice_figure(spec: StudySpec, rows: list[TrialRow], trials: list[Any]) -> bytes | None:
    """Validation H against each parameter (one panel each), and parameter importance."""
    complete = [r for r in rows if r.state == "complete" and r.mean is not None]
    if len(complete) < 2:
        return None
    importances = _importances(trials)
    n = len(spec.space) + (1 if importances else 0)
    figure, axes = _subplots(1, n, (4.2 * n, 3.4))
    for ax, param in zip(axes[0], spec.space, strict=False):
        values = [r.params.get(param.key) for r in complete]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        labels = sorted({str(v) for v in values}) if not numeric else None
        xs = values if numeric else [labels.index(str(v)) for v in values]
        ax.errorbar(xs, [r.mean for r in complete], yerr=[r.std or 0.0 for r in complete],
                    fmt="o", capsize=3, color="tab:blue")
        pruned = [r for r in rows if r.state == "pruned"]
        if pruned and numeric:
            ax.scatter([r.params.get(param.key) for r in pruned],
                       [_pruned_value(r, trials) for r in pruned], marker="x",
                       color="grey", label="pruned (last checkpoint)")
            ax.legend(fontsize=7)
        if numeric and param.log:
            ax.set_xscale("log")
        if labels is not None:
            ax.set_xticks(range(len(labels)), labels, rotation=30)
        ax.set_xlabel(param.key)
        ax.set_ylabel("validation H (%)")
        ax.grid(alpha=0.3)
    if importances:
        ax = axes[0][-1]
        names = list(importances)
        ax.barh(names, [importances[k] for k in names], color="tab:green")
        ax.set_xlabel("importance (fANOVA, validation H)")
        ax.invert_yaxis()
    figure.suptitle(f"study {spec.name}: {spec.method} on {spec.dataset}, mean ± std over "
                    f"{len(spec.seeds)} seed(s) (validation only)", fontsize=9)
    return _png(figure)


def _pruned_value(row: TrialRow, trials: list[Any]) -> float:
    for trial in trials:
        if trial.number == row.number and trial.intermediate_values:
            return trial.intermediate_values[max(trial.intermediate_values)]
    return math.nan


# ------------------------------------------------------------ sensitivity plots

#: Metrics a sensitivity plot shows: validation H (what studies choose on), then the
#: test numbers of the same runs, labelled as such.
PLOT_METRICS: dict[str, str] = {"validation_H": "validation H (%)",
                                "H": "TEST H (%), not used to choose",
                                "T1": "TEST ZSL T1 (%), not used to choose"}


@dataclass(frozen=True)
class SensitivityPoint:
    study: str
    dataset: str
    param: str
    value: Any
    metric: str
    mean: float
    std: float
    seeds: int


def sensitivity_points(study_dir: str | Path, param: str | None = None,
                       storage: str | None = None) -> list[SensitivityPoint]:
    """Per parameter value of a study's complete trials: each metric's mean ± std over
    the seeds' runs (read from their run directories)."""
    study_dir = Path(study_dir)
    spec, trials = load_trials(study_dir, storage)
    keys = [p.key for p in spec.space]
    if param is None:
        if len(keys) != 1:
            raise GZSLError(f"study {spec.name} searches {', '.join(keys)}: choose one with "
                            "--param")
        param = keys[0]
    if param not in keys:
        raise GZSLError(f"study {spec.name} does not search {param!r}; it searches "
                        f"{', '.join(keys)}")
    per_value: dict[Any, dict[str, list[float]]] = {}
    synthetic = False
    for trial in trials:
        if trial.state.name != "COMPLETE" or not trial.user_attrs.get("trial_dir"):
            continue
        folder = study_dir / trial.user_attrs["trial_dir"]
        metrics = per_value.setdefault(trial.params[param], {m: [] for m in PLOT_METRICS})
        for seed in spec.seeds:
            results = RunDir(folder / f"seed{seed}").results()
            synthetic = synthetic or bool(results.get("synthetic_data"))
            metrics["validation_H"].append(float(results["chosen"]["validation_H"]))
            metrics["H"].append(float(results["H"]))
            metrics["T1"].append(float(results["T1"]))
    dataset = f"{spec.dataset} (SYNTHETIC)" if synthetic else spec.dataset
    points = []
    for value in sorted(per_value, key=_sort_key):
        for metric, numbers in per_value[value].items():
            if numbers:
                points.append(SensitivityPoint(
                    spec.name, dataset, param, value, metric, statistics.fmean(numbers),
                    statistics.stdev(numbers) if len(numbers) > 1 else 0.0, len(numbers)))
    return points


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int | float) else (1, str(value))


def plot_sensitivity(study_dirs: list[str | Path], out: str | Path, *,
                     param: str | None = None, storage: str | None = None) -> list[Path]:
    """The papers' sensitivity figure: each metric against the parameter, one line per
    study (dataset), a band of ± one standard deviation over seeds. Writes ``out`` with
    ``.png`` and ``.csv`` suffixes."""
    if not study_dirs:
        raise GZSLError("give at least one study folder")
    points = [p for d in study_dirs for p in sensitivity_points(d, param, storage)]
    if not points:
        raise GZSLError("the studies have no complete trial yet: nothing to plot")
    out = Path(out)
    lines = [["study", "dataset", "param", "value", "metric", "mean", "std", "seeds"]]
    lines += [[p.study, p.dataset, p.param, p.value, p.metric, round(p.mean, 4),
               round(p.std, 4), p.seeds] for p in points]
    csv_path = _write(out.with_suffix(".csv"), _csv(lines))
    figure, axes = _subplots(1, len(PLOT_METRICS), (4.4 * len(PLOT_METRICS), 3.5))
    studies = list(dict.fromkeys((p.study, p.dataset) for p in points))
    for ax, (metric, label) in zip(axes[0], PLOT_METRICS.items(), strict=True):
        for study, dataset in studies:
            chosen = [p for p in points if p.study == study and p.metric == metric]
            numeric = all(isinstance(p.value, int | float) for p in chosen)
            xs = [p.value if numeric else str(p.value) for p in chosen]
            mean = [p.mean for p in chosen]
            std = [p.std for p in chosen]
            ax.plot(xs, mean, marker="o", label=dataset)
            ax.fill_between(xs, [m - s for m, s in zip(mean, std, strict=True)],
                            [m + s for m, s in zip(mean, std, strict=True)], alpha=0.2)
        values = [p.value for p in points if p.metric == metric]
        if (all(isinstance(v, int | float) and v > 0 for v in values)
                and max(values) >= 50 * min(values)):
            ax.set_xscale("log")  # values spanning decades (learning rates, penalties)
        ax.set_xlabel(points[0].param)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    figure.suptitle(f"sensitivity to {points[0].param}: mean ± std over seeds; only "
                    "validation H chooses anything", fontsize=9)
    png_path = _write(out.with_suffix(".png"), _png(figure))
    return [png_path, csv_path]
