"""Figures of a finished run, each written beside the data it shows.

:func:`plot_run` writes into ``RUN_DIR/plots/``:

* ``tsne.png`` + ``tsne.csv``: t-SNE of real and synthetic unseen-class features, one
  colour per class, real as dots and synthetic as crosses (GSMFlow's Fig. 5 style);
  both live in the run's preprocessed feature space.
* ``confusion_matrix.png`` + ``confusion_matrix.csv``: the GZSL confusion matrix of the
  reported classifier on the test images (rows: true class, row-normalised; seen classes
  first, then unseen); ``top_confusions.csv``: the most frequent mistakes, true and
  predicted class, count and share of the true class.
* ``training_curves.png`` + ``training_curves.csv``: each loss on its own axis (its mean
  over each window of ``losses.csv``, about 150 a phase; the means between checkpoints
  of ``checkpoints.csv`` for runs without ``losses.csv``),
  and U / S / H over the generator's checkpoints, one row of panels per phase (validation
  / final task); the checkpoint the selection chose is marked, with its synthetic count.
* ``per_class_accuracy.png`` + ``per_class_accuracy.csv``: per-class test accuracy of
  seen and unseen classes.

A plot whose input is missing (no ``checkpoints.csv``, a dataset that cannot be
reloaded) is skipped with a message; the others are still drawn. Figures are drawn
with the Agg backend without pyplot, so an interactive session is left alone. Titles say
"SYNTHETIC data" for runs on generated features. Class names are shown with spaces
(``polar+bear`` as ``polar bear``).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gzsl.data.errors import GZSLError
from gzsl.experiments.rundir import RunDir
from gzsl.utils import atomic_write

__all__ = ["PLOTS", "PlotReport", "plot_run"]

#: Plot names, in the order they are drawn.
PLOTS = ("tsne", "confusion_matrix", "training_curves", "per_class_accuracy")
#: Above this many classes the axes carry no class names (they would not be legible).
MAX_NAMED_CLASSES = 60
#: Rows of ``top_confusions.csv``.
TOP_CONFUSIONS = 30

Log = Callable[[str], None]


@dataclass
class PlotReport:
    """What :func:`plot_run` did: written PNGs, their data files and titles, skipped plots."""

    directory: Path
    written: dict[str, Path] = field(default_factory=dict)
    data_files: dict[str, Path] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


class _SkipPlotError(Exception):
    """A plot cannot be drawn for a reason the user can fix; the others go on."""


def plot_run(run_dir: str | Path, *, root: str | Path | None = None, data: Any = None,
             max_classes: int = 15, max_per_class: int = 100, seed: int = 0,
             only: tuple[str, ...] = PLOTS, log: Log | None = None) -> PlotReport:
    """Draw every plot of ``run_dir`` into ``run_dir/plots``.

    Args:
        run_dir: a run directory written by ``gzsl train``.
        root: the dataset folder for the t-SNE plot when ``metadata.json`` records none
            (or it moved); ``demo`` needs none.
        data: the dataset itself (a :class:`~gzsl.data.GZSLData`), instead of reloading it.
        max_classes: at most this many unseen classes in the t-SNE plot.
        max_per_class: at most this many real, and exactly this many synthetic, features
            per class in the t-SNE plot.
        seed: seed of the subsampling, the synthesis and t-SNE.
        only: the plots to draw (names in :data:`PLOTS`).
        log: receives one line per written or skipped plot.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise GZSLError(f"run directory {run_dir} does not exist. Fix: pass the folder "
                        "`gzsl train` wrote")
    unknown = sorted(set(only) - set(PLOTS))
    if unknown:
        raise GZSLError(f"unknown plot(s) {', '.join(unknown)}; available: {', '.join(PLOTS)}")
    log = log or (lambda message: None)
    report = PlotReport(run_dir / "plots")
    context = _Context(run_dir, root, data, log)
    drawers = {"tsne": lambda: _tsne(context, max_classes, max_per_class, seed),
               "confusion_matrix": lambda: _confusion(context),
               "training_curves": lambda: _training_curves(context),
               "per_class_accuracy": lambda: _per_class(context)}
    for name in PLOTS:
        if name not in only:
            continue
        try:
            figure, data_name, data_bytes, *more = drawers[name]()
        except _SkipPlotError as reason:
            report.skipped[name] = str(reason)
            log(f"skipped {name}: {reason}")
            continue
        png = report.directory / f"{name}.png"
        data_path = report.directory / data_name
        try:
            atomic_write(data_path, lambda handle, payload=data_bytes: handle.write(payload))
            for extra_name, payload in (more[0] if more else {}).items():
                atomic_write(report.directory / extra_name,
                             lambda handle, payload=payload: handle.write(payload))
            atomic_write(png, lambda handle, fig=figure: fig.savefig(handle, format="png",
                                                                      dpi=110))
        except OSError as error:
            raise GZSLError(f"cannot write {png.parent}: {error.strerror or error}. Fix: make "
                            "the run directory writable, or copy the run somewhere writable "
                            "and plot it there") from error
        titles = [figure.get_suptitle(), *(axis.get_title() for axis in figure.axes)]
        report.titles[name] = "\n".join(title for title in titles if title)
        report.written[name] = png
        report.data_files[name] = data_path
        log(f"wrote {png} (data: {data_path.name})")
    return report


class _Context:
    """The run's files, read once and only when a plot needs them."""

    def __init__(self, run_dir: Path, root: str | Path | None, data: Any, log: Log) -> None:
        self.run_dir = run_dir
        self.root = root
        self.data = data
        self.log = log
        self._results: dict[str, Any] | None = None

    @property
    def results(self) -> dict[str, Any]:
        if self._results is None:
            try:
                self._results = RunDir(self.run_dir).results()
            except GZSLError as error:
                raise _SkipPlotError(str(error)) from error
        return self._results

    def title(self, text: str) -> str:
        """``text`` plus the run's identity, and a SYNTHETIC warning when it applies."""
        try:
            results = self.results
        except _SkipPlotError:
            return f"{text}\n{self.run_dir.name}"
        identity = (f"{results.get('method')} on {results.get('dataset')}, selection "
                    f"{results.get('selection')}, seed {results.get('seed')}")
        warning = " — SYNTHETIC data" if results.get("synthetic_data") else ""
        return f"{text}{warning}\n{identity}"

    def class_names(self) -> list[str]:
        """All class names, from ``classifier.pt``, with spaces for ``+`` and ``_``."""
        try:
            names = RunDir(self.run_dir).classifier()["class_names"]
            return [str(name).replace("+", " ").replace("_", " ") for name in names]
        except GZSLError as error:
            raise _SkipPlotError(str(error)) from error


def _subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float],
              squeeze: bool = True) -> tuple[Any, Any]:
    """A figure drawn by the Agg backend, without pyplot (no global state, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize)
    FigureCanvasAgg(figure)
    return figure, figure.subplots(nrows, ncols, squeeze=squeeze)


def _csv_bytes(header: list[str], rows: list[list[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def _tsne(context: _Context, max_classes: int, max_per_class: int, seed: int):
    """Real vs synthetic unseen features, embedded in 2-D by t-SNE."""
    from matplotlib import colormaps
    from sklearn.manifold import TSNE

    from gzsl.experiments.trained import load_run

    try:
        run = load_run(context.run_dir, root=context.root, data=context.data)
        data = run.dataset()
        _ = run.generator_
    except GZSLError as error:
        raise _SkipPlotError(str(error)) from error
    rng = np.random.default_rng(seed)
    unseen = np.asarray(run.unseen_classes)
    if len(unseen) == 0:
        raise _SkipPlotError("the run has no unseen classes")
    if len(unseen) > max_classes:
        unseen = np.sort(rng.choice(unseen, size=max_classes, replace=False))
    final = data.task("final")
    real_parts, real_labels = [], []
    for c in unseen:
        members = np.flatnonzero(final.test_unseen_labels == c)
        if len(members) > max_per_class:
            members = np.sort(rng.choice(members, size=max_per_class, replace=False))
        real_parts.append(final.test_unseen_features[members])
        real_labels.append(np.full(len(members), c))
    real = run.preprocess(np.concatenate(real_parts))
    real_labels_all = np.concatenate(real_labels)
    synthetic = run.sample(unseen.tolist(), max_per_class, seed=seed)
    synthetic_labels = np.repeat(unseen, max_per_class)
    points = np.concatenate([real, synthetic]).astype(np.float64)
    labels = np.concatenate([real_labels_all, synthetic_labels])
    kinds = np.array(["real"] * len(real) + ["synthetic"] * len(synthetic))
    if len(points) < 5:
        raise _SkipPlotError(f"only {len(points)} points to embed")
    if points.shape[1] > 50:
        from sklearn.decomposition import PCA

        points = PCA(n_components=min(50, len(points)), random_state=seed).fit_transform(points)
    perplexity = float(min(30.0, max(2.0, (len(points) - 1) / 3.0)))
    embedded = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                    random_state=seed).fit_transform(points)
    names = run.all_class_names
    figure, axes = _subplots(figsize=(8.5, 7))
    colours = colormaps["tab20" if len(unseen) > 10 else "tab10"]
    for number, c in enumerate(unseen):
        colour = colours(number % colours.N)
        for kind, marker, size in (("real", "o", 12), ("synthetic", "x", 18)):
            mask = (labels == c) & (kinds == kind)
            axes.scatter(embedded[mask, 0], embedded[mask, 1], s=size, marker=marker,
                         color=colour, alpha=0.7, linewidths=0.8 if marker == "x" else 0,
                         label=names[int(c)] if kind == "real" else None)
    axes.scatter([], [], marker="o", color="grey", label="real (dots)")
    axes.scatter([], [], marker="x", color="grey", label="synthetic (crosses)")
    axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title(context.title("t-SNE of real and synthetic unseen-class features"),
                   fontsize=9)
    figure.tight_layout()
    rows = [[f"{x:.6g}", f"{y:.6g}", int(c), names[int(c)], kind]
            for (x, y), c, kind in zip(embedded, labels, kinds, strict=True)]
    return figure, "tsne.csv", _csv_bytes(["x", "y", "class_id", "class_name", "kind"], rows)


def _confusion(context: _Context):
    """Row-normalised GZSL confusion matrix from ``predictions.npz``."""
    try:
        stored = RunDir(context.run_dir).predictions()
    except GZSLError as error:
        raise _SkipPlotError(str(error)) from error
    if stored is None:
        raise _SkipPlotError("predictions.npz not found (written by runs of gzsl 0.1 and later)")
    truth = np.concatenate([stored["test_seen_labels"], stored["test_unseen_labels"]])
    predicted = np.concatenate([stored["test_seen_predictions"],
                                stored["test_unseen_predictions"]])
    seen, unseen = np.sort(stored["seen_classes"]), np.sort(stored["unseen_classes"])
    names = context.class_names()
    order = np.concatenate([seen, unseen]).astype(np.int64)
    if max(int(order.max(initial=0)), int(truth.max(initial=0)),
           int(predicted.max(initial=0))) >= len(names):
        raise _SkipPlotError(f"predictions.npz names class ids beyond the run's {len(names)} "
                             "classes (the file is damaged)")
    position = np.full(max(len(names), int(order.max()) + 1), -1)
    position[order] = np.arange(len(order))
    counts = np.zeros((len(order), len(order)), dtype=np.int64)
    np.add.at(counts, (position[truth], position[predicted]), 1)
    totals = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    labels = [names[int(c)] for c in order]
    size = min(20.0, 4.0 + 0.26 * len(order))
    figure, axes = _subplots(figsize=(size + 1.5, size))
    image = axes.imshow(normalised, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the true class")
    boundary = len(seen) - 0.5
    for line in (axes.axhline, axes.axvline):
        line(boundary, color="white", linewidth=1.0)
    if len(order) <= MAX_NAMED_CLASSES:
        ticks = np.arange(len(order))
        font = 8 if len(order) <= 30 else 7
        axes.set_xticks(ticks, labels, rotation=90, fontsize=font)
        axes.set_yticks(ticks, labels, fontsize=font)
    axes.set_xlabel(f"predicted class ({len(seen)} seen, then {len(unseen)} unseen)")
    axes.set_ylabel("true class")
    axes.set_title(context.title("GZSL confusion matrix (rows normalised)"), fontsize=9)
    figure.tight_layout()
    rows = [[label, "seen" if i < len(seen) else "unseen", *(f"{v:.6g}" for v in row)]
            for i, (label, row) in enumerate(zip(labels, normalised, strict=True))]
    mistakes = [(int(counts[i, j]), i, j) for i in range(len(order)) for j in range(len(order))
                if i != j and counts[i, j] > 0]
    mistakes.sort(key=lambda m: (-m[0], m[1], m[2]))
    top = [[labels[i], "seen" if i < len(seen) else "unseen", labels[j],
            "seen" if j < len(seen) else "unseen", count, f"{normalised[i, j]:.6g}"]
           for count, i, j in mistakes[:TOP_CONFUSIONS]]
    return (figure, "confusion_matrix.csv", _csv_bytes(["true_class", "group", *labels], rows),
            {"top_confusions.csv": _csv_bytes(["true_class", "true_group", "predicted_class",
                                               "predicted_group", "count", "share"], top)})


def _number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _chosen_iteration(chosen: dict[str, Any], phase: str) -> float:
    """The checkpoint iteration the selection chose in ``phase`` (NaN when none)."""
    key = "generator_iteration" if phase == "validation" else "final_iteration"
    value = _number(str(chosen.get(key, "")))
    if not math.isfinite(value) and phase != "validation":
        value = _number(str(chosen.get("generator_iteration", "")))
    return value


def _loss_windows(context: _Context) -> list[dict[str, Any]]:
    """The rows of ``losses.csv`` (checked), or none: an absent file (older runs) or a
    damaged one (said in a log line) leaves the losses at checkpoints only."""
    try:
        windows = RunDir(context.run_dir).losses()
    except GZSLError as error:
        context.log(f"note: {error}; drawing the losses at checkpoints only")
        return []
    return windows or []


def _training_curves(context: _Context):
    """Each loss on its own axis, then U / S / H, over checkpoints; a row per phase."""
    path = context.run_dir / "checkpoints.csv"
    if not path.is_file():
        raise _SkipPlotError(f"{path.name} not found (the method reported no checkpoints)")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise _SkipPlotError(f"{path.name} has no rows")
    windows = _loss_windows(context)
    columns = list(rows[0])
    loss_columns = [c for c in columns if c.startswith("loss_")
                    and any(np.isfinite(_number(row.get(c))) for row in rows)]
    phases = list(dict.fromkeys(row.get("phase", "final") for row in rows))
    scored = {phase: any(np.isfinite(_number(r.get("H"))) for r in rows
                         if r.get("phase", "final") == phase) for phase in phases}
    ncols = max(1, len(loss_columns) + any(scored.values()))
    figure, axes = _subplots(len(phases), ncols, figsize=(3.6 * ncols + 1, 3.2 * len(phases)),
                             squeeze=False)
    try:
        chosen = context.results.get("chosen") or {}
    except _SkipPlotError:
        chosen = {}
    kept: list[list[Any]] = []
    for row_axes, phase in zip(axes, phases, strict=True):
        rows_of_phase = [row for row in rows if row.get("phase", "final") == phase]
        first_of_iteration = list({row["iteration"]: row for row in reversed(rows_of_phase)}
                                  .values())[::-1]
        iterations = np.array([_number(r["iteration"]) for r in first_of_iteration])
        marked = _chosen_iteration(chosen, phase)
        marker = (f"chosen: iteration {marked:.0f}"
                  + (f", {chosen['n_synthetic']} synthetic per class"
                     if phase == phases[-1] and chosen.get("n_synthetic") else ""))
        windows_of_phase = [w for w in windows if w["phase"] == phase]
        for axis, column in zip(row_axes, loss_columns, strict=False):
            values = np.array([_number(r.get(column)) for r in first_of_iteration])
            curve = [(w["iteration"], w[column]) for w in windows_of_phase if column in w]
            if curve:
                steps = max(w["steps"] for w in windows_of_phase)
                axis.plot(*zip(*curve, strict=True), color="C0", linewidth=1.0,
                          marker="o" if len(curve) <= 20 else None, markersize=3,
                          label=f"mean of each {steps} iterations" if steps > 1
                          else "each iteration")
                axis.legend(fontsize=6, loc="upper right")
            else:
                axis.plot(iterations, values, marker="o", markersize=3, color="C0")
            axis.set_title(f"{phase} task: {column.removeprefix('loss_')} loss", fontsize=9)
            axis.set_xlabel("iteration")
            if math.isfinite(marked):
                axis.axvline(marked, color="black", linewidth=0.8, linestyle="--")
        panels = len(loss_columns)
        if scored[phase]:
            scores_axis = row_axes[panels]
            panels += 1
            groups = list(dict.fromkeys(r.get("n_synthetic", "") for r in rows_of_phase
                                        if np.isfinite(_number(r.get("H")))))
            for number, group in enumerate(groups):
                members = [r for r in rows_of_phase if r.get("n_synthetic", "") == group
                           and np.isfinite(_number(r.get("H")))]
                x = [_number(r["iteration"]) for r in members]
                suffix = f" (n={group})" if len(groups) > 1 else ""
                for metric, style in (("U", ":"), ("S", "--"), ("H", "-")):
                    scores_axis.plot(x, [_number(r.get(metric)) for r in members], style,
                                     marker="o", markersize=3,
                                     color=f"C{number}" if len(groups) > 1 else None,
                                     label=f"{metric}{suffix}")
            if math.isfinite(marked):
                scores_axis.axvline(marked, color="black", linewidth=0.8, linestyle="--",
                                    label=marker)
            scores_axis.set_title(f"{phase} task: accuracy (%)", fontsize=9)
            scores_axis.set_xlabel("iteration")
            scores_axis.legend(fontsize=6, ncol=max(1, len(groups)))
        elif loss_columns and math.isfinite(marked):
            row_axes[0].text(0.02, 0.02, marker, transform=row_axes[0].transAxes, fontsize=7)
        for axis in row_axes[panels:]:
            axis.remove()  # nothing to draw there: no empty panel
        for r in rows_of_phase:
            kept.append([phase, "checkpoint", r.get("iteration"), r.get("n_synthetic", ""),
                         *(r.get(c, "") for c in loss_columns),
                         *(r.get(m, "") for m in ("U", "S", "H"))])
        for w in windows_of_phase:
            kept.append([phase, "window", w["iteration"], "",
                         *(f"{w[c]:.6g}" if c in w else "" for c in loss_columns), "", "", ""])
    figure.suptitle(context.title("training curves"), fontsize=9)
    figure.tight_layout()
    header = ["phase", "kind", "iteration", "n_synthetic", *loss_columns, "U", "S", "H"]
    return figure, "training_curves.csv", _csv_bytes(header, kept)


def _per_class(context: _Context):
    """Per-class test accuracy of seen and unseen classes, from ``results.json``."""
    per_class = context.results.get("per_class") or {}
    groups = [(g, per_class.get(g) or {}) for g in ("seen", "unseen")]
    if not any(values for _, values in groups):
        raise _SkipPlotError("results.json has no per-class accuracies")
    count = max(len(values) for _, values in groups)
    width = min(18.0, 5.0 + 0.16 * count)
    figure, axes = _subplots(2, 1, figsize=(width, 7.5), squeeze=False)
    rows: list[list[Any]] = []
    metric = {"seen": "S", "unseen": "U"}
    for axis, (group, values) in zip(axes[:, 0], groups, strict=True):
        names, accuracies = list(values), [float(v) for v in values.values()]
        positions = np.arange(len(names))
        axis.bar(positions, accuracies, color="C0" if group == "seen" else "C1")
        if accuracies:
            mean = float(np.mean(accuracies))
            axis.axhline(mean, color="black", linewidth=0.8, linestyle="--",
                         label=f"mean = {metric[group]} = {mean:.1f}")
            axis.legend(fontsize=7, loc="lower right")
        if len(names) <= MAX_NAMED_CLASSES:
            axis.set_xticks(positions, names, rotation=90, fontsize=6)
        else:
            axis.set_xticks([])
        axis.set_ylim(0, 100)
        axis.set_ylabel("accuracy (%)")
        axis.set_title(f"{group} classes ({len(names)})", fontsize=9)
        rows.extend([group, name, f"{a:.6g}"] for name, a in zip(names, accuracies, strict=True))
    figure.suptitle(context.title("per-class test accuracy"), fontsize=9)
    figure.tight_layout()
    return figure, "per_class_accuracy.csv", _csv_bytes(["group", "class", "accuracy"], rows)
