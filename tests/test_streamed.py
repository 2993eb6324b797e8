"""Out-of-core training and evaluation (#15): streamed == in memory, bit for bit, on tiny data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import make_tiny_dataset

from gzsl.data.errors import GZSLError
from gzsl.data.preprocessing import Preprocessor
from gzsl.data.sources import ArrayFeatures, LargeTask
from gzsl.evaluation.classifier import SoftmaxSettings
from gzsl.evaluation.metrics import per_class_accuracy
from gzsl.evaluation.protocol import TaskTensors, evaluate_generator
from gzsl.evaluation.streamed import (
    StreamSettings,
    SyntheticBlocks,
    evaluate_streamed,
    sample_per_class,
)
from gzsl.experiments.compare import compare_runs, find_results, read_run
from gzsl.experiments.config import resolve
from gzsl.experiments.rundir import RunDir
from gzsl.experiments.runner import run_experiment
from gzsl.experiments.streamed import run_large
from gzsl.methods.base import SeenData
from gzsl.methods.rows import DeviceRows
from gzsl.methods.vaecflow import VAECFlow

SMALL = dict(iterations=12, batch_size=16, coupling_hidden=16, encoder_hidden=(16, 16),
             decoder_hidden=16, initialisation_size=32, lr=1e-3)
SETTINGS = SoftmaxSettings(lr=0.01, beta1=0.5, batch_size=32, epochs=3)


class CountingFeatures(ArrayFeatures):
    """ArrayFeatures that remembers the largest read, to show no read takes everything."""

    largest = 0

    def read(self, indices: np.ndarray) -> np.ndarray:
        CountingFeatures.largest = max(CountingFeatures.largest, len(indices))
        return super().read(indices)


def large_task(l2: bool = False):
    """The tiny dataset's final task as in-memory arrays and as a LargeTask over them."""
    data = make_tiny_dataset(dim=32)
    task = data.task("final")
    large = LargeTask(
        name="tiny", train=CountingFeatures(task.train_features),
        train_labels=task.train_labels, test_seen=ArrayFeatures(task.test_seen_features),
        test_seen_labels=task.test_seen_labels,
        test_unseen=ArrayFeatures(task.test_unseen_features),
        test_unseen_labels=task.test_unseen_labels, semantics=task.semantics,
        seen_classes=task.seen_classes, unseen_classes=task.unseen_classes,
        class_names=task.class_names, synthetic=True)
    return data, task, large


def fitted_pair(l2: bool):
    """VAE-cFlow fitted once on the preprocessed matrix in memory, once on DeviceRows."""
    _, task, large = large_task()
    prep = Preprocessor("minmax", l2).fit(task.train_features)
    tensors = TaskTensors.from_task(prep.transform_task(task), torch.device("cpu"))
    in_memory = VAECFlow(**SMALL).fit(tensors.seen_data(), rng=torch.Generator().manual_seed(3))
    streamed_prep = Preprocessor("minmax", l2).fit_source(large.train, chunk_rows=7)
    rows = DeviceRows(large.train, "cpu", streamed_prep.transform)
    data = SeenData(rows, tensors.train_labels, tensors.semantics, tensors.seen_classes)
    streamed = VAECFlow(**SMALL).fit(data, rng=torch.Generator().manual_seed(3))
    return in_memory, streamed, rows, prep, streamed_prep


@pytest.mark.parametrize("l2", [False, True])
def test_generator_trained_on_streamed_rows_equals_in_memory(l2):
    CountingFeatures.largest = 0
    in_memory, streamed, rows, prep, streamed_prep = fitted_pair(l2)
    np.testing.assert_array_equal(prep.minimum_, streamed_prep.minimum_)
    np.testing.assert_array_equal(prep.scale_, streamed_prep.scale_)
    for key, value in in_memory.state_dict()["flow"].items():
        assert torch.equal(value, streamed.state_dict()["flow"][key]), key
    for key, value in in_memory.state_dict()["vae"].items():
        assert torch.equal(value, streamed.state_dict()["vae"][key]), key
    assert rows.rows_read > 0
    assert CountingFeatures.largest < len(rows)  # never the whole matrix at once


def test_streamed_preprocessing_refuses_an_empty_training_set():
    with pytest.raises(GZSLError, match="no rows"):
        Preprocessor().fit_source(ArrayFeatures(np.zeros((0, 4), np.float32)))


def test_sample_per_class_keeps_that_many_random_rows_of_each_class():
    labels = np.array([2, 0, 2, 1, 2, 0, 2, 1, 1, 1])
    rows = sample_per_class(labels, 2, torch.Generator().manual_seed(0))
    assert sorted(np.bincount(labels[rows]).tolist()) == [2, 2, 2]
    assert list(labels[rows]) == sorted(labels[rows])
    assert len(set(rows.tolist())) == len(rows)
    np.testing.assert_array_equal(sample_per_class(labels, None, torch.Generator()),
                                  np.arange(10))


def _streamed(model, task, large, prep, rng, say=None, **stream):
    device = torch.device("cpu")
    return evaluate_streamed(
        model, train=large.train, train_labels=large.train_labels, test_seen=large.test_seen,
        test_seen_labels=large.test_seen_labels, test_unseen=large.test_unseen,
        test_unseen_labels=large.test_unseen_labels,
        semantics=torch.as_tensor(large.semantics), seen_classes=torch.as_tensor(
            large.seen_classes), unseen_classes=torch.as_tensor(large.unseen_classes),
        class_names=large.class_names, n_synthetic=20, settings=SETTINGS, rng=rng,
        device=device, transform=prep.transform, zsl=stream.pop("zsl", True),
        stream=StreamSettings(**stream), say=say)


@pytest.mark.parametrize("zsl", [True, False])
def test_streamed_classifier_in_one_block_equals_evaluate_generator(zsl):
    in_memory, _, _, prep, _ = fitted_pair(False)
    _, task, large = large_task()
    tensors = TaskTensors.from_task(prep.transform_task(task), torch.device("cpu"))
    expected = evaluate_generator(in_memory, tensors, n_synthetic=20, settings=SETTINGS,
                                  rng=torch.Generator().manual_seed(5), keep="last", zsl=zsl)
    got = _streamed(in_memory, task, large, prep, torch.Generator().manual_seed(5),
                    seen_per_class=None, score_every_epoch=True, eval_rows=7, zsl=zsl)
    assert got.gzsl == expected.gzsl and got.kept == expected.kept
    assert got.zsl == expected.zsl and got.T1 == expected.T1
    assert got.per_class_seen == expected.per_class_seen
    assert got.per_class_unseen == expected.per_class_unseen
    for key in ("weight", "bias", "classes"):
        assert torch.equal(got.classifier_state[key], expected.classifier_state[key])
    for part in ("test_seen", "test_unseen"):
        assert torch.equal(got.predictions[part], expected.predictions[part])
    # and without scoring the earlier epochs, the last epoch's numbers are the same
    last = _streamed(in_memory, task, large, prep, torch.Generator().manual_seed(5),
                     seen_per_class=None, zsl=zsl)
    assert last.kept == expected.kept and last.T1 == expected.T1
    assert len(last.gzsl) == 1 and math.isnan(last.zsl[0])


def test_streamed_blocks_regenerated_equal_the_materialised_in_memory_mode():
    in_memory, _, _, prep, _ = fitted_pair(False)
    _, task, large = large_task()
    runs = [_streamed(in_memory, task, large, prep, torch.Generator().manual_seed(9),
                      seen_per_class=4, block_rows=50, materialise=materialise)
            for materialise in (False, True)]
    assert runs[0].kept == runs[1].kept and runs[0].T1 == runs[1].T1
    assert torch.equal(runs[0].classifier_state["weight"], runs[1].classifier_state["weight"])
    assert runs[0].per_class_unseen == runs[1].per_class_unseen
    # per-class accuracy from the streamed counts is what the metrics module computes
    predictions = runs[0].predictions["test_unseen"]
    labels = torch.as_tensor(large.test_unseen_labels)
    accuracy = per_class_accuracy(predictions, labels, torch.as_tensor(large.unseen_classes))
    assert runs[0].kept.U == pytest.approx(float(accuracy.mean()), abs=0)


def test_streamed_classifier_writes_progress_lines_for_its_long_phases():
    in_memory, _, _, prep, _ = fitted_pair(False)
    _, task, large = large_task()
    lines = []
    _streamed(in_memory, task, large, prep, torch.Generator().manual_seed(9), say=lines.append,
              progress_seconds=0, eval_rows=16)
    text = "\n".join(lines)
    assert "classifier: epoch 3/3" in text and "rows trained" in text
    assert "scoring test_unseen, 16/" in text and "scoring test_unseen (ZSL)" in text


def test_synthetic_blocks_hold_whole_classes_and_regenerate_identically():
    in_memory, *_ = fitted_pair(False)
    semantics = torch.rand(20, 6, generator=torch.Generator().manual_seed(0))
    classes = torch.arange(12, 20)
    blocks = SyntheticBlocks(in_memory, semantics, classes, 20, block_rows=50,
                             rng=torch.Generator().manual_seed(1))
    assert [len(g) for g in blocks.groups] == [2, 2, 2, 2]
    assert blocks.rows == 160 and blocks.labels(1).tolist() == [14] * 20 + [15] * 20
    first = blocks.features(2)
    assert torch.equal(first, blocks.features(2))
    assert not torch.equal(first, blocks.features(1))
    assert blocks.synthesised_rows == 120  # nothing kept: made again when asked again


def test_run_large_writes_the_same_results_as_the_in_memory_run(tmp_path):
    data, _, large = large_task()
    settings = {f"method.{k}": v for k, v in SMALL.items()}
    config = resolve("vaecflow", "tiny", selection="final", device="cpu", seed=4,
                     values={**settings, "evaluation.n_synthetic": 20,
                             "evaluation.classifier_epochs": 2,
                             "evaluation.classifier_batch_size": 32,
                             "evaluation.checkpoint_every": 5})
    expected = run_experiment(config, data=data, out=tmp_path / "memory")
    result, _, _ = run_large(config, large, out=tmp_path / "streamed",
                             stream=StreamSettings(seen_per_class=None))
    for key in ("U", "S", "H", "T1", "per_class"):
        assert getattr(result, key) == getattr(expected, key), key
    run = RunDir(tmp_path / "streamed")
    saved = run.results()
    assert saved["H"] == expected.H and saved["synthetic_data"] is True
    assert run.classifier()["classifier"]["weight"].shape == (20, 32)
    assert run.predictions() is not None and run.generator().is_fitted()
    assert json.loads(run.file("metadata.json").read_text())["streamed"]["seen_per_class"] \
        is None
    assert run.file("checkpoints.csv").read_text().count("\n") == 4  # header + 5, 10, 12
    groups = compare_runs(read_run(path) for path in find_results([tmp_path]))
    assert sum(len(group.runs) for group in groups) == 2  # gzsl compare reads both
    assert all(group.mean["H"] == pytest.approx(expected.H) for group in groups)


def test_run_large_refuses_what_it_cannot_stream():
    _, _, large = large_task()
    with pytest.raises(GZSLError, match="no validation classes"):
        run_large(resolve("vaecflow", "tiny", selection="val", device="cpu"), large)
    with pytest.raises(GZSLError, match="trains from batches"):
        run_large(resolve("gsmflow", "tiny", selection="final", device="cpu"), large)
