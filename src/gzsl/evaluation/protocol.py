"""Scoring a generator on a task: synthesise, train the final classifiers, score every epoch.

:func:`evaluate_generator` is the one place where test (or validation) data meet a
generator. It returns every (classifier epoch, calibration constant) score so that the
selection protocols in :mod:`gzsl.experiments.runner` can choose honestly (on the
validation task) or, when asked for by name, the papers' way (best on the test set).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gzsl.data.dataset import Task
from gzsl.data.errors import GZSLError
from gzsl.evaluation.classifier import SoftmaxClassifier, SoftmaxSettings
from gzsl.evaluation.metrics import (
    harmonic_mean,
    mean_over_classes,
    per_class_accuracy,
    restricted_predictions,
)
from gzsl.evaluation.svm import LinearSVMClassifier
from gzsl.methods.base import Generator, SeenData

#: Constants subtracted from seen-class probabilities when calibrated stacking is on.
STACKING_GAMMAS: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
                                      0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class TaskTensors:
    """A preprocessed :class:`Task` moved to one device, once."""

    name: str
    train_features: Tensor
    train_labels: Tensor
    test_seen_features: Tensor
    test_seen_labels: Tensor
    test_unseen_features: Tensor
    test_unseen_labels: Tensor
    semantics: Tensor
    seen_classes: Tensor
    unseen_classes: Tensor
    class_names: tuple[str, ...]

    @classmethod
    def from_task(cls, task: Task, device: torch.device) -> TaskTensors:
        def floats(array: np.ndarray) -> Tensor:
            return torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float32, device=device)

        def longs(array: np.ndarray) -> Tensor:
            return torch.as_tensor(np.ascontiguousarray(array), dtype=torch.long, device=device)

        return cls(task.name, floats(task.train_features), longs(task.train_labels),
                   floats(task.test_seen_features), longs(task.test_seen_labels),
                   floats(task.test_unseen_features), longs(task.test_unseen_labels),
                   floats(task.semantics), longs(task.seen_classes), longs(task.unseen_classes),
                   task.class_names)

    def seen_data(self) -> SeenData:
        """What a method may see: seen-class training data and all class semantics."""
        return SeenData(self.train_features, self.train_labels, self.semantics,
                        self.seen_classes)

    @property
    def classes(self) -> Tensor:
        return torch.sort(torch.cat([self.seen_classes, self.unseen_classes])).values


@dataclass
class EpochScore:
    """GZSL scores (fractions) of the final classifier after one epoch, at one gamma."""

    epoch: int
    gamma: float
    U: float
    S: float
    H: float


@dataclass
class Evaluation:
    """Everything one evaluation of a generator produced.

    Attributes:
        n_synthetic: synthetic features per unseen class used.
        gzsl: scores per (epoch, gamma) of the GZSL classifier.
        zsl: T1 (fraction) per epoch of the unseen-only classifier (empty when off).
        kept: the (epoch, gamma) whose per-class accuracies and classifier are kept.
        per_class_seen / per_class_unseen: class name -> accuracy at ``kept``.
        classifier_state: the GZSL classifier at ``kept`` (CPU tensors).
        predictions: ``{"test_seen", "test_unseen"}`` -> predicted global ids at ``kept``.
        zsl_epoch: epoch whose T1 is reported (last, or best when ``keep="best"``).
    """

    n_synthetic: int
    gzsl: list[EpochScore] = field(default_factory=list)
    zsl: list[float] = field(default_factory=list)
    kept: EpochScore | None = None
    per_class_seen: dict[str, float] = field(default_factory=dict)
    per_class_unseen: dict[str, float] = field(default_factory=dict)
    classifier_state: dict[str, Any] = field(default_factory=dict)
    predictions: dict[str, Tensor] = field(default_factory=dict)
    zsl_epoch: int = 0

    def best(self) -> EpochScore:
        return max(self.gzsl, key=lambda s: (s.H, -s.epoch))

    def to_dict(self) -> dict[str, Any]:
        """Plain values and tensors (for ``torch.save`` with ``weights_only`` loading)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Evaluation:
        """The inverse of :meth:`to_dict`."""
        kept = values.get("kept")
        return cls(**{**values, "gzsl": [EpochScore(**score) for score in values["gzsl"]],
                      "kept": None if kept is None else EpochScore(**kept)})

    @property
    def T1(self) -> float:
        return self.zsl[self.zsl_epoch - 1] if self.zsl and self.zsl_epoch else float("nan")


def evaluate_generator(model: Generator, task: TaskTensors, *, n_synthetic: int,
                       settings: SoftmaxSettings, rng: torch.Generator,
                       keep: str = "best", gammas: tuple[float, ...] = (0.0,),
                       classifier: str = "softmax", zsl: bool = True,
                       keep_epoch: int | None = None, keep_gamma: float | None = None,
                       keep_zsl_epoch: int | None = None,
                       seen_features: str = "real") -> Evaluation:
    """Synthesise ``n_synthetic`` features per unseen class and score the final classifiers.

    Args:
        keep: ``"best"`` keeps the epoch / gamma with the highest H (and best T1 epoch);
            ``"last"`` keeps the last epoch at ``keep_gamma`` (a fixed, pre-chosen budget).
        gammas: calibrated-stacking constants scored at every epoch.
        classifier: ``softmax``, ``weighted-softmax`` (synthetic samples weighted by
            ``model.instance_weights``, AMAZ Eq. 13), ``svm`` or ``weighted-svm`` (linear
            SVMs; the weighted one weights classes by their samples' mean quality, Eq. 14).
            SVMs have no epochs: they are scored once, as "epoch 1".
        zsl: T1 from a separate unseen-only classifier trained on synthetic features (as
            the reference codes do); False: from the GZSL classifier's unseen columns.
        keep_epoch, keep_gamma, keep_zsl_epoch: with ``keep="last"``, the epoch counts and
            gamma chosen earlier (on the validation task); default: the settings' epochs, 0.
        seen_features: what the GZSL classifier learns the seen classes from: ``"real"``
            (the task's real training features; the project's protocol) or ``"synthetic"``
            (``n_synthetic`` synthetic features per seen class, drawn after the unseen
            ones, as AMAZ Sec. II-E does; no real feature reaches the classifier).
    """
    unseen = task.unseen_classes
    synthetic = model.sample(task.semantics[unseen], n_synthetic, rng=rng)
    synthetic = synthetic.to(task.train_features.device)
    synthetic_labels = unseen.repeat_interleave(n_synthetic)
    if seen_features == "real":
        seen_train, seen_labels = task.train_features, task.train_labels
    elif seen_features == "synthetic":
        seen_labels = task.seen_classes.repeat_interleave(n_synthetic)
        seen_train = model.sample(task.semantics[task.seen_classes], n_synthetic, rng=rng)
        seen_train = seen_train.to(task.train_features.device)
    else:
        raise GZSLError(f"seen_features must be 'real' or 'synthetic', got {seen_features!r}")
    weights = None
    if classifier.startswith("weighted-"):
        synthetic_weights = model.instance_weights(synthetic, task.semantics[synthetic_labels])
        if synthetic_weights is not None:
            if seen_features == "real":
                seen_weights = torch.ones(len(seen_train), device=synthetic.device)
            else:
                seen_weights = model.instance_weights(
                    seen_train, task.semantics[seen_labels]).clamp_min(0)
            weights = torch.cat([seen_weights, synthetic_weights.clamp_min(0)])
    features = torch.cat([seen_train, synthetic])
    labels = torch.cat([seen_labels, synthetic_labels])

    result = Evaluation(n_synthetic=n_synthetic)
    gamma_tensor = torch.tensor(gammas, device=features.device)
    classes = task.classes
    seen_columns = torch.isin(classes, task.seen_classes)
    best_state: dict[str, Any] = {}
    target_epoch = keep_epoch if keep_epoch is not None else settings.epochs
    target_gamma = keep_gamma if keep_gamma is not None else 0.0

    def score(epoch: int, final: FinalClassifier) -> None:
        if not zsl:  # T1 from the GZSL classifier restricted to unseen classes
            restricted = restricted_predictions(
                final.log_probabilities(task.test_unseen_features), unseen, classes)
            result.zsl.append(mean_over_classes(
                per_class_accuracy(restricted, task.test_unseen_labels, unseen)))
        seen_scores = _stacked_predictions(final, task.test_seen_features, gamma_tensor,
                                           seen_columns)
        unseen_scores = _stacked_predictions(final, task.test_unseen_features, gamma_tensor,
                                             seen_columns)
        for g, gamma in enumerate(gammas):
            seen_accuracy = per_class_accuracy(seen_scores[g], task.test_seen_labels,
                                               task.seen_classes)
            unseen_accuracy = per_class_accuracy(unseen_scores[g], task.test_unseen_labels, unseen)
            s, u = mean_over_classes(seen_accuracy), mean_over_classes(unseen_accuracy)
            entry = EpochScore(epoch, float(gamma), u, s, harmonic_mean(u, s))
            result.gzsl.append(entry)
            if keep == "best":
                chosen = result.kept is None or entry.H > result.kept.H
            else:
                chosen = epoch == target_epoch and abs(gamma - target_gamma) < 1e-12
            if chosen:
                result.kept = entry
                best_state["state"] = final.state_dict()
                best_state["seen"], best_state["unseen"] = seen_accuracy, unseen_accuracy
                result.predictions = {"test_seen": seen_scores[g].cpu(),
                                      "test_unseen": unseen_scores[g].cpu()}

    epochs = target_epoch if keep == "last" else settings.epochs
    gzsl_settings = SoftmaxSettings(settings.lr, settings.beta1, settings.batch_size, epochs)
    fit_final_classifier(classifier, classes, features, labels, weights, gzsl_settings,
                         rng, score)
    result.classifier_state = best_state.get("state", {})
    names = task.class_names
    if "seen" in best_state:
        result.per_class_seen = _named(best_state["seen"], task.seen_classes, names)
        result.per_class_unseen = _named(best_state["unseen"], unseen, names)

    if zsl:
        zsl_epochs = keep_zsl_epoch if (keep == "last" and keep_zsl_epoch) else settings.epochs

        def score_zsl(epoch: int, final: FinalClassifier) -> None:
            predictions = final.predict(task.test_unseen_features)
            result.zsl.append(mean_over_classes(
                per_class_accuracy(predictions, task.test_unseen_labels, unseen)))

        zsl_settings = SoftmaxSettings(settings.lr, settings.beta1, settings.batch_size,
                                       zsl_epochs)
        synthetic_weights = None if weights is None else weights[len(seen_train):]
        fit_final_classifier(classifier, unseen, synthetic, synthetic_labels, synthetic_weights,
                             zsl_settings, rng, score_zsl)
    if result.zsl:
        result.zsl_epoch = int(np.argmax(result.zsl)) + 1 if keep == "best" else len(result.zsl)
    return result


class LinearSVMFinal:
    """A fitted linear SVM seen through the softmax classifier's interface.

    Its decision function is linear, so it is stored as a linear layer (``coef_``,
    ``intercept_``) that :class:`SoftmaxClassifier.from_state_dict` reloads with the same
    arg-max; "probabilities" are the softmax of the SVM scores (uncalibrated).
    """

    def __init__(self, classes: Tensor, svm: LinearSVMClassifier) -> None:
        self.classes = classes
        coef = torch.as_tensor(svm.svm_.coef_, dtype=torch.float32, device=classes.device)
        bias = torch.as_tensor(svm.svm_.intercept_, dtype=torch.float32, device=classes.device)
        if len(classes) == 2 and coef.shape[0] == 1:  # binary: one score for the positive class
            coef, bias = torch.cat([-coef, coef]), torch.cat([-bias, bias])
        self.weight, self.bias = coef, bias

    def log_probabilities(self, features: Tensor) -> Tensor:
        return torch.log_softmax(features @ self.weight.T + self.bias, dim=1)

    def predict(self, features: Tensor) -> Tensor:
        return self.classes[(features @ self.weight.T + self.bias).argmax(dim=1)]

    def state_dict(self) -> dict[str, Any]:
        return {"classes": self.classes.cpu(), "weight": self.weight.cpu(),
                "bias": self.bias.cpu()}


FinalClassifier = SoftmaxClassifier | LinearSVMFinal


def fit_final_classifier(kind: str, classes: Tensor, features: Tensor, labels: Tensor,
                         weights: Tensor | None, settings: SoftmaxSettings,
                         rng: torch.Generator,
                         on_epoch: Callable[[int, FinalClassifier], None]) -> FinalClassifier:
    """Train the ``kind`` of final classifier and call ``on_epoch`` after each epoch."""
    if kind in ("softmax", "weighted-softmax"):
        return SoftmaxClassifier(classes, features.shape[1], settings).fit(
            features, labels, rng=rng, sample_weights=weights, on_epoch=on_epoch)
    if kind not in ("svm", "weighted-svm"):
        raise ValueError(f"unknown classifier {kind!r}")
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=rng, device=rng.device))
    svm = LinearSVMClassifier(class_weighted=kind == "weighted-svm", random_state=seed).fit(
        features.cpu().numpy(), labels.cpu().numpy(),
        None if weights is None else weights.cpu().numpy())
    final = LinearSVMFinal(classes, svm)
    on_epoch(1, final)
    return final


def _stacked_predictions(classifier: FinalClassifier, features: Tensor, gammas: Tensor,
                         seen_columns: Tensor) -> Tensor:
    """``(G, N)`` predicted global ids after subtracting each gamma from seen probabilities."""
    probabilities = classifier.log_probabilities(features).exp()
    shifted = probabilities.unsqueeze(0) - gammas.view(-1, 1, 1) * seen_columns.to(
        probabilities.dtype)
    return classifier.classes[shifted.argmax(dim=2)]


def _named(accuracies: Tensor, classes: Tensor, names: tuple[str, ...]) -> dict[str, float]:
    return {names[int(c)]: round(100.0 * float(a), 4)
            for c, a in zip(classes.tolist(), accuracies.tolist(), strict=True)
            if a == a}
