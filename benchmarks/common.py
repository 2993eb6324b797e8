"""Helpers shared by the benchmark scripts: generated data, device timing, method call sites.

Every call into the method API that takes the random generator goes through
:func:`fit`, :func:`sample`, :func:`fit_classifier` and :func:`evaluate` below, so a
change of that API is adapted here, once, for every benchmark.
"""

from __future__ import annotations

import resource
from typing import Any

import numpy as np
import torch

from gzsl.data.dataset import GZSLData
from gzsl.evaluation.classifier import SoftmaxClassifier
from gzsl.evaluation.protocol import Evaluation, TaskTensors, evaluate_generator
from gzsl.methods.base import CheckpointSchedule, Generator, SeenData


def fit(method: Generator, data: SeenData, rng: torch.Generator,
        schedule: CheckpointSchedule | None = None) -> Generator:
    """``method.fit`` with the benchmark's random generator."""
    return method.fit(data, schedule=schedule, rng=rng)


def sample(method: Generator, semantics: torch.Tensor, n_per_class: int,
           rng: torch.Generator) -> torch.Tensor:
    """``method.sample`` with the benchmark's random generator."""
    return method.sample(semantics, n_per_class, rng=rng)


def fit_classifier(classifier: SoftmaxClassifier, features: torch.Tensor, labels: torch.Tensor,
                   rng: torch.Generator) -> SoftmaxClassifier:
    """``SoftmaxClassifier.fit`` with the benchmark's random generator."""
    return classifier.fit(features, labels, rng=rng)


def evaluate(method: Generator, task: TaskTensors, rng: torch.Generator,
             **settings: Any) -> Evaluation:
    """One :func:`evaluate_generator` call (synthesis + final classifiers + scoring)."""
    return evaluate_generator(method, task, rng=rng, **settings)


def generated_dataset(n_train: int, n_test_seen: int, n_test_unseen: int, feature_dim: int,
                      semantic_dim: int, n_seen: int, n_unseen: int, seed: int = 0) -> GZSLData:
    """Random non-negative features at a benchmark's sizes (timing only; SYNTHETIC)."""
    rng = np.random.default_rng(seed)
    n_classes = n_seen + n_unseen
    semantics = rng.random((n_classes, semantic_dim), dtype=np.float32)
    semantics /= np.linalg.norm(semantics, axis=1, keepdims=True)
    seen_labels = rng.integers(0, n_seen, n_train + n_test_seen)
    unseen_labels = rng.integers(n_seen, n_classes, n_test_unseen)
    labels = np.concatenate([seen_labels, unseen_labels]).astype(np.int64)
    features = rng.random((len(labels), feature_dim), dtype=np.float32)
    index = np.arange(len(labels))
    return GZSLData(
        name="generated", features=features, labels=labels, semantics=semantics,
        class_names=tuple(f"class_{c}" for c in range(n_classes)),
        splits={"trainval": index[:n_train], "test_seen": index[n_train:n_train + n_test_seen],
                "test_unseen": index[n_train + n_test_seen:]},
        source={"layout": "generated on the fly by benchmarks/ (SYNTHETIC)"},
        synthetic=True)


def peak_memory(device: torch.device) -> dict[str, float]:
    """Peak host RSS and, on CUDA, peak allocated GPU memory (GiB) of this process so far."""
    out = {"host_max_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    if device.type == "cuda":
        out["gpu_peak_allocated_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a wall-clock reading covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
