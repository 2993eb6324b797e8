"""Linear SVM classifiers: plain, and AMAZ's class-weighted version (Eq. 14)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gzsl.data.errors import GZSLError
from gzsl.evaluation.svm import LinearSVMClassifier, class_quality_weights


def _blobs(centres: list[list[float]], per_class: int, spread: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    features = np.concatenate([rng.normal(c, spread, size=(per_class, len(c))) for c in centres])
    labels = np.repeat(np.arange(len(centres)) * 10 + 3, per_class)  # non-contiguous ids
    return features, labels


def test_class_weights_are_per_class_mean_quality():
    labels = np.array([7, 7, 2, 2, 2, 9])
    quality = np.array([0.5, 0.7, 0.1, 0.4, 0.4, -0.2])
    weights = class_quality_weights(labels, quality, min_weight=0.05)
    assert weights == pytest.approx({7: 0.6, 2: 0.3, 9: 0.05})


def test_separable_classes_are_learned_with_columns_in_class_order():
    features, labels = _blobs([[0, 0], [6, 0], [0, 6]], 30, 0.5)
    for weighted in (False, True):
        model = LinearSVMClassifier(class_weighted=weighted).fit(features, labels)
        scores = model.decision_function(features)
        assert scores.shape == (90, 3)
        np.testing.assert_array_equal(model.classes_, [3, 13, 23])
        np.testing.assert_array_equal(model.predict(features), labels)
        np.testing.assert_array_equal(model.classes_[scores.argmax(1)], labels)


def test_two_classes_give_two_score_columns():
    features, labels = _blobs([[0, 0], [4, 4]], 20, 0.5)
    model = LinearSVMClassifier().fit(torch.as_tensor(features), torch.as_tensor(labels))
    scores = model.decision_function(features)
    assert scores.shape == (40, 2)
    np.testing.assert_allclose(scores[:, 0], -scores[:, 1])
    np.testing.assert_array_equal(model.predict(features), model.svm_.predict(features))


def test_low_quality_class_loses_ground_to_high_quality_class():
    # Two overlapping classes; class 3 has poor synthetic samples (quality 0.1).
    features, labels = _blobs([[0.0], [1.0]], 200, 1.0)
    quality = np.where(labels == 3, 0.1, 1.0)
    grid = np.linspace(-3, 4, 701)[:, None]
    plain = LinearSVMClassifier().fit(features, labels)
    weighted = LinearSVMClassifier(class_weighted=True).fit(features, labels, quality)
    assert weighted.class_weight_ == pytest.approx({3: 0.1, 13: 1.0})
    share_plain = np.mean(plain.predict(grid) == 3)
    share_weighted = np.mean(weighted.predict(grid) == 3)
    assert share_weighted < share_plain - 0.05


def test_class_weighting_uses_only_class_means():
    features, labels = _blobs([[0.0, 0.0], [1.5, 0.0], [0.0, 1.5]], 40, 1.0)
    rng = np.random.default_rng(1)
    uneven = rng.uniform(0.1, 0.9, size=len(labels))
    # Same class means, spread differently over the samples.
    index = np.unique(labels, return_inverse=True)[1]
    means = np.bincount(index, uneven) / np.bincount(index)
    even = means[index]
    a = LinearSVMClassifier(class_weighted=True).fit(features, labels, uneven)
    b = LinearSVMClassifier(class_weighted=True).fit(features, labels, even)
    np.testing.assert_allclose(a.decision_function(features), b.decision_function(features))
    # ...while as per-sample weights they give a different model.
    c = LinearSVMClassifier().fit(features, labels, uneven)
    d = LinearSVMClassifier().fit(features, labels, even)
    assert not np.allclose(c.decision_function(features), d.decision_function(features))


def test_unit_quality_weighting_equals_the_plain_svm():
    features, labels = _blobs([[0.0, 0.0], [1.5, 0.0], [0.0, 1.5]], 40, 1.0)
    plain = LinearSVMClassifier().fit(features, labels)
    weighted = LinearSVMClassifier(class_weighted=True).fit(features, labels,
                                                            np.ones(len(labels)))
    np.testing.assert_allclose(plain.decision_function(features),
                               weighted.decision_function(features))


def test_negative_sample_weights_count_as_zero():
    features, labels = _blobs([[0.0, 0.0], [1.5, 0.0]], 40, 1.0)
    weights = np.linspace(-0.5, 1.0, len(labels))
    a = LinearSVMClassifier().fit(features, labels, weights)
    b = LinearSVMClassifier().fit(features, labels, np.clip(weights, 0, None))
    np.testing.assert_allclose(a.decision_function(features), b.decision_function(features))


def test_one_class_is_an_error():
    with pytest.raises(GZSLError, match="at least 2 classes"):
        LinearSVMClassifier().fit(np.zeros((4, 2)), np.ones(4, dtype=int))
