"""The GZSL metrics against hand-computed confusion cases."""

import math

import pytest
import torch

from gzsl.evaluation.metrics import (
    gzsl_scores,
    harmonic_mean,
    mean_class_accuracy,
    per_class_accuracy,
    restricted_predictions,
)


def test_per_class_mean_differs_from_sample_accuracy():
    # class 0: 3 of 4 right; class 1: 0 of 1 right -> per-class mean 0.375, sample acc 0.6
    labels = torch.tensor([0, 0, 0, 0, 1])
    predictions = torch.tensor([0, 0, 0, 1, 0])
    per_class = per_class_accuracy(predictions, labels, torch.tensor([0, 1]))
    assert per_class.tolist() == [0.75, 0.0]
    assert mean_class_accuracy(predictions, labels, torch.tensor([0, 1])) == pytest.approx(0.375)


def test_class_without_samples_is_skipped_not_zero():
    labels = torch.tensor([2, 2])
    predictions = torch.tensor([2, 5])
    per_class = per_class_accuracy(predictions, labels, torch.tensor([2, 3]))
    assert per_class[0] == 0.5 and math.isnan(float(per_class[1]))
    assert mean_class_accuracy(predictions, labels, torch.tensor([2, 3])) == 0.5


def test_harmonic_mean_edge_cases():
    assert harmonic_mean(0.0, 0.0) == 0.0
    assert harmonic_mean(0.0, 0.9) == 0.0
    assert harmonic_mean(0.5, 0.5) == pytest.approx(0.5)
    assert harmonic_mean(0.2, 0.8) == pytest.approx(2 * 0.2 * 0.8 / 1.0)


def test_gzsl_scores_predicting_only_seen_classes():
    seen, unseen = torch.tensor([0, 1]), torch.tensor([2, 3])
    scores = gzsl_scores(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 1]),
                         torch.tensor([0, 1]), torch.tensor([2, 3]), seen, unseen)
    assert (scores.S, scores.U, scores.H) == (1.0, 0.0, 0.0)


def test_gzsl_scores_hand_case():
    seen, unseen = torch.tensor([0, 1]), torch.tensor([2, 3])
    # S: class 0 1/2, class 1 1/1 -> 0.75 ; U: class 2 1/1, class 3 0/2 -> 0.5
    scores = gzsl_scores(torch.tensor([0, 2, 1]), torch.tensor([0, 0, 1]),
                         torch.tensor([2, 2, 1]), torch.tensor([2, 3, 3]), seen, unseen)
    assert scores.S == pytest.approx(0.75)
    assert scores.U == pytest.approx(0.5)
    assert scores.H == pytest.approx(2 * 0.75 * 0.5 / 1.25)


def test_restricted_predictions_ignore_other_columns():
    columns = torch.tensor([0, 3, 7])
    scores = torch.tensor([[9.0, 1.0, 2.0], [9.0, 5.0, 2.0]])
    predictions = restricted_predictions(scores, torch.tensor([3, 7]), columns)
    assert predictions.tolist() == [7, 3]
