"""The embedded demo dataset: the shipped AWA2 extract, the splits, and the feature generator."""

from __future__ import annotations

import time
from importlib import resources

import numpy as np
import pytest
import scipy.io as sio
import torch
from scipy import stats

from gzsl.data.demo import (
    DEMO_FILE,
    EMBEDDED_DATASETS,
    MIN_IMAGES_PER_CLASS,
    MIN_TEST_SEEN_IMAGES,
    demo_image_counts,
    demo_metadata,
    embedded_name,
    load_demo,
    make_synthetic_features,
)
from gzsl.methods import GaussianBaseline, SeenData

UNSEEN_NAMES = {"bat", "blue+whale", "bobcat", "dolphin", "giraffe", "horse", "rat", "seal",
                "sheep", "walrus"}


@pytest.fixture(scope="module")
def demo():
    return load_demo()


@pytest.fixture(scope="module")
def attributes() -> np.ndarray:
    return np.asarray(demo_metadata()["attributes"])


@pytest.fixture(scope="module")
def real_awa2(xlsa17_dir):
    splits = sio.loadmat(xlsa17_dir / "AWA2" / "att_splits.mat")
    labels = np.load(xlsa17_dir / "AWA2" / "labels.npy")
    return splits, labels


def _classes_of(splits: dict, labels: np.ndarray, key: str) -> list[int]:
    return sorted(int(c) - 1 for c in np.unique(labels[splits[key].ravel().astype(int) - 1]))


# --- the shipped JSON against the real xlsa17 AWA2 files ---------------------------------

def test_attributes_equal_real_att_to_six_digits(real_awa2):
    splits, _ = real_awa2
    shipped = np.asarray(demo_metadata()["attributes"])
    assert shipped.shape == (50, 85)
    np.testing.assert_allclose(shipped, splits["att"].T, rtol=5e-6, atol=0)


def test_class_names_equal_real(real_awa2):
    splits, _ = real_awa2
    real = [str(np.asarray(e).ravel()[0]) for e in splits["allclasses_names"].ravel()]
    assert demo_metadata()["class_names"] == real


def test_split_classes_equal_real(real_awa2):
    splits, labels = real_awa2
    meta = demo_metadata()
    assert meta["seen_classes"] == _classes_of(splits, labels, "trainval_loc")
    assert meta["seen_classes"] == _classes_of(splits, labels, "test_seen_loc")
    assert meta["unseen_classes"] == _classes_of(splits, labels, "test_unseen_loc")
    assert meta["train_classes"] == _classes_of(splits, labels, "train_loc")
    assert meta["val_classes"] == _classes_of(splits, labels, "val_loc")


def test_counts_equal_real(real_awa2):
    splits, labels = real_awa2
    meta = demo_metadata()
    assert meta["images_per_class"] == np.bincount(labels - 1, minlength=50).tolist()
    assert meta["test_seen_images"] == splits["test_seen_loc"].size == 5882
    assert meta["seen_images"] == splits["trainval_loc"].size + splits["test_seen_loc"].size


# --- the shipped JSON on its own ------------------------------------------------------------

def test_json_split_bookkeeping():
    meta = demo_metadata()
    seen, unseen = set(meta["seen_classes"]), set(meta["unseen_classes"])
    train, val = set(meta["train_classes"]), set(meta["val_classes"])
    assert (len(seen), len(unseen), len(train), len(val)) == (40, 10, 27, 13)
    assert seen.isdisjoint(unseen) and seen | unseen == set(range(50))
    assert train.isdisjoint(val) and train | val == seen
    assert {meta["class_names"][c] for c in unseen} == UNSEEN_NAMES
    assert sum(meta["images_per_class"]) == 37322


def test_json_attributes_are_unit_norm_per_class(attributes):
    np.testing.assert_allclose(np.linalg.norm(attributes, axis=1), 1.0, atol=1e-5)


def test_json_is_small_and_credits_its_source():
    text = resources.files("gzsl.data").joinpath(DEMO_FILE).read_text(encoding="utf-8")
    assert len(text.encode()) < 64 * 1024
    source = demo_metadata()["source"]
    for credit in ("xlsa17", "Xian", "Good, the Bad and the Ugly", "TPAMI 2018", "AWA2"):
        assert credit in source


def test_metadata_is_a_fresh_copy():
    demo_metadata()["class_names"].clear()
    assert len(demo_metadata()["class_names"]) == 50


# --- load_demo ------------------------------------------------------------------------------

def test_load_demo_shapes_and_types(demo):
    assert demo.name == "demo" and demo.synthetic is True
    assert demo.features.dtype == np.float32 and demo.labels.dtype == np.int64
    assert demo.semantics.dtype == np.float32 and demo.semantics.shape == (50, 85)
    assert demo.features.shape == (len(demo.labels), 512)
    assert 2000 < len(demo.labels) < 2700
    assert np.isfinite(demo.features).all() and (demo.features >= 0).all()
    assert np.all(np.diff(demo.labels) >= 0)
    assert len(demo.class_names) == 50 and "giraffe" in demo.class_names
    assert "SYNTHETIC" in demo.source["features"]
    assert demo.source["sha256"] == demo_metadata()["sha256"]


def test_load_demo_counts_follow_real_counts_scaled(demo):
    real = np.asarray(demo_metadata()["images_per_class"])
    counts = np.bincount(demo.labels, minlength=50)
    expected = np.maximum(np.rint(real / 16), MIN_IMAGES_PER_CLASS)
    np.testing.assert_array_equal(counts, expected)
    assert counts.min() == MIN_IMAGES_PER_CLASS  # mole: 100 real images, 6 at 1/16
    larger, _ = demo_image_counts(1 / 4)
    np.testing.assert_array_equal(larger, np.maximum(np.rint(real / 4), MIN_IMAGES_PER_CLASS))


def test_load_demo_options():
    small = load_demo(scale=1 / 64, feature_dim=64)
    assert small.features.shape == (int(demo_image_counts(1 / 64)[0].sum()), 64)
    assert small.source["scale"] == 1 / 64 and small.source["feature_dim"] == 64
    with pytest.raises(ValueError):
        demo_image_counts(0.0)


def test_splits_disjoint_covering_and_as_specified(demo):
    s, labels, meta = demo.splits, demo.labels, demo_metadata()
    final = np.concatenate([s["trainval"], s["test_seen"], s["test_unseen"]])
    np.testing.assert_array_equal(np.sort(final), np.arange(len(labels)))
    np.testing.assert_array_equal(np.sort(np.concatenate([s["train"], s["val"]])), s["trainval"])
    np.testing.assert_array_equal(s["test_unseen"],
                                  np.flatnonzero(np.isin(labels, meta["unseen_classes"])))
    assert np.unique(labels[s["trainval"]]).tolist() == meta["seen_classes"]
    assert np.unique(labels[s["test_seen"]]).tolist() == meta["seen_classes"]
    assert np.unique(labels[s["train"]]).tolist() == meta["train_classes"]
    assert np.unique(labels[s["val"]]).tolist() == meta["val_classes"]
    per_class_test_seen = np.bincount(labels[s["test_seen"]], minlength=50)[meta["seen_classes"]]
    assert per_class_test_seen.min() >= MIN_TEST_SEEN_IMAGES
    assert np.bincount(labels[s["trainval"]], minlength=50)[meta["seen_classes"]].min() >= 4
    share = len(s["test_seen"]) / (len(s["trainval"]) + len(s["test_seen"]))
    assert share == pytest.approx(5882 / 29409, abs=0.02)


def test_tasks_cut_from_demo(demo):
    final = demo.task("final")
    assert len(final.seen_classes) == 40 and len(final.unseen_classes) == 10
    validation = demo.task("validation")
    assert validation.seen_classes.tolist() == demo_metadata()["train_classes"]
    assert validation.unseen_classes.tolist() == demo_metadata()["val_classes"]


def test_load_demo_deterministic_and_seeded(demo):
    again = load_demo()
    np.testing.assert_array_equal(again.features, demo.features)
    for name, index in demo.splits.items():
        np.testing.assert_array_equal(again.splits[name], index)
    other = load_demo(seed=1)
    np.testing.assert_array_equal(other.labels, demo.labels)
    assert not np.allclose(other.features, demo.features)


def test_load_demo_is_fast():
    start = time.perf_counter()
    load_demo(seed=3)
    assert time.perf_counter() - start < 2.0


# --- make_synthetic_features ----------------------------------------------------------------

def test_generator_output_layout(attributes):
    counts = np.array([3, 0, 5, 2])
    features, labels = make_synthetic_features(attributes[:4], counts, feature_dim=32, seed=7)
    assert features.shape == (10, 32) and features.dtype == np.float32
    assert labels.dtype == np.int64 and labels.tolist() == [0, 0, 0, 2, 2, 2, 2, 2, 3, 3]


def test_class_images_depend_only_on_own_count(attributes):
    first, labels = make_synthetic_features(attributes[:3], np.array([4, 4, 4]), seed=2)
    second, labels2 = make_synthetic_features(attributes[:3], np.array([4, 9, 4]), seed=2)
    np.testing.assert_array_equal(first[labels == 0], second[labels2 == 0])
    np.testing.assert_array_equal(first[labels == 2], second[labels2 == 2])


@pytest.mark.parametrize("bad", [
    dict(semantics=np.zeros(5), images_per_class=np.ones(5)),
    dict(semantics=np.zeros((3, 2)), images_per_class=np.ones(4)),
    dict(semantics=np.zeros((3, 2)), images_per_class=np.array([1, -1, 1])),
    dict(semantics=np.zeros((3, 2)), images_per_class=np.ones(3), tail_degrees_of_freedom=2.0),
    dict(semantics=np.zeros((3, 2)), images_per_class=np.ones(3), class_rank=0),
])
def test_generator_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        make_synthetic_features(**bad)


def test_features_sparse_ish_and_heavy_tailed(demo):
    zeros = float((demo.features == 0).mean())
    assert 0.2 < zeros < 0.7
    assert np.median(stats.skew(demo.features, axis=0)) > 0.5
    assert np.median(stats.kurtosis(demo.features, axis=0)) > 1.0


def _leave_one_out_r2(attributes: np.ndarray, means: np.ndarray, ridge: float = 30.0) -> float:
    """Out-of-sample R^2 of ridge regression from standardised attributes to class means.

    Exact leave-one-class-out residuals of a linear smoother: ``e_i / (1 - h_ii)``.
    """
    inputs = (attributes - attributes.mean(0)) / attributes.std(0)
    design = np.hstack([inputs, np.ones((len(inputs), 1))])
    penalty = ridge * np.eye(design.shape[1])
    penalty[-1, -1] = 0.0
    hat = design @ np.linalg.solve(design.T @ design + penalty, design.T)
    residuals = (means - hat @ means) / (1 - np.diag(hat))[:, None]
    return 1 - (residuals ** 2).sum() / ((means - means.mean(0)) ** 2).sum()


def test_leave_one_out_r2_matches_refitting(attributes):
    targets = np.random.default_rng(0).normal(size=(50, 3)) + attributes[:, :3]
    inputs = (attributes - attributes.mean(0)) / attributes.std(0)
    design = np.hstack([inputs, np.ones((50, 1))])
    penalty = 30.0 * np.eye(86)
    penalty[-1, -1] = 0.0
    residuals = []
    for i in range(50):
        keep = np.arange(50) != i
        weights = np.linalg.solve(design[keep].T @ design[keep] + penalty,
                                  design[keep].T @ targets[keep])
        residuals.append(targets[i] - design[i] @ weights)
    refitted = 1 - (np.array(residuals) ** 2).sum() / ((targets - targets.mean(0)) ** 2).sum()
    assert _leave_one_out_r2(attributes, targets) == pytest.approx(refitted, rel=1e-9)


def _class_means(attributes: np.ndarray, **structure) -> np.ndarray:
    features, _ = make_synthetic_features(attributes, np.full(50, 50), seed=0, **structure)
    return features.reshape(50, 50, -1).mean(axis=1)


def test_centres_partly_but_not_wholly_predictable_from_attributes(attributes):
    r2 = _leave_one_out_r2(attributes, _class_means(attributes))
    assert 0.1 < r2 < 0.6
    without_residual = _leave_one_out_r2(attributes, _class_means(attributes,
                                                                  residual_strength=0.0))
    without_attributes = _leave_one_out_r2(attributes, _class_means(attributes,
                                                                    attribute_strength=0.0))
    assert without_attributes < 0.0 < r2 < without_residual - 0.1


def _per_class(features: np.ndarray, labels: np.ndarray) -> list[np.ndarray]:
    """Each class's centred features (float64)."""
    features = features.astype(np.float64)
    return [features[labels == c] - features[labels == c].mean(0) for c in np.unique(labels)]


def _principal_directions(centred: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Covariance spectrum (times n) and top-k principal directions, from the small Gram matrix.

    Same as an SVD of ``centred`` (eigenvalues = squared singular values) but far cheaper.
    """
    eigenvalues, vectors = np.linalg.eigh(centred @ centred.T)
    eigenvalues, vectors = eigenvalues[::-1].clip(min=0), vectors[:, ::-1]
    directions = centred.T @ vectors[:, :k] / np.sqrt(eigenvalues[:k])
    return eigenvalues, directions


def test_principal_directions_match_svd():
    centred = np.random.default_rng(0).normal(size=(20, 40)) * np.linspace(3, 0.1, 40)
    eigenvalues, directions = _principal_directions(centred - centred.mean(0), 3)
    _, singular, right = np.linalg.svd(centred - centred.mean(0), full_matrices=False)
    np.testing.assert_allclose(eigenvalues[:19], singular[:19] ** 2, rtol=1e-8)
    np.testing.assert_allclose(np.abs(directions.T @ right[:3].T), np.eye(3), atol=1e-8)


def _total_variances(attributes: np.ndarray, **structure) -> np.ndarray:
    features, labels = make_synthetic_features(attributes[:12], np.full(12, 60), **structure)
    return np.array([(x ** 2).sum() / len(x) for x in _per_class(features, labels)])


def test_spread_differs_across_classes(attributes):
    variances = _total_variances(attributes)
    uniform = _total_variances(attributes, spread_variation=0.0)
    assert variances.max() / variances.min() > 3
    assert variances.std() / variances.mean() > 1.3 * uniform.std() / uniform.mean()


def test_each_class_has_low_effective_rank(attributes):
    features, labels = make_synthetic_features(attributes[:12], np.full(12, 60), seed=0)
    for centred in _per_class(features, labels):
        eigenvalues, _ = _principal_directions(centred, 1)
        participation_ratio = eigenvalues.sum() ** 2 / (eigenvalues ** 2).sum()
        assert participation_ratio < 0.05 * features.shape[1]
    isotropic = np.random.default_rng(0).normal(size=(60, features.shape[1]))
    eigenvalues, _ = _principal_directions(isotropic - isotropic.mean(0), 1)
    assert eigenvalues.sum() ** 2 / (eigenvalues ** 2).sum() > 0.05 * features.shape[1]


def _principal_overlap(attributes: np.ndarray, k: int = 6, **structure) -> float:
    """Mean over class pairs of the overlap of their top-k within-class principal subspaces."""
    features, labels = make_synthetic_features(attributes[:12], np.full(12, 60), seed=0,
                                               **structure)
    bases = [_principal_directions(x, k)[1] for x in _per_class(features, labels)]
    return float(np.mean([np.linalg.norm(bases[a].T @ bases[b]) ** 2 / k
                          for a in range(12) for b in range(a + 1, 12)]))


def test_classes_share_directions_of_variation(attributes):
    assert _principal_overlap(attributes) > _principal_overlap(attributes,
                                                               shared_strength=0.0) + 0.05


# --- calibration: neither trivial nor hopeless ----------------------------------------------

def _mean_class_accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean([(predictions[labels == c] == c).mean() for c in np.unique(labels)]))


def _nearest_mean(features: np.ndarray, means: np.ndarray, classes: np.ndarray) -> np.ndarray:
    distances = (means ** 2).sum(1) - 2 * features @ means.T
    return classes[distances.argmin(1)]


def test_demo_is_neither_trivial_nor_hopeless(demo):
    """Nearest-class-mean stand-in for the softmax protocol (docs/demo-dataset.md), cheap enough
    for every test run: the seen classes are learnable but not perfectly, and unseen classes
    are recognised from the Gaussian baseline's attribute-predicted means well above chance
    but far from perfectly."""
    task = demo.task("final")
    low, high = task.train_features.min(0), task.train_features.max(0)
    span = np.where(high > low, high - low, 1.0)
    train, test_seen, test_unseen = ((x - low) / span for x in (
        task.train_features, task.test_seen_features, task.test_unseen_features))
    seen, unseen = task.seen_classes, task.unseen_classes
    seen_means = np.stack([train[task.train_labels == c].mean(0) for c in seen])
    seen_only = _mean_class_accuracy(_nearest_mean(test_seen, seen_means, seen),
                                     task.test_seen_labels)

    g = torch.Generator().manual_seed(0)
    seen_data = SeenData(torch.as_tensor(train), torch.as_tensor(task.train_labels),
                         torch.as_tensor(task.semantics), torch.as_tensor(seen))
    baseline = GaussianBaseline().fit(seen_data, rng=g)
    synthetic = baseline.sample(torch.as_tensor(task.semantics[unseen]), 200, rng=g)
    unseen_means = synthetic.numpy().reshape(len(unseen), 200, -1).mean(1)
    all_means, all_classes = np.concatenate([seen_means, unseen_means]), np.concatenate(
        [seen, unseen])
    S = _mean_class_accuracy(_nearest_mean(test_seen, all_means, all_classes),
                             task.test_seen_labels)
    U = _mean_class_accuracy(_nearest_mean(test_unseen, all_means, all_classes),
                             task.test_unseen_labels)
    T1 = _mean_class_accuracy(_nearest_mean(test_unseen, unseen_means, unseen),
                              task.test_unseen_labels)
    H = 2 * U * S / (U + S)
    assert 0.55 < seen_only < 0.95
    assert 0.25 < T1 < 0.8
    assert 0.1 < H < 0.55


def test_demo_awa2_loads_by_name_at_the_real_image_counts(monkeypatch):
    import gzsl.data.demo as demo_module
    from gzsl.data.loaders import read_dataset

    calls = []
    small = load_demo(scale=1 / 64)

    def recording(**kwargs):
        calls.append(kwargs)
        return small

    monkeypatch.setattr(demo_module, "load_demo", recording)
    data, problems = read_dataset("Demo-AWA2")
    assert data is small and not problems
    assert calls == [{"scale": 1.0, "name": "demo-awa2"}]
    read_dataset("demo")
    assert calls[-1] == {"scale": 1 / 16, "name": "demo"}
    counts, test_seen = demo_image_counts(1.0)
    meta = demo_metadata()
    assert counts.tolist() == meta["images_per_class"] and counts.sum() == 37322
    assert test_seen.sum() == pytest.approx(meta["test_seen_images"], abs=20)


def test_embedded_datasets_are_named_and_labelled_synthetic():
    data = load_demo(scale=1 / 64, name="demo-awa2")
    assert data.name == "demo-awa2" and data.synthetic
    assert data.source["features"].startswith("SYNTHETIC")
    assert set(EMBEDDED_DATASETS) == {"demo", "demo-awa2"}
    assert embedded_name("DEMO-awa2") == "demo-awa2" and embedded_name("AWA2") is None
    from gzsl.data.loaders import EMBEDDED_NAMES

    assert set(EMBEDDED_NAMES) == set(EMBEDDED_DATASETS)
