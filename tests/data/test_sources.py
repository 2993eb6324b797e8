"""The in-memory FeatureSource and the LargeTask row/label agreement check."""

from __future__ import annotations

import numpy as np
import pytest

from gzsl.data.errors import DataError
from gzsl.data.sources import ArrayFeatures, FeatureSource, LargeTask


def test_array_features_reads_rows_in_the_order_asked() -> None:
    matrix = np.arange(12, dtype=np.float64).reshape(4, 3)
    source = ArrayFeatures(matrix)
    assert isinstance(source, FeatureSource)
    assert source.shape == (4, 3) and len(source) == 4
    rows = source.read(np.array([3, 0, 3]))
    assert rows.dtype == np.float32
    np.testing.assert_array_equal(rows, matrix[[3, 0, 3]].astype(np.float32))


def test_array_features_refuses_a_vector() -> None:
    with pytest.raises(DataError, match="2-D"):
        ArrayFeatures(np.zeros(3))


def test_large_task_refuses_rows_without_labels() -> None:
    features = ArrayFeatures(np.zeros((3, 2), dtype=np.float32))
    labels = np.zeros(3, dtype=np.int64)
    with pytest.raises(DataError, match="test_unseen has 3 feature rows but 2 labels"):
        LargeTask("t", features, labels, features, labels, features, labels[:2],
                  np.eye(2, dtype=np.float32), np.array([0]), np.array([1]), ("a", "b"))
