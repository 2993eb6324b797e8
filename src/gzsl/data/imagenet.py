"""ImageNet-21K for GZSL at scale: its unseen-class splits, its dataset names, and an
ImageNet-shaped SYNTHETIC world written straight to a feature store.

The splits (2H, 3H, M500, M1K, M5K, L500, L1K, L5K, ALL) are data, in
``imagenet_splits.toml`` beside this module: :func:`split_definitions`. A dataset name
``IMAGENET-<SPLIT>`` (any case) names one split's task of a store
(:mod:`gzsl.data.store`) given as ``--root``: :func:`load_large_task`. The real store
comes from Xian et al.'s files (:mod:`gzsl.data.imagenet_xian`); the synthetic one from
:func:`make_synthetic_imagenet`.

These splits have no validation classes, so the ``val`` selection protocol has nothing
to select on: :func:`check_selection` refuses it with the alternatives.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from gzsl.data.errors import DataError, GZSLError
from gzsl.data.sources import LargeTask
from gzsl.data.store import Progress, StoreWriter, is_store, load_store_task

SPLITS_FILE = "imagenet_splits.toml"
#: Prefix of the dataset names: IMAGENET-2H, IMAGENET-ALL...
FAMILY = "IMAGENET"
#: Unseen classes of the ALL split; the synthetic world scales split sizes by its own
#: unseen-class count over this.
ALL_UNSEEN = 20345
SEEN_CLASSES = 1000
SYNTHETIC_NAME = "imagenet-synthetic"


@dataclass(frozen=True)
class SplitDefinition:
    """One row of ``imagenet_splits.toml`` (its header documents the fields)."""

    name: str
    kind: str
    size: int
    key: str
    paper: str
    hops: int | None = None
    order: str | None = None

    @property
    def dataset(self) -> str:
        return f"{FAMILY}-{self.name}"

    def scaled_size(self, unseen: int) -> int:
        """The size of this split in a world of ``unseen`` unseen classes: the published
        size times ``unseen / 20345``, at least 1 (the published size at full scale)."""
        if self.kind == "all":
            return unseen
        return max(1, min(unseen, round(self.size * unseen / ALL_UNSEEN)))


@lru_cache(maxsize=1)
def split_definitions() -> dict[str, SplitDefinition]:
    """The splits by name (``2H``...), in the file's order."""
    text = resources.files("gzsl.data").joinpath(SPLITS_FILE).read_text(encoding="utf-8")
    table = tomllib.loads(text)
    return {row["name"]: SplitDefinition(**row) for row in table["split"]}


def dataset_names() -> tuple[str, ...]:
    """``IMAGENET-2H``, ..., ``IMAGENET-ALL``."""
    return tuple(d.dataset for d in split_definitions().values())


def split_of(dataset: str | None) -> str | None:
    """The split a dataset name denotes (``imagenet-m1k`` -> ``M1K``), or None when the
    name is not one of :func:`dataset_names`."""
    if not dataset:
        return None
    upper = dataset.upper()
    prefix = f"{FAMILY}-"
    if not upper.startswith(prefix):
        return None
    split = upper[len(prefix):]
    return split if split in split_definitions() else None


def check_selection(dataset: str, selection: str) -> None:
    """Refuse any selection but ``final`` for an ImageNet-21K split, in one line.

    ``val``: the splits define no validation classes (Xian et al.; VAE-cFlow trains a
    fixed 150K iterations and reports the end), and carving some out of the 1,000 seen
    classes would be a protocol of our own that no published number follows.
    ``test-oracle``: scoring every checkpoint on the test set is not done out of core
    (:func:`gzsl.experiments.streamed.check_large_config`).
    """
    if split_of(dataset) is None or selection == "final":
        return
    why = ("has no validation classes (the ImageNet-21K splits define none), so --selection "
           "val has nothing to select on" if selection == "val" else
           f"runs out of core, where --selection {selection} (scoring every checkpoint on "
           "the test set) is not available")
    raise GZSLError(f"{dataset.upper()} {why}: use --selection final (the paper's protocol: "
                    "the preset's fixed iterations; the default for these presets)")


def locate_store(dataset: str, root: str | Path | None) -> Path:
    """The store folder for ``dataset`` under ``root``: ``root`` itself, or the one
    child folder of ``root`` that is a store whose name starts with ``imagenet``."""
    if root is None:
        raise DataError(f"dataset {dataset!r} needs its feature store and no folder was "
                        "given", fix="pass --root DIR, the folder written by `gzsl data "
                        "convert-imagenet` or `gzsl data make-imagenet-synthetic`")
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"{root} does not exist", file=str(root),
                        fix="pass --root DIR, a feature store folder")
    if is_store(root):
        return root
    found = sorted(child for child in root.iterdir()
                   if child.is_dir() and child.name.lower().startswith(FAMILY.lower())
                   and is_store(child)) if root.is_dir() else []
    if len(found) == 1:
        return found[0]
    listed = f" ({', '.join(p.name for p in found)})" if found else ""
    raise DataError(f"{'several' if found else 'no'} ImageNet feature store(s) found in "
                    f"{root}{listed}", file=str(root),
                    fix="pass --root DIR, the store folder itself (it holds manifest.json)")


def load_large_task(dataset: str, root: str | Path | None) -> LargeTask:
    """The :class:`~gzsl.data.sources.LargeTask` of ``dataset`` (``IMAGENET-2H``...) from
    the store at (or in) ``root``. Reads the manifest and the small arrays only."""
    split = split_of(dataset)
    if split is None:
        raise DataError(f"{dataset!r} is not an ImageNet-21K split",
                        fix=f"use one of {', '.join(dataset_names())}")
    return load_store_task(locate_store(dataset, root), split, name=dataset.upper())


# ------------------------------------------------------------ the synthetic world


@dataclass(frozen=True)
class SyntheticWorld:
    """The bookkeeping of a synthetic ImageNet-shaped world (no features)."""

    semantics: np.ndarray
    hops: np.ndarray
    parents: np.ndarray
    counts: np.ndarray
    seen: int
    train_per_class: int

    @property
    def classes(self) -> int:
        return len(self.counts)


def synthetic_world(*, seen: int = SEEN_CLASSES, unseen: int = ALL_UNSEEN,
                    semantic_dim: int = 500, train_per_class: int = 50,
                    test_per_class: int = 10, unseen_images: float = 20.0,
                    popularity_spread: float = 1.0, seed: int = 0) -> SyntheticWorld:
    """Classes, a hierarchy, semantics and image counts of a synthetic ImageNet.

    * Hierarchy: each unseen class hangs off a seen class (its ``parent``) at a number of
      hops: the first (scaled) 2H-many unseen classes at 1 or 2 hops, the next up to the
      3H size at 3, the rest at 4 to 6, assigned in a random order of the class ids.
    * Semantics (unit vectors, like normalised word vectors): a seen class's is random;
      an unseen class's is its parent's plus noise growing with the hops, so classes
      far in the hierarchy are harder to recognise from their semantics, as on ImageNet.
    * Popularity: unseen classes have a log-normal number of images (median
      ``unseen_images``, log-spread ``popularity_spread``, at least 1), so the most and
      least populated splits differ; seen classes have ``train_per_class`` training and
      ``test_per_class`` test images each.
    """
    if seen < 1 or unseen < 1 or semantic_dim < 1:
        raise GZSLError("a synthetic ImageNet needs at least one seen and one unseen class "
                        "and a semantic dimension of at least 1")
    if train_per_class < 1 or test_per_class < 1 or unseen_images < 1:
        raise GZSLError("--train-per-class, --test-per-class and --unseen-images must be "
                        "at least 1")
    rng = np.random.default_rng([seed, 21])
    definitions = split_definitions()
    two_hops = definitions["2H"].scaled_size(unseen)
    three_hops = max(two_hops, definitions["3H"].scaled_size(unseen))
    by_rank = np.empty(unseen, dtype=np.int64)
    by_rank[:two_hops] = rng.integers(1, 3, size=two_hops)
    by_rank[two_hops:three_hops] = 3
    by_rank[three_hops:] = rng.integers(4, 7, size=unseen - three_hops)
    order = rng.permutation(unseen)
    unseen_hops = np.empty(unseen, dtype=np.int64)
    unseen_hops[order] = by_rank
    parents = rng.integers(0, seen, size=unseen)
    seen_vectors = _unit(rng.normal(size=(seen, semantic_dim)))
    noise = rng.normal(size=(unseen, semantic_dim)) / np.sqrt(semantic_dim)
    unseen_vectors = _unit(seen_vectors[parents] + 0.45 * np.sqrt(unseen_hops)[:, None] * noise)
    popularity = np.exp(popularity_spread * rng.normal(size=unseen))
    unseen_counts = np.maximum(1, np.rint(unseen_images * popularity)).astype(np.int64)
    counts = np.concatenate([np.full(seen, train_per_class + test_per_class, dtype=np.int64),
                             unseen_counts])
    return SyntheticWorld(
        semantics=np.concatenate([seen_vectors, unseen_vectors]).astype(np.float32),
        hops=np.concatenate([np.zeros(seen, dtype=np.int64), unseen_hops]),
        parents=np.concatenate([np.arange(seen), parents]).astype(np.int64),
        counts=counts, seen=seen, train_per_class=train_per_class)


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def rule_splits(unseen_classes: np.ndarray, hops: np.ndarray, counts: np.ndarray
                ) -> dict[str, np.ndarray]:
    """Every split's classes by its rule, for a world without distributed split lists.

    ``hops`` and ``counts`` are per class (indexed by class id). Hierarchy: unseen
    classes within the split's hops; popularity: the scaled size of most / least
    populated unseen classes (ties broken by class id); all: every unseen class.
    """
    unseen_classes = np.sort(np.asarray(unseen_classes, dtype=np.int64))
    out: dict[str, np.ndarray] = {}
    for name, definition in split_definitions().items():
        if definition.kind == "hierarchy":
            chosen = unseen_classes[hops[unseen_classes] <= definition.hops]
        elif definition.kind == "popularity":
            size = definition.scaled_size(len(unseen_classes))
            sign = -1 if definition.order == "most" else 1
            ranked = unseen_classes[np.lexsort((unseen_classes,
                                                sign * counts[unseen_classes]))]
            chosen = ranked[:size]
        else:
            chosen = unseen_classes
        out[name] = np.sort(chosen)
    return out


def make_synthetic_imagenet(out: str | Path, *, seen: int = SEEN_CLASSES,
                            unseen: int = ALL_UNSEEN, feature_dim: int = 2048,
                            semantic_dim: int = 500, train_per_class: int = 50,
                            test_per_class: int = 10, unseen_images: float = 20.0,
                            popularity_spread: float = 1.0, seed: int = 0,
                            force: bool = False, block_rows: int = 4096,
                            progress: Progress | None = None) -> Path:
    """Write a SYNTHETIC ImageNet-shaped world to a feature store at ``out``.

    Bookkeeping from :func:`synthetic_world`, splits from :func:`rule_splits`, features
    from the demo's generator (:class:`gzsl.data.demo.SyntheticFeatureModel`) drawn a
    block of classes at a time (at most ``block_rows`` rows, or one class that has more)
    and appended, so memory does not grow with the number of classes beyond the
    class-level draws. Rows: each seen
    class's training then test images, class after class, then the unseen classes'.
    """
    from gzsl.data.demo import SyntheticFeatureModel, make_synthetic_features

    world = synthetic_world(seen=seen, unseen=unseen, semantic_dim=semantic_dim,
                            train_per_class=train_per_class, test_per_class=test_per_class,
                            unseen_images=unseen_images, popularity_spread=popularity_spread,
                            seed=seed)
    defaults = _feature_defaults(make_synthetic_features)
    model = SyntheticFeatureModel.draw(world.semantics, feature_dim=feature_dim, seed=seed,
                                       **defaults)
    labels = np.repeat(np.arange(world.classes, dtype=np.int64), world.counts)
    starts = np.concatenate([[0], np.cumsum(world.counts)[:-1]])
    position = np.arange(len(labels)) - starts[labels]
    is_seen = labels < seen
    in_train = is_seen & (position < train_per_class)
    writer = StoreWriter(out, feature_dim, len(labels), force=force)
    try:
        total, first = len(labels), 0
        while first < world.classes:
            last = first
            rows = 0
            while last < world.classes and (rows == 0 or rows + world.counts[last]
                                            <= block_rows):
                rows += int(world.counts[last])
                last += 1
            classes = np.arange(first, last)
            features, _ = model.images(classes, world.counts[classes])
            writer.append(features)
            if progress:
                progress(writer.rows, total)
            first = last
        unseen_classes = np.arange(seen, world.classes)
        splits = rule_splits(unseen_classes, world.hops, world.counts)
        provenance: dict[str, Any] = {
            "SYNTHETIC": "features drawn by gzsl.data.demo.SyntheticFeatureModel (the demo's "
                         "rectified low-rank latent model); class hierarchy, semantics and "
                         "image counts drawn by gzsl.data.imagenet.synthetic_world; nothing "
                         "comes from ImageNet",
            "generator": "gzsl.data.imagenet.make_synthetic_imagenet",
            "settings": {"seen": seen, "unseen": unseen, "feature_dim": feature_dim,
                         "semantic_dim": semantic_dim, "train_per_class": train_per_class,
                         "test_per_class": test_per_class, "unseen_images": unseen_images,
                         "popularity_spread": popularity_spread, "seed": seed},
            "split_rules": "hierarchy: hops <= 2 / 3; popularity: scaled size of most / "
                           "least populated; sizes scaled by unseen / 20345",
        }
        names = [f"SYNTHETIC seen {c:04d}" for c in range(seen)] + [
            f"SYNTHETIC unseen {c:05d} ({world.hops[c]} hops from seen {world.parents[c]})"
            for c in unseen_classes]
        return writer.finish(
            name=SYNTHETIC_NAME, synthetic=True, labels=labels, semantics=world.semantics,
            class_names=names, seen_classes=np.arange(seen),
            trainval_loc=np.flatnonzero(in_train),
            test_seen_loc=np.flatnonzero(is_seen & ~in_train),
            unseen_loc=np.flatnonzero(~is_seen), splits=splits, provenance=provenance,
            extra={"hops": world.hops, "parents": world.parents})
    except BaseException:
        writer.abort()
        raise


def _feature_defaults(function: Any) -> dict[str, Any]:
    """The structure settings of :func:`gzsl.data.demo.make_synthetic_features` at their
    documented defaults (one source of truth for the demo and this world)."""
    import inspect

    skip = {"semantics", "images_per_class", "feature_dim", "seed"}
    return {name: parameter.default
            for name, parameter in inspect.signature(function).parameters.items()
            if name not in skip}
