"""Make a dataset: image features + class semantics + a split -> our ``.npz`` layout.

The split follows xlsa17's proposed splits: unseen classes have no training image and
all their images are test-unseen; of each seen class a held-out share of its images is
test-seen and the rest trainval; validation classes are chosen among the seen classes
(``train_loc``: images of the other seen classes, ``val_loc``: images of the validation
classes, both within trainval). Unseen and validation classes are given by name or drawn
with a seed; the same seed gives the same split.

Also here: :func:`rebuild_validation_split`, which restores xlsa17's ``train_loc`` /
``val_loc`` from ``trainclasses1.txt`` / ``valclasses1.txt`` for copies of
``att_splits.mat`` that lack them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gzsl.data.dataset import GZSLData
from gzsl.data.errors import GZSLError
from gzsl.data.io import summarize


@dataclass(frozen=True)
class SplitSpec:
    """How to split classes and images.

    Attributes:
        unseen: unseen class names; None draws ``unseen_count`` of them with ``seed``.
        unseen_count: how many unseen classes to draw (default: 20% of the classes, at
            least 1).
        val: validation class names (seen); None draws ``val_count`` with ``seed``.
        val_count: how many validation classes to draw (default: 20% of the seen
            classes, at least 1); 0 makes no validation split.
        test_share: share of each seen class's images held out as test-seen.
        seed: seed of every random choice.
    """

    unseen: tuple[str, ...] | None = None
    unseen_count: int | None = None
    val: tuple[str, ...] | None = None
    val_count: int | None = None
    test_share: float = 0.2
    seed: int = 0

    def describe(self) -> dict[str, Any]:
        return {"unseen": "given" if self.unseen is not None else "drawn",
                "val": "given" if self.val is not None else "drawn",
                "test_share": self.test_share, "seed": self.seed}


def _check_names(given: Sequence[str], known: Sequence[str], what: str) -> None:
    unknown = [name for name in given if name not in known]
    if unknown:
        raise GZSLError(f"{what} class(es) {', '.join(unknown[:10])} have no images. Fix: use "
                        f"class names of the features file ({', '.join(list(known)[:6])}...)")


def split_classes(class_names: Sequence[str], spec: SplitSpec) -> tuple[list[str], list[str]]:
    """``(unseen, val)`` class names: given ones checked, others drawn with the seed."""
    rng = np.random.default_rng(spec.seed)
    names = list(class_names)
    if spec.unseen is not None:
        _check_names(spec.unseen, names, "unseen")
        unseen = [n for n in names if n in set(spec.unseen)]
    else:
        count = spec.unseen_count if spec.unseen_count is not None else max(
            1, round(0.2 * len(names)))
        if not 1 <= count < len(names):
            raise GZSLError(f"cannot draw {count} unseen classes from {len(names)}. Fix: "
                            f"--unseen-count between 1 and {len(names) - 1}")
        chosen = set(rng.choice(len(names), size=count, replace=False).tolist())
        unseen = [n for i, n in enumerate(names) if i in chosen]
    seen = [n for n in names if n not in set(unseen)]
    if not seen:
        raise GZSLError("every class is unseen. Fix: leave at least one class seen")
    if spec.val is not None:
        _check_names(spec.val, names, "validation")
        wrong = [n for n in spec.val if n in set(unseen)]
        if wrong:
            raise GZSLError(f"validation class(es) {', '.join(wrong)} are unseen. Fix: choose "
                            "validation classes among the seen classes")
        val = [n for n in seen if n in set(spec.val)]
    else:
        count = spec.val_count if spec.val_count is not None else max(
            1, round(0.2 * len(seen))) if len(seen) > 1 else 0
        if not 0 <= count < len(seen):
            raise GZSLError(f"cannot draw {count} validation classes from {len(seen)} seen "
                            f"classes. Fix: --val-count between 0 and {len(seen) - 1}")
        chosen = set(rng.choice(len(seen), size=count, replace=False).tolist())
        val = [n for i, n in enumerate(seen) if i in chosen]
    if val and len(val) == len(seen):
        raise GZSLError("every seen class is a validation class. Fix: leave at least one "
                        "seen class for training during validation")
    return unseen, val


def make_dataset(features: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                 semantics: np.ndarray, semantic_names: Sequence[str], spec: SplitSpec, *,
                 name: str, source: dict[str, Any] | None = None) -> GZSLData:
    """Assemble a :class:`GZSLData` from features, semantics and a split.

    Args:
        features, labels, class_names: the images (labels index ``class_names``).
        semantics, semantic_names: one vector per class, by name; classes of the images
            must all have one; vectors of classes without images are left out.
        spec: the split.
        name: dataset name.
        source: provenance recorded with the dataset (the split is added to it).

    Raises:
        GZSLError: a class without a semantic vector, an impossible split, or a problem
            the dataset checks find (all listed).
    """
    from gzsl.data.validation import raise_if_problems, validate

    if not 0 < spec.test_share < 1:
        raise GZSLError(f"test share {spec.test_share} must be between 0 and 1 (exclusive)")
    index = {n: i for i, n in enumerate(semantic_names)}
    missing = [n for n in class_names if n not in index]
    if missing:
        raise GZSLError(f"the class semantics have no vector for {len(missing)} class(es) of "
                        f"the images: {', '.join(missing[:10])}. Fix: make the semantics for "
                        "the features file's classes (gzsl features classes --classes-of)")
    counts = np.bincount(labels, minlength=len(class_names))
    present = [n for n, c in zip(class_names, counts, strict=True) if c > 0]
    unseen, val = split_classes(present, spec)
    order = {n: i for i, n in enumerate(present)}
    remap = np.full(len(class_names), -1, dtype=np.int64)
    for i, n in enumerate(class_names):
        remap[i] = order.get(n, -1)
    new_labels = remap[labels]
    rng = np.random.default_rng([spec.seed, 1])
    trainval, test_seen, test_unseen = [], [], []
    notes = []
    for c, n in enumerate(present):
        members = np.flatnonzero(new_labels == c)
        if n in unseen:
            test_unseen.append(members)
            continue
        shuffled = rng.permutation(members)
        held = int(round(spec.test_share * len(members)))
        held = min(max(held, 1), len(members) - 1) if len(members) > 1 else 0
        if held == 0:
            notes.append(f"seen class {n} has one image: it is in trainval only")
        test_seen.append(np.sort(shuffled[:held]))
        trainval.append(np.sort(shuffled[held:]))
    splits = {"trainval": np.sort(np.concatenate(trainval)),
              "test_seen": np.sort(np.concatenate(test_seen)),
              "test_unseen": np.sort(np.concatenate(test_unseen))}
    if val:
        tv = splits["trainval"]
        is_val = np.isin(new_labels[tv], [order[n] for n in val])
        splits["train"], splits["val"] = tv[~is_val], tv[is_val]
    record = dict(source or {})
    record.update({"layout": "made", "split": {**spec.describe(), "unseen_classes": unseen,
                                               "val_classes": val}, "notes": notes})
    data = GZSLData(name=name, features=np.ascontiguousarray(features, dtype=np.float32),
                    labels=new_labels, semantics=np.stack(
                        [np.asarray(semantics[index[n]], dtype=np.float32) for n in present]),
                    class_names=tuple(present), splits=splits, source=record, synthetic=False)
    raise_if_problems(validate(data))
    return data


def read_names(path: str | Path) -> list[str]:
    """Class names, one per line (xlsa17's ``trainclasses1.txt`` style; blank lines and
    lines starting with ``#`` ignored)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise GZSLError(f"cannot read class list {path} ({summarize(error)}). Fix: a UTF-8 "
                        "text file with one class name per line") from error
    names = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if not names:
        raise GZSLError(f"{path} lists no class. Fix: one class name per line")
    return names


def rebuild_validation_split(split_file: str | Path, labels: np.ndarray,
                             train_classes: Sequence[str], val_classes: Sequence[str],
                             out: str | Path) -> dict[str, int]:
    """Write a copy of an xlsa17 split file with ``train_loc`` and ``val_loc`` added.

    As in the official files, ``train_loc`` lists every seen image (trainval and
    test-seen) of the ``train_classes`` and ``val_loc`` every seen image of the
    ``val_classes``; both are 1-based, sorted column vectors.

    Args:
        split_file: ``att_splits.mat`` (or ``*_trainval_test_only.mat``); only read.
        labels: ``(N,)`` 1-based class ids of the images (``res101.mat``'s ``labels``).
        train_classes, val_classes: class names as in ``allclasses_names``.
        out: the new ``.mat`` file (must differ from ``split_file``).

    Returns:
        Image counts: ``{"train_loc": ..., "val_loc": ...}``.
    """
    import scipy.io

    from gzsl.data.io import mat_strings, read_mat
    from gzsl.utils import atomic_write

    split_file, out = Path(split_file), Path(out)
    if out.resolve() == split_file.resolve():
        raise GZSLError(f"{out} is the input file; write the rebuilt split to another file")
    stored = read_mat(split_file)
    needed = ("allclasses_names", "trainval_loc", "test_seen_loc", "test_unseen_loc")
    lacking = [k for k in needed if k not in stored]
    if lacking:
        raise GZSLError(f"{split_file} lacks {', '.join(lacking)}. Fix: pass an xlsa17 split "
                        "file with class names and the three index sets")
    names = mat_strings(stored["allclasses_names"])
    labels = np.asarray(labels).ravel()
    if labels.dtype.kind not in "iuf" or labels.min() < 1 or labels.max() > len(names):
        raise GZSLError(f"labels must be 1-based class ids 1..{len(names)}. Fix: pass "
                        "res101.mat's 'labels' of the same dataset")
    labels = labels.astype(np.int64)
    for what, given in (("train", train_classes), ("val", val_classes)):
        unknown = [n for n in given if n not in names]
        if unknown:
            raise GZSLError(f"{what} class(es) {', '.join(unknown[:5])} are not in "
                            f"{split_file.name}'s allclasses_names. Fix: pass the class lists "
                            "of the same dataset")
    overlap = set(train_classes) & set(val_classes)
    if overlap:
        raise GZSLError(f"class(es) {', '.join(sorted(overlap))} are both train and val. Fix: "
                        "disjoint class lists (trainclasses1.txt, valclasses1.txt)")
    seen_images = np.concatenate([np.ravel(stored["trainval_loc"]),
                                  np.ravel(stored["test_seen_loc"])]).astype(np.int64)
    if seen_images.max() > len(labels):
        raise GZSLError(f"{split_file.name} indexes image {seen_images.max()}, but there are "
                        f"{len(labels)} labels. Fix: pass the labels of the same dataset")
    seen_images.sort()
    unseen_ids = set(labels[np.ravel(stored["test_unseen_loc"]).astype(np.int64) - 1].tolist())
    for given in (train_classes, val_classes):
        wrong = [n for n in given if names.index(n) + 1 in unseen_ids]
        if wrong:
            raise GZSLError(f"class(es) {', '.join(wrong[:5])} are unseen (test_unseen_loc). "
                            "Fix: train and val classes must be seen classes")
    ids_of = {n: i + 1 for i, n in enumerate(names)}
    image_class = labels[seen_images - 1]
    result = dict(stored)
    counts = {}
    for key, given in (("train_loc", train_classes), ("val_loc", val_classes)):
        chosen = seen_images[np.isin(image_class, [ids_of[n] for n in given])]
        result[key] = chosen.reshape(-1, 1).astype(np.float64)
        counts[key] = int(len(chosen))
    atomic_write(out, lambda handle: scipy.io.savemat(handle, result, do_compression=True))
    return counts
