"""Feature rows read from a :class:`~gzsl.data.sources.FeatureSource` as they are indexed.

A method trained at ImageNet-21K scale cannot hold its 1.28M x 2048 seen training matrix
on the device. :class:`DeviceRows` stands in for ``SeenData.features``: indexing it with a
batch of row numbers reads just those rows, preprocesses them and moves them to the device
once, so a method whose training loop only takes ``len(features)``, ``features.shape``
and ``features[index]`` (those that declare ``Generator.trains_from_batches``) trains on
it unchanged, with the same numbers as on the whole matrix in memory.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from gzsl.data.sources import FeatureSource

#: Maps float32 rows ``(n, D)`` to preprocessed float32 rows (row by row, no state).
RowTransform = Callable[[np.ndarray], np.ndarray]


class DeviceRows:
    """A read-only ``(N, D)`` float32 "tensor" whose rows are read on demand.

    Args:
        source: where the rows are.
        device: where indexed rows are returned.
        transform: applied to each read batch (a fitted
            :meth:`~gzsl.data.preprocessing.Preprocessor.transform`); None: rows as read.

    Attributes:
        rows_read: rows read from ``source`` so far (tests and benchmarks check the
            matrix is never read whole).
    """

    ndim = 2
    dtype = torch.float32

    def __init__(self, source: FeatureSource, device: torch.device | str,
                 transform: RowTransform | None = None) -> None:
        self.source = source
        self.device = torch.device(device)
        self.transform = transform
        self.rows_read = 0

    @property
    def shape(self) -> torch.Size:
        return torch.Size(self.source.shape)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: Tensor | np.ndarray | slice) -> Tensor:
        """The rows ``index`` (a 1-D integer tensor or array, or a slice), on the device."""
        if isinstance(index, slice):
            rows = np.arange(len(self))[index]
        elif isinstance(index, Tensor):
            rows = index.detach().to("cpu", torch.int64).numpy()
        else:
            rows = np.asarray(index, dtype=np.int64)
        if rows.ndim != 1:
            raise TypeError(f"DeviceRows takes a 1-D index, got shape {rows.shape}")
        values = self.source.read(rows)
        if self.transform is not None:
            values = self.transform(values)
        self.rows_read += len(rows)
        return torch.as_tensor(np.ascontiguousarray(values, dtype=np.float32),
                               device=self.device)

    def size(self, dim: int | None = None) -> torch.Size | int:
        return self.shape if dim is None else self.shape[dim]

    def __repr__(self) -> str:
        return f"DeviceRows(shape={tuple(self.shape)}, device={self.device})"
