"""The embedded ``demo`` dataset: real AWA2 class semantics and split, SYNTHETIC features.

The package ships one small file, ``demo_awa2.json``, extracted from the real xlsa17 AWA2
split files (``scripts/extract_demo_awa2.py``): the 85 x 50 attribute matrix, the class
names, the proposed 40 / 10 seen / unseen split, the 27 / 13 validation classes and the
real per-class image counts. No image feature of AWA2 is shipped. :func:`load_demo` scales
the image counts down and draws features from :func:`make_synthetic_features`, a latent
model built to look like pooled CNN features to a GZSL method:

* non-negative, sparse-ish and heavy-tailed: a rectified (ReLU) latent model with
  Student-t latent factors, a per-image gain and per-dimension scales;
* each class lies near a low-dimensional manifold: centre + a class-specific low-rank
  basis times latent factors + small isotropic noise;
* class centres partly, not wholly, predictable from the attributes: a random nonlinear
  map of the attributes plus a class-specific residual the attributes do not explain;
* a class-specific spread, and directions of variation shared by all classes (pose,
  background, lighting in real images).

The defaults are calibrated so that GZSL on ``demo`` is neither trivial nor hopeless
(measured figures in ``docs/demo-dataset.md``). Everything is deterministic given the seed.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from gzsl.data.dataset import GZSLData

#: The shipped extract of the real AWA2 bookkeeping (no features).
DEMO_FILE = "demo_awa2.json"
#: The embedded datasets: name -> (what ``gzsl list`` says, the share of AWA2's real
#: per-class image counts drawn). Both have AWA2's real attributes and split and
#: SYNTHETIC features from :func:`make_synthetic_features`, drawn from a seed when loaded.
EMBEDDED_DATASETS: dict[str, tuple[str, float]] = {
    "demo": ("embedded: AWA2's real attributes and split, SYNTHETIC features, 1/16 of AWA2's "
             "image counts (~37 training images per seen class)", 1 / 16),
    "demo-awa2": ("embedded: as demo at AWA2's real per-class image counts (~590 training "
                  "images per seen class, 37,322 in all), SYNTHETIC features", 1.0),
}
#: Classes per block of the class-level hidden layer (:class:`SyntheticFeatureModel`).
_CLASS_BLOCK = 2048
#: Smallest number of images a demo class gets, whatever the scale.
MIN_IMAGES_PER_CLASS = 8
#: Smallest number of test-seen images of a seen demo class.
MIN_TEST_SEEN_IMAGES = 2


def make_synthetic_features(
    semantics: np.ndarray,
    images_per_class: np.ndarray,
    *,
    feature_dim: int = 512,
    seed: int = 0,
    latent_dim: int = 24,
    class_rank: int = 4,
    shared_rank: int = 6,
    attribute_strength: float = 0.5,
    residual_strength: float = 0.3,
    nonlinearity: float = 1.0,
    spread: float = 0.85,
    spread_variation: float = 0.3,
    shared_strength: float = 0.5,
    noise: float = 0.1,
    tail_degrees_of_freedom: float = 5.0,
    offset: float = 0.2,
    gain_variation: float = 0.2,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw synthetic non-negative "CNN-like" features for classes given by semantic vectors.

    Images live first in a ``latent_dim``-dimensional space: image ``i`` of class ``c`` is

    ``z_i = centre_c + spread_c * t_i B_c + w_i S``

    and its feature is ``f_i = gain_i * scale_d * relu(offset_d + z_i W + noise * e_i)``,
    where

    * ``centre_c = attribute_strength * g(a_c) + residual_strength * r_c``: ``g`` is a
      random two-layer tanh network of the standardised semantic vector ``a_c`` (its
      ``nonlinearity`` is the gain inside the tanh), ``r_c`` a class residual that no
      function of the attributes predicts; both have unit RMS per latent dimension;
    * ``B_c`` is a ``(class_rank, latent_dim)`` class-specific basis with decaying
      per-direction scales (unit variance per latent dimension on average), ``t_i``
      Student-t latent factors (``tail_degrees_of_freedom``: heavy tails) and
      ``spread_c = spread * exp(spread_variation * u_c)`` a class-specific spread;
    * ``S`` is a ``(shared_rank, latent_dim)`` basis of variation shared by all classes
      (pose, background, lighting in real images; per-dimension standard deviation
      ``shared_strength``), ``w_i`` Gaussian;
    * ``W`` is a fixed random ``(latent_dim, feature_dim)`` decoder, ``e_i`` isotropic
      noise in feature space, ``offset_d`` (mean ``offset``) sets how often dimension
      ``d`` is rectified to zero, ``scale_d`` is a log-normal per-dimension scale and
      ``gain_i`` a log-normal per-image gain (``gain_variation``).

    So each class lies near a ``class_rank + shared_rank``-dimensional manifold, the
    features are non-negative, sparse-ish and heavy-tailed, and how well a method can
    predict an unseen class from its attributes is limited by the residual.
    Class-level draws come from one stream of the seed and each class's images from a
    stream of their own, so the images of a class depend only on the seed, the semantics
    and that class's count.

    Args:
        semantics: ``(C, A)`` class semantic vectors (attributes or embeddings).
        images_per_class: ``(C,)`` non-negative image counts.
        feature_dim: ``D``, the feature dimension.
        seed: seed of every draw; the same seed gives identical features.

    Returns:
        ``(N, D)`` float32 features and ``(N,)`` int64 labels, images sorted by class.
    """
    semantics = np.asarray(semantics, dtype=np.float64)
    counts = np.asarray(images_per_class, dtype=np.int64)
    if semantics.ndim != 2 or semantics.shape[0] == 0:
        raise ValueError("semantics must be (classes, dims) with at least one class; "
                         f"got shape {semantics.shape}")
    if counts.shape != (semantics.shape[0],) or (counts < 0).any():
        raise ValueError(f"images_per_class must be {semantics.shape[0]} non-negative counts; "
                         f"got shape {counts.shape}")
    if min(feature_dim, latent_dim, class_rank) < 1 or shared_rank < 0:
        raise ValueError("feature_dim, latent_dim and class_rank must be positive, "
                         "shared_rank non-negative")
    if tail_degrees_of_freedom <= 2:
        raise ValueError("tail_degrees_of_freedom must exceed 2 (finite variance)")
    model = SyntheticFeatureModel.draw(
        semantics, feature_dim=feature_dim, seed=seed, latent_dim=latent_dim,
        class_rank=class_rank, shared_rank=shared_rank,
        attribute_strength=attribute_strength, residual_strength=residual_strength,
        nonlinearity=nonlinearity, spread=spread, spread_variation=spread_variation,
        shared_strength=shared_strength, noise=noise,
        tail_degrees_of_freedom=tail_degrees_of_freedom, offset=offset,
        gain_variation=gain_variation)
    return model.images(np.arange(semantics.shape[0], dtype=np.int64), counts)


@dataclass(frozen=True)
class SyntheticFeatureModel:
    """The class-level draws of :func:`make_synthetic_features`, from which the images of
    any subset of classes can be drawn later, a few classes at a time.

    The images of a class depend only on the seed, the semantics and that class's count
    (each class has its own random stream), so drawing the classes in chunks uses the
    random draws one call over all classes would (the floating-point results may differ
    in the last bits, as matrix products of other shapes may round differently).
    :func:`gzsl.data.imagenet.make_synthetic_imagenet` writes a world of 21K classes to
    disk this way without holding its features. :func:`make_synthetic_features` is
    ``draw`` then ``images`` of every class, the demo's features bit for bit.
    """

    centres: np.ndarray
    class_bases: np.ndarray
    class_spreads: np.ndarray
    shared_basis: np.ndarray
    decoder: np.ndarray
    dimension_offsets: np.ndarray
    dimension_scales: np.ndarray
    image_seeds: tuple[np.random.SeedSequence, ...]
    class_rank: int
    shared_rank: int
    feature_dim: int
    noise: float
    tail_degrees_of_freedom: float
    gain_variation: float

    @classmethod
    def draw(cls, semantics: np.ndarray, *, feature_dim: int, seed: int, latent_dim: int,
             class_rank: int, shared_rank: int, attribute_strength: float,
             residual_strength: float, nonlinearity: float, spread: float,
             spread_variation: float, shared_strength: float, noise: float,
             tail_degrees_of_freedom: float, offset: float,
             gain_variation: float) -> SyntheticFeatureModel:
        """Every class-level draw, in the order :func:`make_synthetic_features` makes them
        (its arguments are documented there)."""
        semantics = np.asarray(semantics, dtype=np.float64)
        n_classes, semantic_dim = semantics.shape
        class_seed, image_seeds = np.random.SeedSequence(seed).spawn(2)
        class_stream = np.random.default_rng(class_seed)

        std = semantics.std(axis=0)
        standardised = (semantics - semantics.mean(axis=0)) / np.where(std > 0, std, 1.0)
        hidden_dim = 4 * semantic_dim
        weights_in = (class_stream.normal(size=(semantic_dim, hidden_dim))
                      / np.sqrt(semantic_dim))
        bias_in = class_stream.normal(scale=0.5, size=hidden_dim)
        weights_out = class_stream.normal(size=(hidden_dim, latent_dim))
        # The hidden layer is classes x 4A: at 21K classes and A = 500, 340 MB a copy,
        # so it is computed a block of classes at a time (the demo's 50 fit in one).
        attribute_part = np.concatenate([
            np.tanh(nonlinearity * standardised[start:start + _CLASS_BLOCK] @ weights_in
                    + bias_in) @ weights_out
            for start in range(0, n_classes, _CLASS_BLOCK)])
        attribute_part = _unit_rms(attribute_part - attribute_part.mean(axis=0))
        residual_part = _unit_rms(class_stream.normal(size=(n_classes, latent_dim)))
        centres = attribute_strength * attribute_part + residual_strength * residual_part

        direction_scales = _unit_norm(1.0 / np.sqrt(np.arange(1, class_rank + 1)))
        class_bases = (class_stream.normal(size=(n_classes, class_rank, latent_dim))
                       * direction_scales[:, None])
        class_spreads = spread * np.exp(spread_variation
                                        * class_stream.normal(size=n_classes))
        shared_scales = shared_strength * _unit_norm(
            1.0 / np.sqrt(np.arange(1, shared_rank + 1)))
        shared_basis = (class_stream.normal(size=(shared_rank, latent_dim))
                        * shared_scales[:, None])
        decoder = class_stream.normal(size=(latent_dim, feature_dim)) / np.sqrt(latent_dim)
        dimension_offsets = offset + 0.5 * class_stream.normal(size=feature_dim)
        dimension_scales = np.exp(0.5 * class_stream.normal(size=feature_dim))
        return cls(centres, class_bases, class_spreads, shared_basis, decoder,
                   dimension_offsets, dimension_scales, tuple(image_seeds.spawn(n_classes)),
                   class_rank, shared_rank, feature_dim, noise, tail_degrees_of_freedom,
                   gain_variation)

    def images(self, classes: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``counts[i]`` images of class ``classes[i]`` each: ``(n, D)`` float32 features
        and ``(n,)`` int64 labels, in the order of ``classes``."""
        classes = np.asarray(classes, dtype=np.int64)
        counts = np.asarray(counts, dtype=np.int64)
        labels = np.repeat(classes, counts)
        if len(classes) == 0:
            return np.zeros((0, self.feature_dim), dtype=np.float32), labels
        degrees = self.tail_degrees_of_freedom
        t_scale = np.sqrt((degrees - 2) / degrees)
        factors, shared_factors, noise_draws, gain_draws = [], [], [], []
        for label, n in zip(classes.tolist(), counts.tolist(), strict=True):
            draw = np.random.default_rng(self.image_seeds[label])
            factors.append(t_scale * draw.standard_t(degrees, size=(n, self.class_rank)))
            shared_factors.append(draw.normal(size=(n, self.shared_rank)))
            noise_draws.append(draw.normal(size=(n, self.feature_dim)))
            gain_draws.append(draw.normal(size=(n, 1)))
        factors, shared_factors, noise_draws, gain_draws = (
            np.concatenate(d) for d in (factors, shared_factors, noise_draws, gain_draws))
        latents = (self.centres[labels]
                   + self.class_spreads[labels, None] * np.einsum(
                       "nk,nkl->nl", factors, self.class_bases[labels])
                   + shared_factors @ self.shared_basis)
        pre = self.dimension_offsets + latents @ self.decoder + self.noise * noise_draws
        features = (np.exp(self.gain_variation * gain_draws) * self.dimension_scales
                    * np.maximum(pre, 0.0))
        return features.astype(np.float32), labels


def _unit_rms(values: np.ndarray) -> np.ndarray:
    rms = np.sqrt(np.mean(values ** 2))
    return values / rms if rms > 0 else values


def _unit_norm(values: np.ndarray) -> np.ndarray:
    return values / np.linalg.norm(values)


def demo_metadata() -> dict:
    """The shipped AWA2 extract: names, attributes, split classes, real image counts.

    A fresh copy each call (callers may modify it); ``sha256`` is the file's checksum.
    """
    return copy.deepcopy(_read_demo_file())


@lru_cache(maxsize=1)
def _read_demo_file() -> dict:
    text = resources.files("gzsl.data").joinpath(DEMO_FILE).read_text(encoding="utf-8")
    document = json.loads(text)
    document["sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return document


def demo_image_counts(scale: float = 1 / 16) -> tuple[np.ndarray, np.ndarray]:
    """Images per class and test-seen images per class of the demo at ``scale``.

    Counts are the real AWA2 counts times ``scale``, rounded, at least
    :data:`MIN_IMAGES_PER_CLASS`. Each seen class holds out the real AWA2 test-seen share
    (5882 of 29409 seen images), at least :data:`MIN_TEST_SEEN_IMAGES`; unseen classes
    hold out none (all their images are test-unseen).
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive; got {scale}")
    meta = demo_metadata()
    real = np.asarray(meta["images_per_class"], dtype=np.float64)
    counts = np.maximum(np.rint(real * scale).astype(np.int64), MIN_IMAGES_PER_CLASS)
    share = meta["test_seen_images"] / meta["seen_images"]
    test_seen = np.maximum(np.rint(counts * share).astype(np.int64), MIN_TEST_SEEN_IMAGES)
    seen = np.zeros(len(counts), dtype=bool)
    seen[meta["seen_classes"]] = True
    return counts, np.where(seen, test_seen, 0)


def embedded_name(name: str | None) -> str | None:
    """The embedded dataset ``name`` denotes (any case), or None for a dataset on disk."""
    if name is None:
        return None
    lowered = name.lower()
    return lowered if lowered in EMBEDDED_DATASETS else None


def load_embedded(name: str) -> GZSLData:
    """The embedded dataset ``name`` (``demo`` or ``demo-awa2``), drawn from seed 0."""
    key = embedded_name(name)
    if key is None:
        raise ValueError(f"{name!r} is not an embedded dataset; "
                         f"they are {', '.join(EMBEDDED_DATASETS)}")
    return load_demo(scale=EMBEDDED_DATASETS[key][1], name=key)


def load_demo(*, scale: float = 1 / 16, feature_dim: int = 512, seed: int = 0,
              name: str = "demo") -> GZSLData:
    """The ``demo`` dataset: AWA2's real attributes and splits with SYNTHETIC features.

    Images per class are the real AWA2 counts times ``scale`` (see
    :func:`demo_image_counts`); features come from :func:`make_synthetic_features` with
    its default structure. Splits (0-based image indices): ``test_unseen`` holds every
    image of the 10 unseen classes; each seen class's first images go to ``trainval`` and
    its last ones to ``test_seen`` (images of a class are exchangeable draws); ``train``
    and ``val`` are the ``trainval`` images of the 27 xlsa17 train classes and of the 13
    val classes.

    Args:
        scale: share of the real per-class image counts to draw.
        feature_dim: dimension of the synthetic features.
        seed: seed of the feature draw.
        name: the dataset's name (``demo-awa2`` is ``scale = 1``).
    """
    meta = demo_metadata()
    semantics = np.asarray(meta["attributes"], dtype=np.float32)
    counts, test_seen_counts = demo_image_counts(scale)
    features, labels = make_synthetic_features(semantics, counts, feature_dim=feature_dim,
                                               seed=seed)
    ends = np.cumsum(counts)
    position = np.arange(len(labels)) - (ends - counts)[labels]
    in_test_seen = position >= (counts - test_seen_counts)[labels]
    is_seen = np.isin(labels, meta["seen_classes"])
    trainval = np.flatnonzero(is_seen & ~in_test_seen)
    splits = {
        "trainval": trainval,
        "test_seen": np.flatnonzero(is_seen & in_test_seen),
        "test_unseen": np.flatnonzero(~is_seen),
        "train": trainval[np.isin(labels[trainval], meta["train_classes"])],
        "val": trainval[np.isin(labels[trainval], meta["val_classes"])],
    }
    source = {
        "layout": "demo",
        "features": "SYNTHETIC: drawn by gzsl.data.demo.make_synthetic_features (a rectified "
                    "low-rank latent model); not extracted from any image",
        "semantics": "real AWA2 attribute matrix 'att' (85 x 50, xlsa17 att_splits.mat)",
        "splits": "real AWA2 40/10 seen/unseen classes and 27/13 train/val classes; image "
                  f"counts are the real per-class counts times {scale:g}",
        "credit": meta["source"],
        "file": f"gzsl/data/{DEMO_FILE}",
        "sha256": meta["sha256"],
        "scale": scale,
        "feature_dim": feature_dim,
        "seed": seed,
    }
    return GZSLData(
        name=name,
        features=features,
        labels=labels,
        semantics=semantics,
        class_names=tuple(meta["class_names"]),
        splits=splits,
        source=source,
        synthetic=True,
    )
