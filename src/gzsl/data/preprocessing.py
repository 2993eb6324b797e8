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
        if self.scaling not in ("minmax", "none"):
            raise ValueError(f"unknown scaling {self.scaling!r}; expected 'minmax' or 'none'")
        self.minimum_ = train_features.min(axis=0).astype(np.float32)
        span = train_features.max(axis=0).astype(np.float32) - self.minimum_
        self.scale_ = np.where(span > 0, span, 1.0).astype(np.float32)
        return self

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
