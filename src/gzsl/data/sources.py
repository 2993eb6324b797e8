"""Feature matrices that need not fit in memory, and the GZSL task built from them.

ImageNet-21K's splits (VAE-cFlow, Sec. 4.2) hold millions of 2048-d features, more
than a machine's RAM in float32. Everything that trains or evaluates at that scale
reads rows through :class:`FeatureSource`: an in-memory array
(:class:`ArrayFeatures`, for small data and for tests that pin the streamed path to
the in-memory one) and an on-disk store implement the same three members, so the
streamed code never knows which it reads.

The on-disk implementation is :class:`gzsl.data.store.OnDiskFeatures` (a float16
matrix on disk, read a few rows at a time); :func:`gzsl.data.imagenet.load_large_task`
builds the ``LargeTask`` of an ``IMAGENET-<SPLIT>`` dataset from a store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from gzsl.data.errors import DataError


@runtime_checkable
class FeatureSource(Protocol):
    """Rows of an ``(N, D)`` feature matrix, read on demand.

    ``read`` returns float32 rows in the order of ``indices`` (which may repeat and
    need not be sorted); an implementation backed by a file may sort internally to
    read in order, but must give the rows back in the order asked.
    """

    @property
    def shape(self) -> tuple[int, int]: ...

    def __len__(self) -> int: ...

    def read(self, indices: np.ndarray) -> np.ndarray: ...


class ArrayFeatures:
    """A :class:`FeatureSource` over an array already in memory (no copy is made)."""

    def __init__(self, features: np.ndarray) -> None:
        if features.ndim != 2:
            raise DataError(f"features must be a 2-D matrix, got shape {features.shape}")
        self._features = features

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self._features.shape[0]), int(self._features.shape[1]))

    def __len__(self) -> int:
        return int(self._features.shape[0])

    def read(self, indices: np.ndarray) -> np.ndarray:
        return np.asarray(self._features[np.asarray(indices, dtype=np.int64)],
                          dtype=np.float32)


@dataclass(frozen=True)
class LargeTask:
    """One GZSL problem whose feature matrices are :class:`FeatureSource` s.

    The out-of-core counterpart of :class:`gzsl.data.dataset.Task`: labels, semantics
    and class lists are small and live in memory; features are read in batches.
    Labels are global class ids (rows of ``semantics``).
    """

    name: str
    train: FeatureSource
    train_labels: np.ndarray
    test_seen: FeatureSource
    test_seen_labels: np.ndarray
    test_unseen: FeatureSource
    test_unseen_labels: np.ndarray
    semantics: np.ndarray
    seen_classes: np.ndarray
    unseen_classes: np.ndarray
    class_names: tuple[str, ...]
    synthetic: bool = False
    source: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for part in ("train", "test_seen", "test_unseen"):
            rows = len(getattr(self, part))
            labels = len(getattr(self, f"{part}_labels"))
            if rows != labels:
                raise DataError(f"{self.name}: {part} has {rows} feature rows but {labels} "
                                f"labels")
