"""Linear SVM final classifiers: plain, and AMAZ's class-weighted linear SVM (Eq. 14).

AMAZ (Sec. II-E) trains a linear SVM on the training features (real or synthetic) and,
in its weighted version, gives every class ``y`` the weight ``w_y = mean of Q(a') over the
class's synthetic samples`` (Eq. 14), where ``Q`` is the cosine between the class attribute
and the attribute discriminator's reconstruction of the sample (Eq. 12, the generator's
:meth:`~gzsl.methods.base.Generator.instance_weights`). The class weight multiplies the
SVM's penalty ``C`` for that class's samples, so a class with poor synthetic samples pulls
the decision boundaries less. Built on scikit-learn's :class:`~sklearn.svm.LinearSVC`
(one-vs-rest, squared hinge loss).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.svm import LinearSVC

from gzsl.data.errors import GZSLError


def class_quality_weights(labels: np.ndarray, quality: np.ndarray, *,
                          min_weight: float = 1e-3) -> dict[Any, float]:
    """Eq. 14: each class's mean sample quality, floored at ``min_weight``.

    The floor keeps every class's SVM penalty positive (a cosine can be zero or negative;
    LinearSVC needs positive weights).
    """
    labels, quality = np.asarray(labels), np.asarray(quality, dtype=np.float64)
    if quality.shape != labels.shape:
        raise GZSLError(f"sample weights have shape {quality.shape}; expected one per "
                        f"label, {labels.shape}")
    classes, index = np.unique(labels, return_inverse=True)
    sums = np.bincount(index, weights=quality, minlength=len(classes))
    means = sums / np.bincount(index, minlength=len(classes))
    return {c.item(): float(max(m, min_weight)) for c, m in zip(classes, means, strict=True)}


class LinearSVMClassifier:
    """Linear SVM over the classes seen in ``fit``; class-weighted per Eq. 14 on request.

    Args:
        class_weighted: weight each class by the mean of its samples' ``sample_weight``
            (Eq. 14) instead of weighting samples one by one.
        C: penalty of the hinge loss (scaled per class when ``class_weighted``).
        max_iter, tol: LinearSVC's solver limits.
        min_weight: floor of the Eq. 14 class weights.
        random_state: seed of LinearSVC's coordinate-descent order.
    """

    def __init__(self, class_weighted: bool = False, C: float = 1.0, *, max_iter: int = 1000,
                 tol: float = 1e-4, min_weight: float = 1e-3,
                 random_state: int | None = 0) -> None:
        self.class_weighted = class_weighted
        self.C = C
        self.max_iter = max_iter
        self.tol = tol
        self.min_weight = min_weight
        self.random_state = random_state

    def fit(self, features: np.ndarray, labels: np.ndarray,
            sample_weight: np.ndarray | None = None) -> LinearSVMClassifier:
        """Train on ``features`` (N, D) and ``labels`` (N,); returns self.

        ``sample_weight`` holds each sample's quality (1 for real samples). With
        ``class_weighted`` it only enters through the Eq. 14 class means; otherwise it
        weights samples individually, as in scikit-learn (negative values count as 0).
        """
        features, labels = _numpy(features), _numpy(labels)
        classes = np.unique(labels)
        if len(classes) < 2:
            raise GZSLError(f"a linear SVM needs at least 2 classes; the training labels "
                            f"hold {len(classes)}")
        weights = None if sample_weight is None else _numpy(sample_weight).astype(np.float64)
        self.class_weight_: dict[Any, float] | None = None
        self.svm_ = LinearSVC(C=self.C, max_iter=self.max_iter, tol=self.tol,
                              random_state=self.random_state)
        if self.class_weighted:
            quality = np.ones(len(labels)) if weights is None else weights
            self.class_weight_ = class_quality_weights(labels, quality,
                                                       min_weight=self.min_weight)
            self.svm_.set_params(class_weight=self.class_weight_)
            self.svm_.fit(features, labels)
        else:
            self.svm_.fit(features, labels,
                          sample_weight=None if weights is None else np.clip(weights, 0, None))
        self.classes_ = self.svm_.classes_
        return self

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        """``(N, n_classes)`` one-vs-rest scores, columns in ``classes_`` order."""
        scores = self.svm_.decision_function(_numpy(features))
        if scores.ndim == 1:  # two classes: scikit-learn gives the positive class's score only
            scores = np.stack([-scores, scores], axis=1)
        return scores

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The class of the highest score for each row."""
        return self.classes_[np.argmax(self.decision_function(features), axis=1)]


def _numpy(values: Any) -> np.ndarray:
    """Arrays as NumPy; torch tensors on any device are copied to the host."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)
