"""Feature preprocessing fitted on training features only, and recorded in every result.

The papers' reference code min-max scales each feature dimension with statistics of the
training images and applies the same map to test images; optional L2 normalisation of
each row follows. Fitting on test features is never possible through this API: ``fit``
takes the training matrix and ``transform_task`` applies it to a whole task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from gzsl.data.dataset import Task
from gzsl.data.errors import DataError
from gzsl.data.sources import FeatureSource

Scaling = Literal["minmax", "none"]


@dataclass
class Preprocessor:
    """Per-dimension min-max scaling (or none), then optional row-wise L2 normalisation.

    Attributes:
        scaling: ``"minmax"`` (the papers' choice) or ``"none"``.
        l2: normalise each feature row to unit L2 norm after scaling.
    """

    scaling: Scaling = "minmax"
    l2: bool = False

    def fit(self, train_features: np.ndarray) -> Preprocessor:
        """Learn per-dimension minimum and range from training features only."""
        return self._set_statistics(train_features.min(axis=0), train_features.max(axis=0))

    def _set_statistics(self, minimum: np.ndarray, maximum: np.ndarray) -> Preprocessor:
        if self.scaling not in ("minmax", "none"):
            raise ValueError(f"unknown scaling {self.scaling!r}; expected 'minmax' or 'none'")
        self.minimum_ = minimum.astype(np.float32)
        span = maximum.astype(np.float32) - self.minimum_
        self.scale_ = np.where(span > 0, span, 1.0).astype(np.float32)
        return self

    def fit_source(self, source: FeatureSource, chunk_rows: int = 65536) -> Preprocessor:
        """:meth:`fit` on a :class:`FeatureSource` read ``chunk_rows`` rows at a time.

        Minimum and maximum are exact whatever the order rows come in, so the statistics
        equal :meth:`fit`'s on the whole matrix bit for bit, without holding it in memory.
        """
        n, dim = source.shape
        if n == 0:
            raise DataError("cannot fit preprocessing on a training set with no rows")
        minimum = np.full(dim, np.inf, dtype=np.float32)
        maximum = np.full(dim, -np.inf, dtype=np.float32)
        for start in range(0, n, chunk_rows):
            rows = source.read(np.arange(start, min(start + chunk_rows, n)))
            np.minimum(minimum, rows.min(axis=0), out=minimum)
            np.maximum(maximum, rows.max(axis=0), out=maximum)
        return self._set_statistics(minimum, maximum)

    def transform(self, features: np.ndarray) -> np.ndarray:
        out = features.astype(np.float32, copy=True)
        if self.scaling == "minmax":
            out -= self.minimum_
            out /= self.scale_
        if self.l2:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out /= np.where(norms > 0, norms, 1.0)
        return out

    def transform_task(self, task: Task) -> Task:
        """Fit on ``task``'s training features, then transform all three splits."""
        self.fit(task.train_features)
        return task.with_features(self.transform(task.train_features),
                                  self.transform(task.test_seen_features),
                                  self.transform(task.test_unseen_features))

    def describe(self) -> dict:
        """What was done, for run metadata and results."""
        return {"scaling": self.scaling, "l2": self.l2, "fitted_on": "training features only"}
