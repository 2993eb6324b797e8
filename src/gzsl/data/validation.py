"""Every check on dataset files, written once, returning problems a user can act on.

Two kinds of check live here:

* checks on raw arrays as stored in a file, before any conversion: missing keys
  (:func:`missing_keys`), numbers where numbers belong (:func:`numeric_problems`),
  0-based vs 1-based indices and out-of-range indices (:func:`index_problems`), matrix
  orientation (:func:`orient`);
* checks on an assembled :class:`~gzsl.data.GZSLData` (:func:`validate`): shapes,
  non-finite values, duplicate class names, all-zero or identical semantic vectors,
  labels without semantics, split overlap and coverage, class bookkeeping (unseen
  classes disjoint from seen ones, test-seen classes seen, classes without images), and
  the validation split.

Each returns a list of :class:`Problem` records (message, file, key, fix). The loaders
raise them together as one :class:`DataProblemsError` error; ``gzsl data check`` prints them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gzsl.data.dataset import GZSLData
from gzsl.data.errors import DataError

#: Where each part of a :class:`GZSLData` came from: field -> (file, key).
Origin = Mapping[str, tuple[str | None, str | None]]

#: Splits every dataset has, in the order they are checked.
REQUIRED_SPLITS = ("trainval", "test_seen", "test_unseen")
OPTIONAL_SPLITS = ("train", "val")

_ROWS_PER_CHUNK = 8192


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset: what, where (file and key) and what to do."""

    message: str
    file: str | None = None
    key: str | None = None
    fix: str | None = None

    def to_error(self) -> DataError:
        return DataError(self.message, file=self.file, key=self.key, fix=self.fix)

    def __str__(self) -> str:
        return str(self.to_error())


class DataProblemsError(DataError):
    """All problems found in a dataset, raised as one error.

    ``file``, ``key`` and ``fix`` are those of the first problem; ``problems`` holds all.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        if not problems:
            raise ValueError("DataProblemsError needs at least one problem")
        self.problems = list(problems)
        first = self.problems[0]
        super().__init__(first.message, file=first.file, key=first.key, fix=first.fix)

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return str(self.problems[0])
        listed = "; ".join(f"({i}) {p}" for i, p in enumerate(self.problems, start=1))
        return f"{len(self.problems)} problems in the dataset files: {listed}"


def raise_if_problems(problems: Sequence[Problem]) -> None:
    """Raise all ``problems`` as one :class:`DataProblemsError` error, if there are any."""
    if problems:
        raise DataProblemsError(problems)


def missing_keys(present: Iterable[str], required: Sequence[str], file: str, *,
                 fix: str) -> list[Problem]:
    """One problem per ``required`` key absent from ``present``."""
    have = set(present)
    return [Problem(f"required key '{key}' is missing", file=file, key=key, fix=fix)
            for key in required if key not in have]


_KIND_NAMES = {"U": "text", "S": "text (bytes)", "O": "MATLAB cells/structs or objects",
               "V": "records (structured array)", "M": "dates", "m": "time spans"}


def numeric_problems(values: np.ndarray, *, file: str, key: str) -> list[Problem]:
    """Features and semantic vectors must be real numbers (bool, integer or float).

    Text would fail on conversion; a complex array would silently lose its imaginary part.
    """
    values = np.asarray(values)
    kind = values.dtype.kind
    if kind in "biuf":
        return []
    if kind == "c":
        return [Problem(f"'{key}' holds complex numbers; gzsl needs real values", file=file,
                        key=key, fix="store real numbers: np.real(x) if the imaginary part "
                        "means nothing, else recompute the features or semantics")]
    found = _KIND_NAMES.get(kind, f"dtype {values.dtype}")
    return [Problem(f"'{key}' must hold numbers, found {found}", file=file, key=key,
                    fix="store a numeric (float) matrix")]


def index_problems(values: np.ndarray, *, base: int, file: str, key: str,
                   upper: int | None = None, what: str = "image indices") -> list[Problem]:
    """Check a stored index vector before conversion to 0-based.

    Args:
        values: the indices as stored in the file.
        base: 1 for MATLAB files (xlsa17, ``label.mat``), 0 for our ``.npz`` layout.
        upper: largest valid 0-based index + 1 (the number of images or classes), if known.
        what: what the indices point at, for the message.
    """
    values = np.asarray(values)
    if values.size == 0:
        return [Problem(f"'{key}' is empty", file=file, key=key,
                        fix=f"store the {what} of this set (it must not be empty)")]
    if values.dtype.kind not in "iuf" or (values.dtype.kind == "f" and (
            not np.isfinite(values).all() or (values != np.round(values)).any())):
        return [Problem(f"'{key}' must hold whole numbers ({what}), found dtype "
                        f"{values.dtype}", file=file, key=key,
                        fix="store the indices as an integer array")]
    smallest, largest = int(values.min()), int(values.max())
    if max(abs(smallest), abs(largest)) >= 2**53:
        return [Problem(f"'{key}' contains {largest if largest >= 2**53 else smallest}, "
                        f"far outside any valid index", file=file, key=key,
                        fix=f"store the {what} of this set")]
    problems = []
    if base == 1 and smallest == 0:
        problems.append(Problem(
            f"'{key}' contains 0, but indices in this file are 1-based (MATLAB): the file "
            "looks 0-based", file=file, key=key,
            fix="add 1 to every index of the file's index sets, or save the data in the "
            ".npz layout, whose indices are 0-based (docs/data-formats.md)"))
    elif smallest < base:
        problems.append(Problem(
            f"'{key}' contains {smallest}, below the first valid index {base}", file=file,
            key=key, fix=f"{what} must be {base}-based and non-negative"))
    if upper is not None and largest > upper - 1 + base:
        hint = (" (the indices look 1-based; this layout is 0-based: subtract 1)"
                if base == 0 and largest == upper and smallest > 0 else "")
        problems.append(Problem(
            f"'{key}' contains index {largest}, out of range: there are only {upper} "
            f"{what.split()[0]} (valid {base}..{upper - 1 + base}){hint}", file=file,
            key=key, fix=f"check that '{key}' belongs with the other arrays of this dataset"))
    return problems


def orient(matrix: np.ndarray, *, count: int, count_axis: int, file: str, key: str,
           what: str = "images") -> tuple[np.ndarray | None, list[Problem], str | None]:
    """Return ``matrix`` as ``(count, dim)``, one row per item, tolerating a transpose.

    ``count_axis`` is the axis on which the layout stores the items (xlsa17 ``features``
    are D x N: axis 1). A matrix stored the other way round is transposed, with a note;
    one whose both sides equal ``count`` is ambiguous and one with no side equal to
    ``count`` does not belong with the rest: both are problems.

    Returns:
        The oriented matrix (``None`` on a problem), the problems, and a note or ``None``.
    """
    matrix = np.asarray(matrix)
    expected = f"{count} x dim" if count_axis == 0 else f"dim x {count}"
    if matrix.ndim != 2:
        return None, [Problem(
            f"'{key}' must be a 2-D matrix ({expected}), found shape {matrix.shape}",
            file=file, key=key, fix=f"store one {what[:-1]} per "
            f"{'row' if count_axis == 0 else 'column'}")], None
    declared = matrix.shape[count_axis] == count
    transposed = matrix.shape[1 - count_axis] == count
    if declared and transposed:
        return None, [Problem(
            f"'{key}' is {matrix.shape[0]} x {matrix.shape[1]}: both sides equal the "
            f"{count} {what}, so its orientation is ambiguous", file=file, key=key,
            fix=f"this layout expects {expected}; save it in the .npz layout, whose "
            "features are N x D and semantics C x A (docs/data-formats.md)")], None
    if declared:
        return (matrix if count_axis == 0 else matrix.T), [], None
    if transposed:
        note = (f"{Path(file).name} '{key}' is stored {matrix.shape[0]} x {matrix.shape[1]}"
                f" instead of {expected}: transposed on load")
        return (matrix.T if count_axis == 0 else matrix), [], note
    return None, [Problem(
        f"'{key}' has shape {matrix.shape[0]} x {matrix.shape[1]}, but neither side "
        f"matches the {count} {what}", file=file, key=key,
        fix=f"this layout expects {expected}; check that the file belongs with the others "
        "of this dataset")], None


def validate(data: GZSLData, origin: Origin | None = None) -> list[Problem]:
    """All problems of an assembled dataset (0-based labels and indices).

    Args:
        data: the dataset to check.
        origin: for each field (``features``, ``labels``, ``semantics``, ``class_names``,
            and each split name) the file and key it was read from, so problems name them.
    """
    origin = origin or {}

    def where(field: str) -> dict[str, str | None]:
        file, key = origin.get(field, (None, field))
        return {"file": file, "key": key}

    problems: list[Problem] = []
    features, labels, semantics = data.features, data.labels, data.semantics
    if features.ndim != 2 or labels.ndim != 1 or semantics.ndim != 2:
        return [Problem(
            f"features must be N x D, labels N and semantics C x A; found "
            f"{features.shape}, {labels.shape} and {semantics.shape}", **where("features"),
            fix="see docs/data-formats.md for the expected shapes")]
    n_images, n_classes = features.shape[0], semantics.shape[0]
    if labels.shape[0] != n_images:
        problems.append(Problem(
            f"{labels.shape[0]} labels for {n_images} feature rows", **where("labels"),
            fix="give exactly one label per image"))
    if len(data.class_names) != n_classes:
        problems.append(Problem(
            f"{len(data.class_names)} class names for {n_classes} semantic vectors",
            **where("class_names"), fix="give exactly one name per class"))
    problems += _duplicate_names(data.class_names, where("class_names"))
    problems += _non_finite(features, "image", where("features"))
    problems += _non_finite(semantics, "class", where("semantics"))
    labels_ok = labels.shape[0] == n_images
    if labels_ok and labels.size:
        if labels.min() < 0:
            labels_ok = False
            problems.append(Problem(f"negative class label {int(labels.min())}",
                                    **where("labels"), fix="labels are class ids >= 0"))
        if labels.max() >= n_classes:
            labels_ok = False
            missing = np.unique(labels[labels >= n_classes])
            problems.append(Problem(
                f"{len(missing)} class(es) without semantics: labels reach class "
                f"{int(labels.max())} (0-based) but the semantic matrix has only "
                f"{n_classes} classes", **where("labels"),
                fix=f"add semantic vectors for classes {_few(missing)}, or check that the "
                "labels and the semantics come from the same dataset"))
    used = np.unique(labels) if labels_ok else np.arange(n_classes)
    problems += _indistinct_semantics(semantics, used, data.class_names, where("semantics"))
    splits_ok = True
    for name in REQUIRED_SPLITS:
        if name not in data.splits:
            splits_ok = False
            problems.append(Problem(f"split '{name}' is missing", **where(name),
                                    fix="every dataset needs trainval, test_seen and "
                                    "test_unseen index sets"))
    present = [s for s in REQUIRED_SPLITS + OPTIONAL_SPLITS if s in data.splits]
    for name in present:
        found = _split_range(data.splits[name], n_images, name, where(name))
        splits_ok &= not found
        problems += found
    if ("train" in data.splits) != ("val" in data.splits):
        have, lacking = ("train", "val") if "train" in data.splits else ("val", "train")
        problems.append(Problem(f"split '{have}' is given without '{lacking}'",
                                **where(have), fix="give both train and val, or neither"))
    if not splits_ok:
        return problems
    split = {name: np.asarray(data.splits[name]) for name in present}
    problems += _overlaps(split, where)
    covered = np.zeros(n_images, dtype=bool)
    for name in REQUIRED_SPLITS:
        covered[split[name]] = True
    if not covered.all():
        problems.append(Problem(
            f"{int((~covered).sum())} of {n_images} images are in none of trainval, "
            f"test_seen, test_unseen (e.g. image {int(np.flatnonzero(~covered)[0])})",
            **where("trainval"), fix="the three sets must together cover every image; "
            "drop unused images from features and labels, or add them to a set"))
    if labels_ok:
        problems += _class_problems(data, split, where)
    return problems


def _duplicate_names(names: Sequence[str], place: dict) -> list[Problem]:
    """Per-class results are keyed by name: two classes of one name would merge."""
    positions: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        positions.setdefault(name, []).append(index)
    repeated = [(name, where) for name, where in positions.items() if len(where) > 1]
    if not repeated:
        return []
    listed = "; ".join(f"{name!r} (classes {', '.join(map(str, where))})"
                       for name, where in repeated[:5])
    more = f"; ... ({len(repeated)} names in all)" if len(repeated) > 5 else ""
    return [Problem(f"class names appear more than once: {listed}{more}", **place,
                    fix="give every class its own name")]


def _indistinct_semantics(semantics: np.ndarray, used: np.ndarray, names: Sequence[str],
                          place: dict) -> list[Problem]:
    """Classes with images whose semantic vector is all zeros, or equal to another's.

    No method can tell apart two classes with one semantic vector, and an all-zero vector
    describes nothing (and has no direction once normalised). None of the xlsa17
    benchmarks has either, so both are refused rather than warned about.
    """
    rows = semantics[used]
    finite = np.isfinite(rows).all(axis=1)
    problems = []
    zero = used[finite & ~rows.any(axis=1)]
    if len(zero):
        problems.append(Problem(
            f"{len(zero)} class(es) with images have an all-zero semantic vector: "
            f"{_names(zero, names)}", **place,
            fix="give every class a semantic vector that describes it"))
    if finite.sum() < 2:
        return problems
    kept = used[finite]
    _, group, counts = np.unique(rows[finite], axis=0, return_inverse=True,
                                 return_counts=True)
    group = group.ravel()
    shared = [kept[group == g] for g in np.flatnonzero(counts > 1)]
    if shared:
        listed = "; ".join(" = ".join(f"{int(c)} ({names[int(c)]})" if int(c) < len(names)
                                      else str(int(c)) for c in classes)
                           for classes in shared[:5])
        more = f"; ... ({len(shared)} groups in all)" if len(shared) > 5 else ""
        problems.append(Problem(
            f"classes share one semantic vector, so no method can tell them apart: "
            f"{listed}{more}", **place,
            fix="correct the semantic vectors, or merge the classes into one"))
    return problems


def _non_finite(matrix: np.ndarray, row_name: str, place: dict) -> list[Problem]:
    bad_rows = []
    for start in range(0, matrix.shape[0], _ROWS_PER_CHUNK):
        block = matrix[start:start + _ROWS_PER_CHUNK]
        bad_rows.append(start + np.flatnonzero(~np.isfinite(block).all(axis=1)))
    bad = np.concatenate(bad_rows) if bad_rows else np.zeros(0, dtype=np.int64)
    if not len(bad):
        return []
    return [Problem(
        f"NaN or infinite values in {len(bad)} {row_name} row(s) (0-based rows "
        f"{_few(bad)}; values beyond float32's range, 3.4e38, count as infinite)", **place,
        fix=f"re-extract or drop those {row_name}s; NaN and inf make every method fail")]


def _split_range(values: np.ndarray, n_images: int, name: str, place: dict) -> list[Problem]:
    values = np.asarray(values)
    if values.ndim != 1 or values.dtype.kind not in "iu":
        return [Problem(f"split '{name}' must be a 1-D integer index array, found "
                        f"{values.dtype} {values.shape}", **place,
                        fix="store 0-based image indices as integers")]
    if values.size == 0:
        return [Problem(f"split '{name}' is empty", **place,
                        fix="every split needs at least one image")]
    if values.min() < 0 or values.max() >= n_images:
        bad = values[(values < 0) | (values >= n_images)]
        return [Problem(f"split '{name}' has {len(bad)} index(es) out of range 0..."
                        f"{n_images - 1} (e.g. {int(bad[0])})", **place,
                        fix="indices must point at rows of the features")]
    if len(np.unique(values)) != len(values):
        return [Problem(f"split '{name}' lists {len(values) - len(np.unique(values))} "
                        "image(s) more than once", **place, fix="list each image once")]
    return []


def _overlaps(split: dict[str, np.ndarray], where) -> list[Problem]:
    pairs = [("trainval", "test_seen"), ("trainval", "test_unseen"),
             ("test_seen", "test_unseen")]
    if "train" in split and "val" in split:
        pairs += [("train", "val"), ("train", "test_unseen"), ("val", "test_unseen")]
    problems = []
    for first, second in pairs:
        shared = np.intersect1d(split[first], split[second])
        if len(shared):
            problems.append(Problem(
                f"splits '{first}' and '{second}' share {len(shared)} image(s) (0-based "
                f"{_few(shared)})", **where(second),
                fix=f"an image may be in only one of '{first}' and '{second}'"))
    return problems


def _class_problems(data: GZSLData, split: dict[str, np.ndarray], where) -> list[Problem]:
    labels, names = data.labels, data.class_names
    classes = {name: np.unique(labels[index]) for name, index in split.items()}
    seen, unseen = classes["trainval"], classes["test_unseen"]
    problems = []
    both = np.intersect1d(seen, unseen)
    if len(both):
        problems.append(Problem(
            f"{len(both)} class(es) are both seen (in trainval) and unseen (in test_unseen): "
            f"{_names(both, names)}", **where("test_unseen"),
            fix="unseen classes must have no training image"))
    unseen_test_seen = np.setdiff1d(classes["test_seen"], seen)
    if len(unseen_test_seen):
        problems.append(Problem(
            f"{len(unseen_test_seen)} class(es) of test_seen have no trainval image: "
            f"{_names(unseen_test_seen, names)}", **where("test_seen"),
            fix="test_seen images must belong to seen classes (classes of trainval)"))
    if "train" in classes and "val" in classes:
        shared = np.intersect1d(classes["train"], classes["val"])
        if len(shared):
            problems.append(Problem(
                f"{len(shared)} class(es) are in both train and val: "
                f"{_names(shared, names)}", **where("val"),
                fix="validation classes play unseen: they must have no train image"))
        outside = np.setdiff1d(np.union1d(classes["train"], classes["val"]), seen)
        if len(outside):
            problems.append(Problem(
                f"{len(outside)} class(es) of train/val are not seen classes: "
                f"{_names(outside, names)}", **where("val"),
                fix="the validation split must use only classes of trainval"))
    empty = np.setdiff1d(np.arange(data.n_classes), labels)
    if len(empty):
        problems.append(Problem(
            f"{len(empty)} class(es) have semantics but no image: {_names(empty, names)}",
            **where("semantics"),
            fix="give every class images, or drop its semantic vector and name"))
    return problems


def _few(values: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(int(v)) for v in values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def _names(ids: np.ndarray, names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(f"{int(i)} ({names[int(i)]})" if int(i) < len(names) else str(int(i))
                      for i in ids[:limit])
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > limit else "")
