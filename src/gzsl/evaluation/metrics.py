"""The standard GZSL metrics: per-class mean top-1 accuracy, U, S, H and ZSL T1.

All functions take tensors on any device and are vectorised (``bincount`` over classes,
no Python loop over samples or classes). Accuracies are fractions in [0, 1]; the
experiment layer reports percentages.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def per_class_accuracy(predictions: Tensor, labels: Tensor, classes: Tensor) -> Tensor:
    """Hit rate of each class in ``classes`` (``(K,)``), over the samples whose label it is.

    A class in ``classes`` with no samples gets NaN (it cannot be scored) and is left out
    of :func:`mean_class_accuracy`.
    """
    classes = classes.to(labels.device)
    n_max = int(max(int(classes.max()), int(labels.max()))) + 1 if len(labels) else len(classes)
    return accuracy_from_counts(*class_hits(predictions, labels, n_max), classes)


def class_hits(predictions: Tensor, labels: Tensor, n_classes: int) -> tuple[Tensor, Tensor]:
    """``(hits, totals)``: float64 ``(n_classes,)`` counts of correct predictions and of
    samples per global class id (ids ``>= n_classes`` lengthen both).

    Counts add up over batches, so streamed evaluation sums them batch by batch and
    :func:`accuracy_from_counts` turns the sums into the same accuracies as
    :func:`per_class_accuracy` on all predictions at once.
    """
    hits = torch.bincount(labels[predictions == labels], minlength=n_classes).to(torch.float64)
    totals = torch.bincount(labels, minlength=n_classes).to(torch.float64)
    return hits, totals


def accuracy_from_counts(hits: Tensor, totals: Tensor, classes: Tensor) -> Tensor:
    """Per-class hit rate of ``classes`` from :func:`class_hits` counts (NaN: no samples)."""
    hits, totals = hits[classes], totals[classes]
    return torch.where(totals > 0, hits / totals.clamp_min(1), torch.full_like(hits, float("nan")))


def mean_class_accuracy(predictions: Tensor, labels: Tensor, classes: Tensor) -> float:
    """Average per-class top-1 accuracy over the classes that have samples."""
    return mean_over_classes(per_class_accuracy(predictions, labels, classes))


def mean_over_classes(accuracies: Tensor) -> float:
    """Mean of per-class accuracies, skipping NaN (classes without samples); 0 if none."""
    valid = ~torch.isnan(accuracies)
    return float(accuracies[valid].mean()) if bool(valid.any()) else 0.0


def harmonic_mean(unseen: float, seen: float) -> float:
    """H = 2US / (U + S), defined as 0 when U + S = 0."""
    total = unseen + seen
    return 0.0 if total <= 0 else 2.0 * unseen * seen / total


@dataclass(frozen=True)
class GZSLScores:
    """U, S and H (fractions) of one classifier on one task."""

    U: float
    S: float
    H: float


def gzsl_scores(seen_predictions: Tensor, seen_labels: Tensor, unseen_predictions: Tensor,
                unseen_labels: Tensor, seen_classes: Tensor, unseen_classes: Tensor) -> GZSLScores:
    """GZSL protocol: predictions over all classes; S on test-seen, U on test-unseen."""
    seen = mean_class_accuracy(seen_predictions, seen_labels, seen_classes)
    unseen = mean_class_accuracy(unseen_predictions, unseen_labels, unseen_classes)
    return GZSLScores(U=unseen, S=seen, H=harmonic_mean(unseen, seen))


def restricted_predictions(scores: Tensor, classes: Tensor, columns: Tensor) -> Tensor:
    """Arg-max over the score columns of ``classes`` only, as global ids (ZSL T1).

    Args:
        scores: ``(N, K)`` scores whose column ``j`` is global class ``columns[j]``.
        classes: the global ids allowed (e.g. the unseen classes).
        columns: ``(K,)`` sorted global ids of the score columns.
    """
    positions = torch.searchsorted(columns, classes.to(columns.device))
    return classes.to(scores.device)[scores[:, positions].argmax(dim=1)]
