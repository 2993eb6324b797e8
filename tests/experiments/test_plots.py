"""``plot_run``: every PNG is readable and its data file holds what the plot shows."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from conftest import make_tiny_dataset
from sklearn.metrics import confusion_matrix
from threadpoolctl import threadpool_limits

from gzsl.data.errors import GZSLError
from gzsl.experiments.config import resolve
from gzsl.experiments.plots import PLOTS, plot_run
from gzsl.experiments.runner import run_experiment

FAST = ("evaluation.classifier_epochs=4", "evaluation.classifier_lr=0.05",
        "evaluation.classifier_batch_size=32", "evaluation.n_synthetic=10",
        "evaluation.checkpoint_every=1")


@pytest.fixture(scope="module", autouse=True)
def one_openmp_thread():
    """t-SNE's OpenMP threads spin against each other on a busy shared test machine."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A ``val`` run: a validation phase scored at checkpoints, then the final phase."""
    out = tmp_path_factory.mktemp("plots") / "run"
    config = resolve("gaussian", "tiny", selection="val", overrides=FAST, device="cpu")
    run_experiment(config, data=make_tiny_dataset(), out=out)
    return out


@pytest.fixture(scope="module")
def report(run_dir):
    return plot_run(run_dir, data=make_tiny_dataset(), max_classes=5, max_per_class=10)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_plot_is_a_readable_png_beside_its_data(report, run_dir):
    assert set(report.written) == set(PLOTS) and not report.skipped
    for name, png in report.written.items():
        assert png.parent == run_dir / "plots"
        image = matplotlib.image.imread(png)
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200
        assert image.std() > 0.01  # something was drawn
        assert report.data_files[name].is_file()


def test_tsne_points_per_class_and_kind(report, run_dir):
    rows = _rows(report.data_files["tsne"])
    unseen = set(np.load(run_dir / "predictions.npz")["unseen_classes"].tolist())
    classes = {int(r["class_id"]) for r in rows}
    assert len(classes) == 5 and classes <= unseen
    counts = Counter((int(r["class_id"]), r["kind"]) for r in rows)
    assert all(counts[(c, kind)] == 10 for c in classes for kind in ("real", "synthetic"))
    assert len(rows) == 100
    points = np.array([[float(r["x"]), float(r["y"])] for r in rows])
    assert np.isfinite(points).all() and points.std(axis=0).min() > 0


def test_tsne_keeps_all_real_images_below_the_cap(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    result = plot_run(copy, data=make_tiny_dataset(), max_classes=2, max_per_class=30,
                      only=("tsne",))
    counts = Counter(r["kind"] for r in _rows(result.data_files["tsne"]))
    assert counts == {"real": 2 * 24, "synthetic": 2 * 30}  # 24 test images per class


def test_confusion_matrix_rows_are_normalised_counts(report, run_dir):
    rows = _rows(report.data_files["confusion_matrix"])
    names = [r["true_class"] for r in rows]
    matrix = np.array([[float(r[name]) for name in names] for r in rows])
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, rtol=1e-6)
    stored = np.load(run_dir / "predictions.npz")
    order = np.concatenate([np.sort(stored["seen_classes"]), np.sort(stored["unseen_classes"])])
    truth = np.concatenate([stored["test_seen_labels"], stored["test_unseen_labels"]])
    predicted = np.concatenate([stored["test_seen_predictions"],
                                stored["test_unseen_predictions"]])
    counts = confusion_matrix(truth, predicted, labels=order)
    np.testing.assert_allclose(matrix, counts / counts.sum(axis=1, keepdims=True), atol=1e-6)
    assert names == [f"class {c}" for c in order]  # shown with spaces, not class_0
    groups = [r["group"] for r in rows]
    assert groups == ["seen"] * len(stored["seen_classes"]) + ["unseen"] * len(
        stored["unseen_classes"])


def test_training_curves_hold_every_checkpoint_of_each_phase(report, run_dir):
    rows = [r for r in _rows(report.data_files["training_curves"]) if r["kind"] == "checkpoint"]
    checkpoints = _rows(run_dir / "checkpoints.csv")
    assert [(r["phase"], r["iteration"]) for r in rows] == [
        (r["phase"], r["iteration"]) for r in checkpoints]
    assert {r["phase"] for r in rows} == {"validation", "final"}
    scored = [r for r in rows if r["H"]]
    assert scored and all(r["phase"] == "validation" for r in scored)
    assert [r["loss_mean_mse"] for r in rows] == [r["loss_mean_mse"] for r in checkpoints]


def test_per_class_accuracy_matches_results(report, run_dir):
    results = json.loads((run_dir / "results.json").read_text())
    rows = _rows(report.data_files["per_class_accuracy"])
    for group in ("seen", "unseen"):
        shown = {r["class"]: float(r["accuracy"]) for r in rows if r["group"] == group}
        assert shown == pytest.approx(results["per_class"][group])


def test_titles_warn_about_synthetic_data(report, run_dir, tmp_path):
    assert all("SYNTHETIC data" in title for title in report.titles.values())
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    results = json.loads((copy / "results.json").read_text())
    results["synthetic_data"] = False
    (copy / "results.json").write_text(json.dumps(results))
    real = plot_run(copy, only=("confusion_matrix", "per_class_accuracy"))
    assert real.titles and not any("SYNTHETIC" in t for t in real.titles.values())


def test_missing_inputs_skip_their_plot_with_a_message(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    shutil.rmtree(copy / "plots", ignore_errors=True)
    (copy / "checkpoints.csv").unlink()
    (copy / "predictions.npz").unlink()
    messages: list[str] = []
    result = plot_run(copy, log=messages.append)
    assert set(result.skipped) == {"tsne", "confusion_matrix", "training_curves"}
    assert "root" in result.skipped["tsne"]  # the tiny data's folder is not recorded
    assert "checkpoints.csv not found" in result.skipped["training_curves"]
    assert set(result.written) == {"per_class_accuracy"}
    assert sorted(p.name for p in (copy / "plots").iterdir()) == [
        "per_class_accuracy.csv", "per_class_accuracy.png"]
    assert any(m.startswith("skipped training_curves") for m in messages)


def test_bad_arguments_are_user_errors(run_dir, tmp_path):
    with pytest.raises(GZSLError, match="does not exist"):
        plot_run(tmp_path / "nowhere")
    with pytest.raises(GZSLError, match="unknown plot"):
        plot_run(run_dir, only=("pie",))


def test_top_confusions_are_the_largest_off_diagonal_counts(report, run_dir):
    top = _rows(report.directory / "top_confusions.csv")
    stored = np.load(run_dir / "predictions.npz")
    truth = np.concatenate([stored["test_seen_labels"], stored["test_unseen_labels"]])
    predicted = np.concatenate([stored["test_seen_predictions"],
                                stored["test_unseen_predictions"]])
    mistakes = Counter((int(t), int(p)) for t, p in zip(truth, predicted,
                                                                     strict=True) if t != p)
    assert top and [int(r["count"]) for r in top] == sorted(
        mistakes.values(), reverse=True)[:len(top)]
    first = top[0]
    assert first["true_class"] != first["predicted_class"]
    assert first["true_class"].startswith("class ")


def test_training_curves_give_each_loss_its_axis_and_mark_the_choice(report):
    titles = report.titles["training_curves"]
    assert "validation task: mean_mse loss" in titles and "final task: mean_mse loss" in titles
    assert "final task: accuracy" not in titles  # not scored there: no empty panel
    assert "validation task: accuracy (%)" in titles


def test_loss_windows_are_drawn_and_a_damaged_losses_file_leaves_the_checkpoints(run_dir,
                                                                               tmp_path):
    windows = _rows(run_dir / "losses.csv")
    assert [r["phase"] for r in windows] == ["validation", "final"]  # one step a phase
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    shown = _rows(plot_run(copy, only=("training_curves",)).data_files["training_curves"])
    assert [(r["phase"], r["iteration"]) for r in shown if r["kind"] == "window"] == [
        (r["phase"], r["iteration"]) for r in windows]
    for damage in ("phase,iteration,steps,loss_mean_mse\nfinal,1,x,0.5\n", None):
        if damage is None:
            (copy / "losses.csv").unlink()
        else:
            (copy / "losses.csv").write_text(damage)
        messages: list[str] = []
        report = plot_run(copy, only=("training_curves",), log=messages.append)
        assert set(report.written) == {"training_curves"}
        rows = _rows(report.data_files["training_curves"])
        assert rows and all(r["kind"] == "checkpoint" for r in rows)
        notes = [m for m in messages if m.startswith("note:")]
        assert len(notes) == (0 if damage is None else 1)
        assert damage is None or "losses.csv has a malformed line 2" in notes[0]
