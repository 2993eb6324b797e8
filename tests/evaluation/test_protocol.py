"""Scoring a generator: every final-classifier kind, sample weights, kept state."""

import numpy as np
import torch

from gzsl.evaluation.classifier import SoftmaxClassifier, SoftmaxSettings
from gzsl.evaluation.protocol import TaskTensors, evaluate_generator
from gzsl.methods.gaussian import GaussianBaseline

SETTINGS = SoftmaxSettings(lr=0.05, batch_size=32, epochs=6)


class TrustFirstUnseenOnly(GaussianBaseline):
    """Gaussian baseline whose samples get weight 0 except those of the first unseen class."""

    name = "test-trust-first"  # not registered: used directly

    def instance_weights(self, features, semantics):
        return (semantics == semantics[0]).all(dim=1).float()


def _task(tiny_dataset):
    from gzsl.data.preprocessing import Preprocessor

    task = Preprocessor().transform_task(tiny_dataset.task("final"))
    return TaskTensors.from_task(task, torch.device("cpu"))


def _fit(model, task):
    return model.fit(task.seen_data(), rng=torch.Generator().manual_seed(0))


def test_svm_kinds_score_once_and_store_a_reloadable_linear_model(tiny_dataset):
    task = _task(tiny_dataset)
    model = _fit(GaussianBaseline(), task)
    for kind in ("svm", "weighted-svm"):
        result = evaluate_generator(model, task, n_synthetic=20, settings=SETTINGS,
                                    rng=torch.Generator().manual_seed(0), classifier=kind)
        assert [s.epoch for s in result.gzsl] == [1]
        reloaded = SoftmaxClassifier.from_state_dict(result.classifier_state)
        assert torch.equal(reloaded.predict(task.test_unseen_features),
                           result.predictions["test_unseen"])
        assert 0 < result.kept.H <= 1


def test_weighted_softmax_ignores_zero_weight_samples(tiny_dataset):
    task = _task(tiny_dataset)
    model = _fit(TrustFirstUnseenOnly(), task)
    distrusted = task.unseen_classes[1:]
    outcomes = {}
    for kind in ("softmax", "weighted-softmax"):
        result = evaluate_generator(model, task, n_synthetic=30, settings=SETTINGS,
                                    rng=torch.Generator().manual_seed(0), classifier=kind,
                                    keep="last")
        predicted = result.predictions["test_unseen"]
        outcomes[kind] = torch.isin(predicted, distrusted).sum().item()
    assert outcomes["softmax"] > 0
    assert outcomes["weighted-softmax"] < outcomes["softmax"] / 4


def test_keep_last_honours_chosen_epoch_and_gamma(tiny_dataset):
    task = _task(tiny_dataset)
    model = _fit(GaussianBaseline(), task)
    result = evaluate_generator(model, task, n_synthetic=20, settings=SETTINGS,
                                rng=torch.Generator().manual_seed(0), keep="last",
                                keep_epoch=3, keep_gamma=0.1, keep_zsl_epoch=2,
                                gammas=(0.0, 0.1))
    assert result.kept.epoch == 3 and result.kept.gamma == 0.1
    assert max(s.epoch for s in result.gzsl) == 3 and len(result.zsl) == 2
    assert np.isclose(result.T1, result.zsl[-1])


class ConstantSamples(GaussianBaseline):
    """A generator whose every synthetic feature is the constant 7 (no real feature is)."""

    name = "test-constant"  # not registered: used directly

    def sample(self, semantics, n_per_class, *, rng=None):
        return torch.full((len(semantics) * n_per_class, self.feature_dim_), 7.0)


def _classifier_inputs(monkeypatch):
    seen = []
    original = SoftmaxClassifier.fit

    def recording(self, features, labels, **kwargs):
        seen.append((features.clone(), labels.clone()))
        return original(self, features, labels, **kwargs)

    monkeypatch.setattr(SoftmaxClassifier, "fit", recording)
    return seen


def test_synthetic_seen_features_keep_every_real_feature_from_the_classifier(tiny_dataset,
                                                                              monkeypatch):
    task = _task(tiny_dataset)
    model = _fit(ConstantSamples(), task)
    inputs = _classifier_inputs(monkeypatch)
    evaluate_generator(model, task, n_synthetic=5, settings=SETTINGS,
                       rng=torch.Generator().manual_seed(0), seen_features="synthetic")
    (gzsl_features, gzsl_labels), _ = inputs
    assert torch.equal(gzsl_features, torch.full_like(gzsl_features, 7.0))
    expected = torch.cat([task.seen_classes.repeat_interleave(5),
                          task.unseen_classes.repeat_interleave(5)])
    assert torch.equal(gzsl_labels, expected)

    inputs.clear()
    evaluate_generator(model, task, n_synthetic=5, settings=SETTINGS,
                       rng=torch.Generator().manual_seed(0))
    (gzsl_features, gzsl_labels), _ = inputs
    n_real = len(task.train_features)
    assert torch.equal(gzsl_features[:n_real], task.train_features)
    assert torch.equal(gzsl_labels[:n_real], task.train_labels)
    assert len(gzsl_features) == n_real + 5 * len(task.unseen_classes)
