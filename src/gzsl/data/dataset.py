"""The dataset object every loader produces, and the tasks derived from it.

A :class:`GZSLData` holds all images of a benchmark once (features and 0-based class
labels), the class semantic matrix, and index sets into the images (0-based). A
:class:`Task` is one GZSL problem cut from it: training images of the seen classes,
test images of seen and unseen classes. Two tasks exist:

* ``final``: the proposed split (``trainval`` / ``test_seen`` / ``test_unseen``).
* ``validation``: built only from ``trainval`` images, so no final test image is ever
  touched while choosing hyperparameters. The xlsa17 ``train_loc`` classes play seen
  and ``val_loc`` classes play unseen; a fixed share of each train class's trainval
  images is held out as the validation test-seen set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from gzsl.data.errors import DataError

TaskName = Literal["final", "validation"]

#: Share of each validation-seen class's images held out as validation test-seen.
VALIDATION_HOLDOUT = 0.2
#: Seed of the (fixed, data-independent) validation hold-out draw.
VALIDATION_SEED = 0


@dataclass(frozen=True)
class GZSLData:
    """All images of one dataset plus its class semantics and split index sets.

    Attributes:
        name: dataset name shown to users (``"AWA2"``, ``"demo"``...).
        features: ``(N, D)`` float32 visual features, one row per image.
        labels: ``(N,)`` int64 class ids, 0-based, indexing ``semantics`` rows.
        semantics: ``(C, A)`` float32 class semantic vectors (attributes or embeddings).
        class_names: ``C`` names (``"class_0"``... when the files carry none).
        splits: 0-based image index sets; always ``trainval``, ``test_seen``,
            ``test_unseen``; ``train`` and ``val`` when the files give a validation split.
        source: provenance shown in run metadata (layout, files, checksums, notes).
        synthetic: True when the features are generated, not extracted from images.
    """

    name: str
    features: np.ndarray
    labels: np.ndarray
    semantics: np.ndarray
    class_names: tuple[str, ...]
    splits: dict[str, np.ndarray]
    source: dict = field(default_factory=dict)
    synthetic: bool = False

    @property
    def n_classes(self) -> int:
        return int(self.semantics.shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.features.shape[1])

    @property
    def semantic_dim(self) -> int:
        return int(self.semantics.shape[1])

    @property
    def seen_classes(self) -> np.ndarray:
        """Sorted ids of the classes with training images (classes of ``trainval``)."""
        return np.unique(self.labels[self.splits["trainval"]])

    @property
    def unseen_classes(self) -> np.ndarray:
        """Sorted ids of the classes of ``test_unseen``."""
        return np.unique(self.labels[self.splits["test_unseen"]])

    @property
    def has_validation(self) -> bool:
        return "train" in self.splits and "val" in self.splits

    def task(self, name: TaskName = "final") -> Task:
        """Cut the ``final`` or ``validation`` task out of the dataset."""
        if name == "final":
            s = self.splits
            return Task(
                name="final",
                train_features=self.features[s["trainval"]],
                train_labels=self.labels[s["trainval"]],
                test_seen_features=self.features[s["test_seen"]],
                test_seen_labels=self.labels[s["test_seen"]],
                test_unseen_features=self.features[s["test_unseen"]],
                test_unseen_labels=self.labels[s["test_unseen"]],
                semantics=self.semantics,
                seen_classes=self.seen_classes,
                unseen_classes=self.unseen_classes,
                class_names=self.class_names,
            )
        if name == "validation":
            return self._validation_task()
        raise ValueError(f"unknown task {name!r}; expected 'final' or 'validation'")

    def _validation_task(self) -> Task:
        if not self.has_validation:
            raise DataError(
                f"dataset {self.name!r} has no validation split",
                fix="the split file lacks train_loc / val_loc: add them (0-based 'train_loc' "
                "and 'val_loc' in the .npz layout, see `gzsl data convert --help`), or run "
                "with --selection final or --selection test-oracle",
            )
        trainval = self.splits["trainval"]
        train_classes = np.unique(self.labels[self.splits["train"]])
        val_classes = np.unique(self.labels[self.splits["val"]])
        val_classes = np.setdiff1d(val_classes, train_classes)
        pool_labels = self.labels[trainval]
        rng = np.random.default_rng(VALIDATION_SEED)
        fit_parts, held_parts = [], []
        for c in train_classes:
            members = trainval[pool_labels == c]
            if len(members) == 0:
                continue
            shuffled = rng.permutation(members)
            n_held = int(round(VALIDATION_HOLDOUT * len(members)))
            n_held = min(max(n_held, 1), len(members) - 1) if len(members) > 1 else 0
            held_parts.append(shuffled[:n_held])
            fit_parts.append(shuffled[n_held:])
        fit_idx = np.sort(np.concatenate(fit_parts))
        held_idx = np.sort(np.concatenate(held_parts))
        unseen_idx = trainval[np.isin(pool_labels, val_classes)]
        return Task(
            name="validation",
            train_features=self.features[fit_idx],
            train_labels=self.labels[fit_idx],
            test_seen_features=self.features[held_idx],
            test_seen_labels=self.labels[held_idx],
            test_unseen_features=self.features[unseen_idx],
            test_unseen_labels=self.labels[unseen_idx],
            semantics=self.semantics,
            seen_classes=np.unique(self.labels[fit_idx]),
            unseen_classes=np.unique(self.labels[unseen_idx]),
            class_names=self.class_names,
        )

    def summary(self) -> dict:
        """Counts a user checks first: classes, images per split, dimensions."""
        out = {
            "name": self.name,
            "synthetic": self.synthetic,
            "images": int(self.features.shape[0]),
            "feature_dim": self.feature_dim,
            "semantic_dim": self.semantic_dim,
            "classes": self.n_classes,
            "seen_classes": int(len(self.seen_classes)),
            "unseen_classes": int(len(self.unseen_classes)),
        }
        out.update({f"images_{k}": int(len(v)) for k, v in self.splits.items()})
        return out


@dataclass(frozen=True)
class Task:
    """One GZSL problem: seen-class training data and seen / unseen test data.

    Labels are global class ids (rows of ``semantics``). Nothing here is preprocessed;
    see :mod:`gzsl.data.preprocessing`.
    """

    name: str
    train_features: np.ndarray
    train_labels: np.ndarray
    test_seen_features: np.ndarray
    test_seen_labels: np.ndarray
    test_unseen_features: np.ndarray
    test_unseen_labels: np.ndarray
    semantics: np.ndarray
    seen_classes: np.ndarray
    unseen_classes: np.ndarray
    class_names: tuple[str, ...]

    def with_features(self, train: np.ndarray, test_seen: np.ndarray,
                      test_unseen: np.ndarray) -> Task:
        """The same task with its three feature matrices replaced (after preprocessing)."""
        return Task(self.name, train, self.train_labels, test_seen, self.test_seen_labels,
                    test_unseen, self.test_unseen_labels, self.semantics, self.seen_classes,
                    self.unseen_classes, self.class_names)
