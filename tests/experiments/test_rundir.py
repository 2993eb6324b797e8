"""A run directory has one owner: locked while it runs, never silently written over, and
every file read back is checked, in every command that reads it."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_dataset, run_main, train_tiny_run

import gzsl
from gzsl.data.errors import GZSLError
from gzsl.experiments.config import resolve
from gzsl.experiments.rundir import RunDir, run_status
from gzsl.experiments.runner import run_experiment
from gzsl.experiments.trained import load_run

FAST = ("evaluation.classifier_epochs=2", "evaluation.n_synthetic=10")


def _run(out: Path, **kwargs):
    config = resolve("gaussian", "tiny", selection="final", overrides=FAST, device="cpu")
    return run_experiment(config, data=make_tiny_dataset(), out=out, **kwargs)


def test_a_folder_in_use_by_another_process_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "run"
    with RunDir(out).claim():
        with pytest.raises(GZSLError, match=r"in use by another gzsl process \(pid \d+\)"):
            _run(out)
        assert sorted(p.name for p in out.iterdir()) == [".gzsl.lock"]
    _run(out)  # the lock goes with its holder
    assert run_status(out) == "finished"


def test_finished_interrupted_and_foreign_folders_need_overwrite(tmp_path):
    out = tmp_path / "run"
    _run(out)
    before = (out / "results.json").read_bytes()
    with pytest.raises(GZSLError, match="holds a finished run.*--overwrite"):
        _run(out)
    assert (out / "results.json").read_bytes() == before

    (out / "results.json").unlink()
    with pytest.raises(GZSLError, match="interrupted run.*--resume"):
        _run(out)

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "checkpoints.csv").write_text("my own notes\n")
    with pytest.raises(GZSLError, match=r"not empty and not a gzsl run \(found: "
                                        r"checkpoints\.csv\)"):
        _run(mine)
    assert (mine / "checkpoints.csv").read_text() == "my own notes\n"

    (out / "notes.txt").write_text("keep me")
    (out / "classifier_epochs.csv").write_text("stale")
    _run(out, overwrite=True)
    assert run_status(out) == "finished" and (out / "notes.txt").read_text() == "keep me"
    assert not (out / "classifier_epochs.csv").exists()  # the old run's file, not this one's


def test_out_naming_a_file_and_write_failures_are_one_clear_error(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    with pytest.raises(GZSLError, match="is a file, not a folder"):
        _run(tmp_path / "file")

    import gzsl.experiments.rundir as rundir

    def full(path, write):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(rundir, "atomic_write", full)
    with pytest.raises(GZSLError, match=r"cannot write .*config\.json: No space left on device"):
        _run(tmp_path / "full")


def test_cli_overwrite_flag_and_refusals(tmp_path, capsys):
    out = train_tiny_run(tmp_path)
    args = ["train", "gaussian", "tiny", "--root", str(tmp_path / "tiny.npz"), "--selection",
            "final", "--device", "cpu", "--out", str(out)]
    code, output = run_main(capsys, *args)
    assert code == 2 and "holds a finished run" in output
    code, output = run_main(capsys, *args, "--overwrite")
    assert code == 0, output
    code, output = run_main(capsys, "train", "--resume", str(out), "--overwrite")
    assert code == 2 and "--overwrite" in output


def test_metadata_keeps_the_start_and_records_the_finish(tmp_path):
    _run(tmp_path / "run")
    metadata = json.loads((tmp_path / "run" / "metadata.json").read_text())
    assert metadata["started"] and metadata["finished"] >= metadata["started"]
    assert metadata["environment"]["threads"] >= 1


# ------------------------------------------------------------- tampered run files

def _tamper_results(run: Path, **changes) -> None:
    results = json.loads((run / "results.json").read_text())
    for key, value in changes.items():
        if key == "gamma":
            results["chosen"]["gamma"] = value
        else:
            results[key] = value
    (run / "results.json").write_text(json.dumps(results))


def _tamper_classifier(run: Path, change) -> None:
    stored = torch.load(run / "classifier.pt", weights_only=True)
    change(stored)
    torch.save(stored, run / "classifier.pt")


TAMPERING = {
    "H is text": lambda run: _tamper_results(run, H="abc"),
    "gamma NaN": lambda run: _tamper_results(run, gamma=float("nan")),
    "results a list": lambda run: (run / "results.json").write_text("[1, 2]"),
    "results cut": lambda run: (run / "results.json").write_text('{"method": "gaus'),
    "per_class of text": lambda run: _tamper_results(run, per_class={"seen": {"a": "x"}}),
    "preprocessing short": lambda run: _tamper_classifier(
        run, lambda s: s["preprocessing"].update(minimum=s["preprocessing"]["minimum"][:3])),
    "classifier of the wrong kind": lambda run: torch.save({"weights": [1, 2]},
                                                           run / "classifier.pt"),
    "classifier damaged": lambda run: (run / "classifier.pt").write_bytes(b"PK\x03\x04junk"),
    "predictions damaged": lambda run: (run / "predictions.npz").write_bytes(b"PK\x05\x06"),
    "predictions of text": lambda run: np.savez(run / "predictions.npz", **{
        k: np.array(["a"]) for k in ("test_seen_labels", "test_seen_predictions",
                                     "test_unseen_labels", "test_unseen_predictions",
                                     "seen_classes", "unseen_classes")}),
    "class ids out of range": lambda run: _tamper_classifier(
        run, lambda s: s["classifier"].update(classes=s["classifier"]["classes"] + 100)),
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    return train_tiny_run(tmp_path_factory.mktemp("finished"))


@pytest.mark.parametrize("tampering", sorted(TAMPERING))
def test_every_reader_refuses_a_tampered_run_with_one_clear_line(tampering, finished_run,
                                                                 tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    TAMPERING[tampering](run)
    features = tmp_path / "features.npy"
    np.save(features, np.ones((2, 16), dtype=np.float32))
    commands = {"predict": ["predict", str(run), str(features)],
                "retrieve": ["retrieve", str(run)],
                "compare": ["compare", str(run)]}
    reads_results = tampering.startswith(("H ", "gamma", "results", "per_class"))
    for name, args in commands.items():
        if name == "compare" and not reads_results:
            continue  # compare reads results.json and config.json only
        code, output = run_main(capsys, *args)
        assert code == 2, (name, output)
        assert output.startswith("error:") and "Traceback" not in output, (name, output)
    with pytest.raises(GZSLError):
        load_run(run)
    if tampering.startswith("predictions"):
        from gzsl.experiments.plots import plot_run

        report = plot_run(run, only=("confusion_matrix",))
        assert "predictions.npz" in report.skipped["confusion_matrix"]


def test_a_damaged_generator_is_a_clear_error_when_sampling(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "generator.pt").write_bytes(b"\x80\x02not torch")
    loaded = load_run(run)  # classification still works
    with pytest.raises(GZSLError, match=r"cannot read .*generator\.pt"):
        loaded.sample([0], 2)
    torch.save({"method": "no-such-method", "config": {}, "state": {}}, run / "generator.pt")
    with pytest.raises(GZSLError, match=r"generator\.pt.*unknown method"):
        load_run(run).sample([0], 2)


# --------------------------------------------------------------------- the Python API

def test_train_returns_a_run_that_predicts_saves_and_loads(tmp_path):
    data = make_tiny_dataset()
    run = gzsl.train("gaussian", "tiny", data=data, selection="final", device="cpu",
                     out=tmp_path / "run", classifier_epochs=2, n_synthetic=10)
    assert set(run.metrics) == {"U", "S", "H", "T1"} and run.H == run.results["H"]
    assert run.config["evaluation"]["classifier_epochs"] == 2
    final = data.task("final")
    predicted = run.predict(final.test_unseen_features)
    stored = np.load(tmp_path / "run" / "predictions.npz")
    assert predicted == [data.class_names[c] for c in stored["test_unseen_predictions"]]
    copy = run.save(tmp_path / "copy")
    again = gzsl.Run.load(tmp_path / "copy")
    assert again.metrics == run.metrics and copy.predict(final.test_unseen_features) == predicted
    np.testing.assert_array_equal(again.sample([15], 3, seed=2), run.sample([15], 3, seed=2))
    with pytest.raises(GZSLError, match="holds a finished run"):
        run.save(tmp_path / "copy")
    with pytest.raises(GZSLError, match="unknown setting 'epoch'"):
        gzsl.train("gaussian", "tiny", data=data, epoch=3)


def test_the_readme_python_example_runs(tmp_path, monkeypatch):
    """The README's example, executed as written (with a tiny budget added and the run
    directory moved into the test's folder)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    code = readme.split("From Python:\n\n```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) <= 6
    train = gzsl.train

    def small(*args, **kwargs):
        return train(*args, **kwargs, epochs=1, classifier_epochs=2, n_synthetic=10,
                     n_synthetic_grid=[1.0], device="cpu")
    monkeypatch.setattr(gzsl.api, "train", small)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    results = json.loads((tmp_path / "runs" / "my-run" / "results.json").read_text())
    assert namespace["run"].metrics == {m: results[m] for m in ("U", "S", "H", "T1")}
    assert namespace["features"].shape == (5, namespace["run"].feature_dim)


def test_plot_into_a_read_only_run_is_one_clear_error(finished_run, tmp_path, monkeypatch):
    import gzsl.experiments.plots as plots

    def read_only(path, write):
        raise OSError(errno.EROFS, "Read-only file system")
    monkeypatch.setattr(plots, "atomic_write", read_only)
    with pytest.raises(GZSLError, match="cannot write .*plots: Read-only file system"):
        plots.plot_run(finished_run, only=("per_class_accuracy",))


@pytest.mark.parametrize(("text", "problem"), [
    ("phase,iteration,loss_a\nfinal,1,0.5\n", "lacks the column(s) steps"),
    ("phase,iteration,steps\nfinal,1,1\n", "lacks the column(s) loss_*"),
    ("phase,iteration,steps,loss_a\nfinal,1,1,zero\n", "malformed line 2"),
    ("phase,iteration,steps,loss_a\nfinal,1,1,0.5,9\n", "malformed line 2"),
    ("phase,iteration,steps,loss_a\nfinal,2,1,0.5\nfinal,2,1,0.4\n", "line 3 with iteration 2"),
    ("phase,iteration,steps,loss_a\nfinal,0,1,0.5\n", "line 2 with iteration 0"),
    ("\xff\xfe".encode("latin-1"), "cannot read"),
])
def test_losses_csv_is_checked_when_read(tmp_path, text, problem):
    run = RunDir(tmp_path)
    path = tmp_path / "losses.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(GZSLError, match="losses.csv") as error:
        run.losses()
    assert problem in str(error.value) and "\n" not in str(error.value)


def test_losses_csv_reads_back_as_numbers_and_is_optional(tmp_path):
    run = RunDir(tmp_path)
    assert run.losses() is None
    (tmp_path / "losses.csv").write_text("phase,iteration,steps,loss_a,loss_b\n"
                                         "validation,3,3,0.5,\nfinal,3,3,nan,1e-3\n")
    rows = run.losses()
    assert rows[0] == {"phase": "validation", "iteration": 3, "steps": 3, "loss_a": 0.5,
                       "loss_b": pytest.approx(float("nan"), nan_ok=True)}
    assert rows[1]["loss_b"] == 1e-3 and np.isnan(rows[1]["loss_a"])
