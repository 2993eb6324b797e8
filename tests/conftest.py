"""Shared fixtures: the real xlsa17 split files from ../shared, and tiny seen-class data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gzsl.methods.base import SeenData

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
XLSA17 = SHARED / "xlsa17"


@pytest.fixture(scope="session")
def xlsa17_dir() -> Path:
    """``../shared/xlsa17`` beside the checkout; tests using it skip when it is absent."""
    if not XLSA17.is_dir():
        pytest.skip(f"real split files not found: {XLSA17} is absent (it sits beside the "
                    "checkout in the development and CI set-up)")
    return XLSA17


@pytest.fixture
def tiny_seen_data() -> SeenData:
    """Six seen classes of 8-d features in four separated clusters, plus two unseen classes."""
    g = torch.Generator().manual_seed(0)
    n_classes, per_class, dim, sem_dim = 8, 30, 8, 5
    semantics = torch.rand(n_classes, sem_dim, generator=g)
    projection = torch.randn(sem_dim, dim, generator=g)
    centres = semantics @ projection
    seen = torch.arange(6)
    labels = seen.repeat_interleave(per_class)
    features = centres[labels] + 0.1 * torch.randn(len(labels), dim, generator=g)
    features = (features - features.min(0).values) / (features.max(0).values - features.min(0).values)
    return SeenData(features=features, labels=labels, class_semantics=semantics, seen_classes=seen)
