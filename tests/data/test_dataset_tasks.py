"""Tasks cut from a dataset: the final split, and a validation task free of test images."""

import numpy as np
import pytest

from gzsl.data.errors import DataError
from gzsl.data.preprocessing import Preprocessor


def test_final_task_matches_splits(tiny_dataset):
    task = tiny_dataset.task("final")
    assert task.seen_classes.tolist() == list(range(12))
    assert task.unseen_classes.tolist() == list(range(12, 20))
    assert len(task.train_labels) == len(tiny_dataset.splits["trainval"])
    assert not set(task.train_labels) & set(task.test_unseen_labels)


def test_validation_task_uses_only_trainval_images(tiny_dataset):
    task = tiny_dataset.task("validation")
    trainval_rows = {tuple(r) for r in tiny_dataset.features[tiny_dataset.splits["trainval"]]}
    for features in (task.train_features, task.test_seen_features, task.test_unseen_features):
        assert all(tuple(r) in trainval_rows for r in features)
    assert task.seen_classes.tolist() == list(range(8))
    assert task.unseen_classes.tolist() == [8, 9, 10, 11]
    held = {tuple(r) for r in task.test_seen_features}
    assert not held & {tuple(r) for r in task.train_features}
    held_share = len(task.test_seen_labels) / (len(task.train_labels) + len(task.test_seen_labels))
    assert 0.1 < held_share < 0.3


def test_validation_task_missing_split_is_clear(tiny_dataset):
    from dataclasses import replace

    splits = {k: v for k, v in tiny_dataset.splits.items() if k not in ("train", "val")}
    data = replace(tiny_dataset, splits=splits)
    with pytest.raises(DataError, match="no validation split"):
        data.task("validation")


def test_minmax_fitted_on_training_features_only(tiny_dataset):
    task = tiny_dataset.task("final")
    prepared = Preprocessor("minmax").transform_task(task)
    assert np.allclose(prepared.train_features.min(0), 0, atol=1e-6)
    assert np.allclose(prepared.train_features.max(0), 1, atol=1e-6)
    # test features use the training statistics, so they may leave [0, 1]
    expected = (task.test_unseen_features - task.train_features.min(0)) / (
        task.train_features.max(0) - task.train_features.min(0))
    assert np.allclose(prepared.test_unseen_features, expected, atol=1e-5)


def test_l2_after_scaling_and_constant_dimension():
    features = np.array([[1.0, 5.0], [3.0, 5.0]], dtype=np.float32)
    prep = Preprocessor("minmax", l2=True).fit(features)
    out = prep.transform(features)
    assert np.allclose(out, [[0.0, 0.0], [1.0, 0.0]])  # zero row stays zero, no NaN
    assert Preprocessor("none").fit(features).transform(features).tolist() == features.tolist()
