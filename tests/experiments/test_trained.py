"""``load_run``: predictions, probabilities, synthesis and errors, on a real tiny run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from conftest import make_tiny_dataset

import gzsl
from gzsl.data.errors import GZSLError
from gzsl.evaluation.classifier import SoftmaxClassifier
from gzsl.experiments.config import resolve
from gzsl.experiments.runner import run_experiment
from gzsl.experiments.trained import load_run, orient_features, read_features
from gzsl.methods.base import Generator

FAST = ("evaluation.classifier_epochs=6", "evaluation.classifier_lr=0.05",
        "evaluation.classifier_batch_size=32", "evaluation.n_synthetic=20",
        "evaluation.checkpoint_every=1")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    config = resolve("gaussian", "tiny", selection="final", overrides=FAST, device="cpu")
    run_experiment(config, data=make_tiny_dataset(), out=out)
    return out


@pytest.fixture(scope="module")
def raw_task():
    """The raw (not preprocessed) final task of the data the run was trained on."""
    return make_tiny_dataset().task("final")


def test_predict_reproduces_the_runs_own_test_predictions(run_dir, raw_task):
    run = load_run(run_dir)
    stored = np.load(run_dir / "predictions.npz")
    names = run.all_class_names
    assert run.predict(raw_task.test_seen_features) == [
        names[c] for c in stored["test_seen_predictions"]]
    assert run.predict(raw_task.test_unseen_features) == [
        names[c] for c in stored["test_unseen_predictions"]]


def test_preprocessing_is_minmax_fitted_on_training_features_only(run_dir, raw_task):
    train = raw_task.train_features.astype(np.float64)
    low, high = train.min(axis=0), train.max(axis=0)
    expected = (raw_task.test_unseen_features - low) / (high - low)
    run = load_run(run_dir)
    np.testing.assert_allclose(run.preprocess(raw_task.test_unseen_features), expected,
                               rtol=1e-5, atol=1e-5)


def test_predict_proba_matches_the_stored_classifier(run_dir, raw_task):
    run = load_run(run_dir)
    raw = raw_task.test_seen_features
    probabilities = run.predict_proba(raw)
    stored = torch.load(run_dir / "classifier.pt", weights_only=True)
    classifier = SoftmaxClassifier.from_state_dict(stored["classifier"])
    expected = classifier.log_probabilities(torch.as_tensor(run.preprocess(raw))).exp()
    assert probabilities.shape == (len(raw), len(run.class_names))
    np.testing.assert_allclose(probabilities, expected.numpy(), rtol=1e-6)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    best = [run.class_names[j] for j in probabilities.argmax(axis=1)]
    assert best == run.predict(raw)
    assert run.class_names == [run.all_class_names[c] for c in stored["classifier"]["classes"]]


def test_calibrated_stacking_constant_is_applied_to_seen_columns(run_dir, tmp_path,
                                                                  raw_task):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    results = json.loads((copy / "results.json").read_text())
    results["chosen"]["gamma"] = 0.5
    (copy / "results.json").write_text(json.dumps(results))
    run = load_run(copy)
    raw = np.concatenate([raw_task.test_seen_features, raw_task.test_unseen_features])
    probabilities = run.predict_proba(raw)
    seen_columns = np.isin(run.classes, run.seen_classes)
    expected = run.classes[(probabilities - 0.5 * seen_columns).argmax(axis=1)]
    assert np.array_equal(run.predict_ids(raw), expected)
    assert not np.array_equal(expected, run.classes[probabilities.argmax(axis=1)])
    names, top = run.top_k(raw, 2)
    assert list(names[:, 0]) == run.predict(raw)
    np.testing.assert_allclose(top[:, 0], probabilities[np.arange(len(raw)),
                                                        np.searchsorted(run.classes, expected)])


def test_transposed_and_single_vector_inputs(run_dir, raw_task):
    run = load_run(run_dir)
    raw = raw_task.test_unseen_features[:5]
    assert run.predict(raw.T) == run.predict(raw)
    assert run.predict(raw[0]) == run.predict(raw)[:1]


def test_top_k_is_sorted_and_capped(run_dir, raw_task):
    run = load_run(run_dir)
    names, probabilities = run.top_k(raw_task.test_unseen_features[:4], 100)
    assert names.shape == probabilities.shape == (4, len(run.class_names))
    assert np.all(np.diff(probabilities, axis=1) <= 0)


def test_feature_dimension_mismatch_is_a_user_error(run_dir):
    run = load_run(run_dir)
    with pytest.raises(GZSLError, match=r"16-d features.*Fix"):
        run.predict(np.zeros((3, 15)))
    with pytest.raises(GZSLError, match="NaN"):
        run.predict(np.full((2, 16), np.nan))
    with pytest.raises(GZSLError, match="matrix"):
        orient_features(np.zeros((2, 2, 16)), 16)


def test_missing_and_incomplete_run_dirs(run_dir, tmp_path):
    with pytest.raises(GZSLError, match="does not exist.*Fix"):
        load_run(tmp_path / "nowhere")
    partial = tmp_path / "partial"
    shutil.copytree(run_dir, partial)
    (partial / "results.json").unlink()
    with pytest.raises(GZSLError, match=r"results\.json is missing.*interrupted"
                                         r".*gzsl train --resume"):
        load_run(partial)
    (tmp_path / "empty").mkdir()
    with pytest.raises(GZSLError, match="not a run directory"):
        load_run(tmp_path / "empty")
    damaged = tmp_path / "damaged"
    shutil.copytree(run_dir, damaged)
    (damaged / "classifier.pt").write_bytes(b"not a torch file")
    with pytest.raises(GZSLError, match=r"cannot read .*classifier\.pt.*damaged"):
        load_run(damaged)


def test_sample_draws_from_the_stored_generator(run_dir):
    data = make_tiny_dataset()
    run = load_run(run_dir, data=data)
    features = run.sample(["class_12", 15], 7, seed=3)
    assert features.shape == (14, 16) and features.dtype == np.float32
    model = Generator.load(run_dir / "generator.pt")
    expected = model.sample(torch.as_tensor(data.semantics[[12, 15]]), 7,
                            rng=torch.Generator().manual_seed(3))
    np.testing.assert_allclose(features, expected.numpy(), rtol=1e-6)
    assert np.array_equal(run.sample([12, 15], 7, seed=3), features)
    assert not np.array_equal(run.sample([12, 15], 7, seed=4), features)
    with pytest.raises(GZSLError, match="unknown class"):
        run.sample(["no such class"], 2)


def test_a_run_synthesises_on_its_own_from_its_stored_semantics(run_dir, tmp_path):
    alone = load_run(run_dir).sample(["class_12", 15], 5, seed=1)
    with_data = load_run(run_dir, data=make_tiny_dataset()).sample(["class_12", 15], 5, seed=1)
    np.testing.assert_array_equal(alone, with_data)
    other = make_tiny_dataset(dim=8)
    with pytest.raises(GZSLError, match="does not match"):
        load_run(run_dir, data=other).dataset()

    old = tmp_path / "old"  # a run saved before class semantics were stored with it
    shutil.copytree(run_dir, old)
    stored = torch.load(old / "classifier.pt", weights_only=True)
    del stored["semantics"]
    torch.save(stored, old / "classifier.pt")
    with pytest.raises(GZSLError, match="root"):
        load_run(old).sample(["class_12"], 2)
    np.testing.assert_array_equal(
        load_run(old, data=make_tiny_dataset()).sample(["class_12", 15], 5, seed=1), alone)

    stored["semantics"] = torch.zeros(3, 2)
    torch.save(stored, old / "classifier.pt")
    with pytest.raises(GZSLError, match="class semantics"):
        load_run(old)


def test_results_and_config_are_the_run_files(run_dir):
    run = load_run(run_dir)
    assert run.results == json.loads((run_dir / "results.json").read_text())
    assert run.config["method"] == "gaussian" and run.config["selection"] == "final"
    assert run.synthetic_data


def test_gzsl_exports_load_run_lazily():
    assert gzsl.load_run is load_run
    code = "import sys, gzsl; print('torch' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert output == "False"
    with pytest.raises(AttributeError):
        _ = gzsl.no_such_name


def test_read_features_from_each_file_kind(tmp_path):
    matrix = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "f.npy", matrix)
    np.savez(tmp_path / "one.npz", x=matrix)
    np.savez(tmp_path / "two.npz", x=matrix, y=np.ones(3))
    scipy.io.savemat(tmp_path / "f.mat", {"feats": matrix, "note": "text"})
    for name in ("f.npy", "one.npz", "f.mat"):
        np.testing.assert_array_equal(read_features(tmp_path / name), matrix)
    np.testing.assert_array_equal(read_features(tmp_path / "two.npz", "y"), np.ones(3))
    with pytest.raises(GZSLError, match=r"several arrays \(x \(3, 4\), y \(3,\)\).*--key"):
        read_features(tmp_path / "two.npz")
    with pytest.raises(GZSLError, match="has no array 'z'; it holds: x, y"):
        read_features(tmp_path / "two.npz", "z")
    (tmp_path / "f.txt").write_text("1 2 3")
    with pytest.raises(GZSLError, match=r"\.npy"):
        read_features(tmp_path / "f.txt")
    with pytest.raises(GZSLError, match="does not exist"):
        read_features(tmp_path / "missing.npy")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_run_trained_on_gpu_predicts_on_cpu(tmp_path, raw_task):
    config = resolve("gaussian", "tiny", selection="final", overrides=FAST, device="cuda")
    run_experiment(config, data=make_tiny_dataset(), out=tmp_path / "gpu")
    run = load_run(tmp_path / "gpu", device="cpu", data=make_tiny_dataset())
    stored = np.load(tmp_path / "gpu" / "predictions.npz")
    assert np.array_equal(run.predict_ids(raw_task.test_unseen_features),
                          stored["test_unseen_predictions"])
    assert run.sample([12], 3, seed=0).shape == (3, 16)


def test_a_run_saved_with_cuda_tensors_loads_on_a_machine_without_one(tmp_path, raw_task,
                                                                      monkeypatch):
    """Files written on a GPU tag their tensors 'cuda:0'; faking that tag at save time lets
    a CPU-only machine check that every loader maps them to its own device."""
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA (the GPU case is tested above)")
    config = resolve("gsmflow", "tiny", selection="final", device="cpu",
                     overrides=FAST + ("method.epochs=2", "method.hidden_dim=16",
                                       "method.global_semantic_dim=8"))
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        run_experiment(config, data=make_tiny_dataset(), out=tmp_path / "gpu")
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(tmp_path / "gpu" / "generator.pt", weights_only=True)
    run = load_run(tmp_path / "gpu", device="cpu", data=make_tiny_dataset())
    stored = np.load(tmp_path / "gpu" / "predictions.npz")
    assert np.array_equal(run.predict_ids(raw_task.test_unseen_features),
                          stored["test_unseen_predictions"])
    assert run.sample([12], 3, seed=0).shape == (3, 16)
    assert Generator.load(tmp_path / "gpu" / "generator.pt").device == torch.device("cpu")
