"""Loaders for the three on-disk layouts, all returning :class:`~gzsl.data.GZSLData`.

* ``xlsa17``: ``res101.mat`` (``features`` D x N, ``labels`` N x 1, 1-based) beside
  ``att_splits.mat`` (``att`` A x C, 1-based ``*_loc`` index sets), or
  ``att_splits_trainval_test_only.mat`` (no validation split), or CUB's
  ``sent_splits.mat`` (1024-d sentence embeddings) with ``semantics="sent"``.
* ``datamat``: GSMFlow's ``data.mat`` (features per split, ``attribute`` C x A) and
  ``label.mat`` (1-based class ids per split).
* ``npz``: our own layout for users' own features and semantics, all 0-based.

Every field is documented in ``docs/data-formats.md``. Each loader reads the files
read-only, collects every problem (:mod:`gzsl.data.validation`) and raises them together.
:func:`read_dataset` returns the problems instead of raising, for ``gzsl data check``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from gzsl.data.dataset import GZSLData
from gzsl.data.errors import DataError
from gzsl.data.io import (
    NPZ_OPTIONAL,
    NPZ_REQUIRED,
    check_readable,
    file_record,
    mat_strings,
    read_mat,
    save_npz,
    summarize,
)
from gzsl.data.validation import (
    Problem,
    index_problems,
    missing_keys,
    numeric_problems,
    orient,
    raise_if_problems,
    validate,
)

__all__ = ["KNOWN_DATASETS", "LAYOUTS", "SEMANTICS", "detect_layout", "load_dataset",
           "load_datamat", "load_npz", "load_xlsa17", "read_dataset", "save_npz"]

KNOWN_DATASETS = ("AWA1", "AWA2", "APY", "CUB", "SUN", "FLO")
LAYOUTS = ("xlsa17", "datamat", "npz")
SEMANTICS = ("att", "sent")

FEATURES_FILE = "res101.mat"
#: Split files per ``semantics`` option, in order of preference.
SPLIT_FILES = {"att": ("att_splits.mat", "att_splits_trainval_test_only.mat"),
               "sent": ("sent_splits.mat",)}
DATAMAT_FILES = ("data.mat", "label.mat")
XLSA17_SPLIT_KEYS = {"trainval": "trainval_loc", "test_seen": "test_seen_loc",
                     "test_unseen": "test_unseen_loc", "train": "train_loc", "val": "val_loc"}
NPZ_SPLIT_KEYS = XLSA17_SPLIT_KEYS

FILES_HELP = ("res101.mat with att_splits.mat (xlsa17 layout), or data.mat with label.mat "
              "(GSMFlow layout), or one .npz file (see docs/data-formats.md)")

Result = tuple[GZSLData | None, list[Problem]]

#: Names of the embedded datasets (``gzsl.data.demo.EMBEDDED_DATASETS``, imported only
#: when one is asked for).
EMBEDDED_NAMES = ("demo", "demo-awa2")


def load_dataset(name: str, root: str | Path | None = None, *, layout: str | None = None,
                 semantics: str = "att") -> GZSLData:
    """Load a dataset by name from ``root``, checking it; the single entry point.

    Args:
        name: ``"demo"`` or ``"demo-awa2"`` (any case) for the embedded synthetic datasets
            (:data:`gzsl.data.demo.EMBEDDED_DATASETS`), otherwise the
            dataset's name (``"AWA2"``...), used to find ``root/<name>/`` and shown to users.
        root: a folder holding the files, a parent folder holding ``<name>/``, or a
            ``.npz`` file. Not needed for the embedded datasets.
        layout: ``"xlsa17"``, ``"datamat"`` or ``"npz"``; detected from the files if None.
        semantics: ``"att"`` (``att_splits.mat``) or ``"sent"`` (``sent_splits.mat``),
            xlsa17 layout only.

    Raises:
        DataError: the files cannot be found, or have problems (all listed in one error).
    """
    data, problems = read_dataset(name, root, layout=layout, semantics=semantics)
    raise_if_problems(problems)
    assert data is not None
    return data


def read_dataset(name: str | None, root: str | Path | None = None, *,
                 layout: str | None = None, semantics: str = "att") -> Result:
    """Like :func:`load_dataset` but returns ``(data, problems)`` instead of raising.

    ``data`` is None when the files could not be assembled. Usage errors (no ``root``,
    unknown option, nothing found under ``root``) still raise :class:`DataError`.
    """
    _check_options(layout, semantics)
    from gzsl.data.imagenet import split_of

    if split_of(name) is not None:
        raise DataError(f"{name} is an ImageNet-21K split, too large to load into memory",
                        fix="it is read from a feature store as a LargeTask "
                        "(gzsl.data.imagenet.load_large_task); check one with `gzsl data "
                        "check STORE`")
    if name is not None and name.lower() in EMBEDDED_NAMES:
        from gzsl.data.demo import load_embedded

        data = load_embedded(name)
        return data, validate(data)
    location, found_layout = locate(name, root, layout=layout, semantics=semantics)
    if found_layout == "npz":
        return _read_npz(location, name)
    shown = canonical_name(name) if name else location.name
    if found_layout == "datamat":
        return _read_datamat(location, shown)
    return _read_xlsa17(location, shown, semantics)


def load_xlsa17(directory: str | Path, *, name: str | None = None,
                semantics: str = "att") -> GZSLData:
    """Load ``res101.mat`` + a split file from ``directory`` (see module docstring)."""
    _check_options("xlsa17", semantics)
    directory = Path(directory)
    data, problems = _read_xlsa17(directory, name or directory.name, semantics)
    raise_if_problems(problems)
    assert data is not None
    return data


def load_datamat(directory: str | Path, *, name: str | None = None) -> GZSLData:
    """Load GSMFlow's ``data.mat`` + ``label.mat`` from ``directory``."""
    directory = Path(directory)
    data, problems = _read_datamat(directory, name or directory.name)
    raise_if_problems(problems)
    assert data is not None
    return data


def load_npz(path: str | Path, *, name: str | None = None) -> GZSLData:
    """Load a file in our ``.npz`` layout; ``name`` overrides the name stored in it."""
    data, problems = _read_npz(Path(path), name)
    raise_if_problems(problems)
    assert data is not None
    return data


def canonical_name(name: str) -> str:
    """``awa2`` -> ``AWA2`` for the benchmark datasets; other names unchanged."""
    return next((known for known in KNOWN_DATASETS if known.lower() == name.lower()), name)


@contextmanager
def _os_errors() -> Iterator[None]:
    """Turn an OS error met while finding or reading the files (a folder one may not
    list, a file one may not read or that vanished) into one :class:`DataError` line."""
    try:
        yield
    except OSError as error:
        name = Path(error.filename).name if error.filename else "the dataset files"
        reason = ("permission denied" if isinstance(error, PermissionError)
                  else error.strerror or summarize(error))
        raise DataError(f"cannot read {name}: {reason}",
                        file=str(error.filename) if error.filename else None,
                        fix="check that the path exists and that you may read it "
                        "(chmod u+r for files, u+rx for folders)") from error


def _check_options(layout: str | None, semantics: str) -> None:
    if layout is not None and layout not in LAYOUTS:
        raise DataError(f"unknown layout {layout!r}", key="layout",
                        fix=f"use one of {', '.join(LAYOUTS)}, or leave it out to detect it")
    if semantics not in SEMANTICS:
        raise DataError(f"unknown semantics option {semantics!r}", key="semantics",
                        fix="use 'att' (att_splits.mat: attributes) or 'sent' "
                        "(sent_splits.mat: CUB's sentence embeddings)")


def detect_layout(directory: str | Path) -> str | None:
    """The layout whose files ``directory`` holds, or None.

    Raises:
        DataError: both the xlsa17 and the GSMFlow files are there.
    """
    directory = Path(directory)
    datamat = all((directory / f).is_file() for f in DATAMAT_FILES)
    xlsa17_files = [FEATURES_FILE, *{f for files in SPLIT_FILES.values() for f in files}]
    xlsa17 = any((directory / f).is_file() for f in xlsa17_files)
    if datamat and (directory / FEATURES_FILE).is_file():
        raise DataError(
            f"{directory} holds both res101.mat (xlsa17 layout) and data.mat + label.mat "
            "(GSMFlow layout)", file=str(directory),
            fix="choose one with --layout xlsa17 or --layout datamat")
    if datamat:
        return "datamat"
    return "xlsa17" if xlsa17 else None


def _has_layout_files(directory: Path, layout: str) -> bool:
    if layout == "datamat":
        return any((directory / f).is_file() for f in DATAMAT_FILES)
    if layout == "xlsa17":
        names = [FEATURES_FILE, *{f for files in SPLIT_FILES.values() for f in files}]
        return any((directory / f).is_file() for f in names)
    return False


@_os_errors()
def locate(name: str | None, root: str | Path | None, *, layout: str | None = None,
           semantics: str = "att") -> tuple[Path, str]:
    """Find the files of dataset ``name`` under ``root``: ``(folder or .npz path, layout)``.

    ``root`` may hold the files directly, hold a ``<name>/`` folder (any case) or a
    ``<name>.npz`` file, or be the ``.npz`` file (or one of the ``.mat`` files) itself.
    """
    shown = name or "dataset"
    if root is None:
        raise DataError(
            f"dataset {shown!r} needs its files and no folder was given",
            fix=f"pass --root DIR, a folder holding {FILES_HELP}, or its parent folder "
            f"holding a {shown}/ folder")
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"{root} does not exist", file=str(root),
                        fix=f"pass --root DIR, a folder holding {FILES_HELP}")
    if root.is_file():
        if root.suffix.lower() == ".npz" or layout == "npz":
            return root, "npz"
        if root.suffix.lower() == ".mat":
            root = root.parent
        else:
            raise DataError(f"{root.name} is neither a folder, a .mat nor a .npz file",
                            file=str(root), fix=f"pass a folder holding {FILES_HELP}")
    candidates = [root]
    npz_candidates = []
    if name:
        for child in sorted(root.iterdir()):
            if child.is_dir() and child.name.lower() == name.lower():
                candidates.append(child)
            elif child.is_file() and child.name.lower() == f"{name.lower()}.npz":
                npz_candidates.append(child)
    for directory in candidates:
        if layout in (None, "xlsa17", "datamat"):
            found = (detect_layout(directory) if layout is None
                     else layout if _has_layout_files(directory, layout) else None)
            if found:
                return directory, found
    if npz_candidates and layout in (None, "npz"):
        return npz_candidates[0], "npz"
    tried = ", ".join(str(c) for c in candidates)
    wanted = {"xlsa17": "res101.mat and att_splits.mat", "datamat": "data.mat and label.mat",
              "npz": f"{shown}.npz"}.get(layout or "", FILES_HELP)
    raise DataError(f"no files of dataset {shown!r} found (looked in {tried})", file=str(root),
                    fix=f"pass --root DIR, a folder holding {wanted}, or its parent folder "
                    f"holding a {shown}/ folder")


@_os_errors()
def _read_xlsa17(directory: Path, name: str, semantics: str) -> Result:
    features_path = directory / FEATURES_FILE
    split_path = next((directory / f for f in SPLIT_FILES[semantics]
                       if (directory / f).is_file()), None)
    problems: list[Problem] = []
    if not features_path.is_file():
        problems.append(Problem(
            f"{FEATURES_FILE} not found", file=str(features_path),
            fix="put the xlsa17 res101.mat ('features' D x N, 'labels' N x 1, 1-based) beside "
            "the split file; it is not redistributed with gzsl"))
    if split_path is None:
        other = "att" if semantics == "sent" else "sent"
        problems.append(Problem(
            f"{' or '.join(SPLIT_FILES[semantics])} not found (semantics={semantics!r})",
            file=str(directory / SPLIT_FILES[semantics][0]),
            fix=f"put the split file beside res101.mat, or choose --semantics {other} if "
            f"you have {SPLIT_FILES[other][0]}"))
    if problems:
        return None, problems
    assert split_path is not None
    features_file, split_file = str(features_path), str(split_path)
    stored = read_mat(features_path, ["features", "labels"])
    split_keys = list(XLSA17_SPLIT_KEYS.values())
    splits_stored = read_mat(split_path, ["att", "allclasses_names", *split_keys])
    problems += missing_keys(stored, ["features", "labels"], features_file,
                             fix="res101.mat must hold 'features' (D x N) and 'labels' "
                             "(N x 1, 1-based class ids)")
    problems += missing_keys(splits_stored, ["att", *split_keys[:3]], split_file,
                             fix=f"{split_path.name} must hold 'att' (A x C) and 1-based "
                             "'trainval_loc', 'test_seen_loc', 'test_unseen_loc'")
    if problems:
        return None, problems
    notes: list[str] = []
    labels_stored, found = _vector(stored["labels"], features_file, "labels")
    problems += found
    if labels_stored is None:
        return None, problems
    label_problems = index_problems(labels_stored, base=1, file=features_file, key="labels",
                                    what="class ids")
    problems += label_problems
    n_images = len(labels_stored)
    features, note = _oriented(stored["features"], n_images, 1, features_file, "features",
                               problems)
    notes += [note] if note else []
    names = _names(splits_stored.get("allclasses_names"), split_file, "allclasses_names",
                   problems)
    semantic_matrix, note = _orient_semantics(
        splits_stored["att"], names, None if label_problems else labels_stored, split_file,
        problems, count_axis=1, key="att", label_base=1)
    notes += [note] if note else []
    splits: dict[str, np.ndarray] = {}
    for split, key in XLSA17_SPLIT_KEYS.items():
        if key not in splits_stored:
            continue
        values = _indices(splits_stored[key], 1, n_images, split_file, key, problems)
        if values is not None:
            splits[split] = values - 1
    if problems or features is None or semantic_matrix is None:
        return None, problems
    if "train" not in splits or "val" not in splits:
        notes.append(f"{split_path.name} has no train_loc / val_loc: no validation split")
    class_names = tuple(names) if names else _generated_names(semantic_matrix.shape[0])
    source = {"layout": "xlsa17", "semantics": semantics,
              "files": [file_record(features_path, "features"),
                        file_record(split_path, "splits")],
              "notes": notes}
    data = GZSLData(name=name, features=_float32(features),
                    labels=labels_stored.astype(np.int64) - 1,
                    semantics=_float32(semantic_matrix),
                    class_names=class_names, splits=splits, source=source, synthetic=False)
    origin = {"features": (features_file, "features"), "labels": (features_file, "labels"),
              "semantics": (split_file, "att"), "class_names": (split_file, "allclasses_names")}
    origin.update({split: (split_file, key) for split, key in XLSA17_SPLIT_KEYS.items()})
    return data, validate(data, origin)


@_os_errors()
def _read_datamat(directory: Path, name: str) -> Result:
    data_path, label_path = (directory / f for f in DATAMAT_FILES)
    problems = [Problem(f"{path.name} not found", file=str(path),
                        fix="the GSMFlow layout needs data.mat and label.mat side by side")
                for path in (data_path, label_path) if not path.is_file()]
    if problems:
        return None, problems
    data_file, label_file = str(data_path), str(label_path)
    feature_keys = ("train_fea", "test_seen_fea", "test_unseen_fea")
    label_keys = ("train_idx", "test_seen_idex", "test_unseen_idex")
    stored = read_mat(data_path, [*feature_keys, "attribute", "seen_pro", "unseen_pro"])
    label_stored = read_mat(label_path, list(label_keys))
    problems += missing_keys(stored, [*feature_keys, "attribute"], data_file,
                             fix="data.mat must hold train_fea, test_seen_fea, "
                             "test_unseen_fea (images x D) and attribute (C x A)")
    problems += missing_keys(label_stored, label_keys, label_file,
                             fix="label.mat must hold 1-based train_idx, test_seen_idex "
                             "and test_unseen_idex")
    if problems:
        return None, problems
    notes: list[str] = []
    ids: dict[str, np.ndarray] = {}
    for key in label_keys:
        values = _indices(label_stored[key], 1, None, label_file, key, problems,
                          what="class ids")
        if values is not None:
            ids[key] = values - 1
    if problems:
        return None, problems
    parts = []
    for feature_key, label_key in zip(feature_keys, label_keys, strict=True):
        matrix, note = _oriented(stored[feature_key], len(ids[label_key]), 0, data_file,
                                 feature_key, problems)
        notes += [note] if note else []
        parts.append(matrix)
    problems += _feature_dims(parts, feature_keys, data_file)
    prototypes = {key: np.atleast_2d(np.asarray(stored[key])) for key in ("seen_pro",
                  "unseen_pro") if key in stored}
    attribute = np.asarray(stored["attribute"])
    semantic_dim = next((p.shape[1] for p in prototypes.values() if p.ndim == 2), None)
    semantic_matrix: np.ndarray | None = None
    found = numeric_problems(attribute, file=data_file, key="attribute")
    if attribute.ndim != 2:
        found.append(Problem(f"'attribute' must be a 2-D matrix (C x A), found shape "
                             f"{attribute.shape}", file=data_file, key="attribute",
                             fix="one semantic vector per class, one row per class"))
    problems += found
    if not found and semantic_dim is None:
        semantic_matrix = attribute
    elif not found:
        oriented, found, note = orient(attribute, count=semantic_dim, count_axis=1,
                                       file=data_file, key="attribute", what="attributes")
        problems += found
        notes += [note] if note else []
        semantic_matrix = None if oriented is None else oriented.T
    seen = np.unique(ids["test_seen_idex"])
    unseen = np.unique(ids["test_unseen_idex"])
    for key, classes, label_key in (("seen_pro", seen, "test_seen_idex"),
                                    ("unseen_pro", unseen, "test_unseen_idex")):
        if key in prototypes and prototypes[key].shape[0] != len(classes):
            problems.append(Problem(
                f"'{key}' has {prototypes[key].shape[0]} rows but '{label_key}' in "
                f"{label_path.name} has {len(classes)} classes", file=data_file, key=key,
                fix="the prototypes and the label file must come from the same dataset"))
    train_labels = _datamat_train_labels(ids["train_idx"], seen, label_file, problems, notes)
    if problems or train_labels is None or semantic_matrix is None or any(
            p is None for p in parts):
        return None, problems
    features = _float32(np.concatenate(parts))
    labels = np.concatenate([train_labels, ids["test_seen_idex"], ids["test_unseen_idex"]])
    bounds = np.cumsum([0] + [len(p) for p in parts])
    splits = {split: np.arange(bounds[i], bounds[i + 1], dtype=np.int64)
              for i, split in enumerate(("trainval", "test_seen", "test_unseen"))}
    notes.append("data.mat has no validation split")
    source = {"layout": "datamat", "files": [file_record(data_path, "features"),
                                             file_record(label_path, "labels")],
              "notes": notes}
    data = GZSLData(name=name, features=features, labels=labels.astype(np.int64),
                    semantics=_float32(semantic_matrix),
                    class_names=_generated_names(semantic_matrix.shape[0]), splits=splits,
                    source=source, synthetic=False)
    origin = {"features": (data_file, "train_fea"), "labels": (label_file, "train_idx"),
              "semantics": (data_file, "attribute"), "class_names": (data_file, "attribute"),
              "trainval": (label_file, "train_idx"),
              "test_seen": (label_file, "test_seen_idex"),
              "test_unseen": (label_file, "test_unseen_idex")}
    return data, validate(data, origin)


def _datamat_train_labels(positions: np.ndarray, seen: np.ndarray, label_file: str,
                          problems: list[Problem], notes: list[str]) -> np.ndarray | None:
    """Global class ids of the training images from ``train_idx`` (already 0-based).

    The GSMFlow reference indexes ``seen_pro`` with ``train_idx - 1``: positions among the
    sorted seen classes (the classes of ``test_seen_idex``). Files whose ``train_idx``
    holds class ids instead (values among the seen classes but beyond that range) are
    accepted too.
    """
    if positions.max() < len(seen):
        notes.append("train_idx read as 1-based positions among the seen classes (rows of "
                      "seen_pro), as the GSMFlow reference code reads it")
        return seen[positions]
    if np.isin(positions, seen).all():
        notes.append("train_idx read as 1-based class ids")
        return positions
    problems.append(Problem(
        f"'train_idx' reaches {int(positions.max()) + 1}, but there are {len(seen)} seen "
        "classes and its values are not all classes of test_seen_idex", file=label_file,
        key="train_idx", fix="train_idx must hold 1-based seen-class positions "
        f"(1..{len(seen)}) or 1-based class ids of seen classes"))
    return None


def _open_npz(path: Path) -> dict[str, Any]:
    """Every field of a ``.npz`` file, without unpickling anything.

    Raises:
        DataError: the file is empty, unreadable, not a ``.npz`` archive, or a field
            cannot be read (corrupt member, bad CRC); pickled fields are a problem
            listed with the others instead (returned as ``None``).
    """
    file = str(path)
    check_readable(path)
    fix = "write it with numpy.savez or `gzsl data convert` (docs/data-formats.md)"
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:  # any parser failure on these bytes: see io.read_mat
        raise DataError(f"cannot read {path.name} as a .npz file ({summarize(error)})",
                        file=file, fix=fix) from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path.name} is a single .npy array, not a .npz archive",
                        file=file, fix="save the named fields together: "
                        "numpy.savez(path, features=..., labels=..., ...)")
    stored: dict[str, Any] = {}
    with archive:
        for key in archive.files:
            try:
                stored[key] = archive[key]
            except ValueError as error:
                if "allow_pickle" not in str(error):
                    raise DataError(f"cannot read field '{key}' of {path.name} "
                                    f"({summarize(error)})", file=file, key=key,
                                    fix=fix) from error
                stored[key] = None
            except Exception as error:  # corrupt member: BadZipFile, zlib.error, EOFError
                raise DataError(f"cannot read field '{key}' of {path.name} "
                                f"({summarize(error)})", file=file, key=key,
                                fix=fix) from error
    return stored


@_os_errors()
def _read_npz(path: Path, name: str | None) -> Result:
    file = str(path)
    stored = _open_npz(path)
    problems = missing_keys(stored, NPZ_REQUIRED, file,
                            fix="see docs/data-formats.md for the .npz layout")
    problems += [Problem(
        f"'{key}' is stored as pickled Python objects, which are not loaded", file=file,
        key=key, fix="store numbers as numeric arrays and names as a unicode array: "
        "np.array(names, dtype=str)") for key in (*NPZ_REQUIRED, *NPZ_OPTIONAL)
        if key in stored and stored[key] is None]
    if problems:
        return None, problems
    notes: list[str] = []
    labels, found = _vector(stored["labels"], file, "labels")
    problems += found
    if labels is None:
        return None, problems
    label_problems = index_problems(labels, base=0, file=file, key="labels",
                                    what="class ids")
    problems += label_problems
    n_images = len(labels)
    features, note = _oriented(stored["features"], n_images, 0, file, "features", problems)
    notes += [note] if note else []
    names = None
    if "class_names" in stored:
        names = _names(stored["class_names"], file, "class_names", problems)
    semantic_matrix, note = _orient_semantics(
        stored["semantics"], names, None if label_problems else labels, file, problems,
        count_axis=0, key="semantics", label_base=0)
    notes += [note] if note else []
    splits: dict[str, np.ndarray] = {}
    for split, key in NPZ_SPLIT_KEYS.items():
        if key in stored:
            values = _indices(stored[key], 0, n_images, file, key, problems)
            if values is not None:
                splits[split] = values
    stored_name = _text(stored["name"], file, "name", problems) if "name" in stored else None
    synthetic = _flag(stored["synthetic"], file, "synthetic", problems) \
        if "synthetic" in stored else False
    if problems or features is None or semantic_matrix is None:
        return None, problems
    source: dict[str, Any] = {"layout": "npz", "files": [file_record(path, "dataset")],
                              "notes": notes}
    if "source" in stored:
        try:
            source["converted_from"] = json.loads(str(stored["source"]))
        except json.JSONDecodeError:
            notes.append("field 'source' is not JSON: ignored")
    data = GZSLData(
        name=name or stored_name or path.stem,
        features=_float32(features),
        labels=labels.astype(np.int64),
        semantics=_float32(semantic_matrix),
        class_names=tuple(names) if names else _generated_names(semantic_matrix.shape[0]),
        splits=splits, source=source, synthetic=synthetic)
    origin = {field: (file, field) for field in ("features", "labels", "semantics",
                                                 "class_names")}
    origin.update({split: (file, key) for split, key in NPZ_SPLIT_KEYS.items()})
    return data, validate(data, origin)


def _float32(array: np.ndarray) -> np.ndarray:
    """``array`` as contiguous float32. Values beyond float32's range become inf, which
    :func:`validate` reports by row, so NumPy's overflow warning would only be noise."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.ascontiguousarray(array, dtype=np.float32)


def _oriented(matrix: Any, count: int, count_axis: int, file: str, key: str,
              problems: list[Problem]) -> tuple[np.ndarray | None, str | None]:
    """A stored feature matrix as N x D, or None (with the problems) if not numeric or
    of the wrong shape."""
    found = numeric_problems(matrix, file=file, key=key)
    if found:
        problems += found
        return None, None
    oriented, found, note = orient(np.asarray(matrix), count=count, count_axis=count_axis,
                                   file=file, key=key)
    problems += found
    return oriented, note


def _indices(values: Any, base: int, upper: int | None, file: str, key: str,
             problems: list[Problem], what: str = "image indices") -> np.ndarray | None:
    """A stored index vector as int64 (still ``base``-based), or None after a problem."""
    vector, found = _vector(values, file, key)
    if vector is not None:
        found = index_problems(vector, base=base, upper=upper, file=file, key=key, what=what)
    problems += found
    return None if found or vector is None else vector.astype(np.int64)


def _feature_dims(parts: list[np.ndarray | None], keys: tuple[str, ...],
                  file: str) -> list[Problem]:
    """GSMFlow's three feature matrices must share one dimension D."""
    dims = [(key, part.shape[1]) for key, part in zip(keys, parts, strict=True)
            if part is not None]
    return [Problem(f"'{key}' has {dim} feature columns but '{dims[0][0]}' has "
                    f"{dims[0][1]}", file=file, key=key,
                    fix="all feature parts must come from one feature extractor (same D)")
            for key, dim in dims[1:] if dim != dims[0][1]]


def _flag(value: Any, file: str, key: str, problems: list[Problem]) -> bool:
    """A stored true/false: a bool, 0 or 1, or the text true/false (any case).

    ``bool(np.array("False"))`` is True, so a text flag is never taken at face value.
    """
    array = np.asarray(value)
    if array.size == 1:
        item = array.reshape(()).item()
        if isinstance(item, bool) or (array.dtype.kind in "iuf" and item in (0, 1)):
            return bool(item)
        if isinstance(item, str) and item.strip().lower() in ("true", "false"):
            return item.strip().lower() == "true"
    shown = repr(array.reshape(()).item()) if array.size == 1 else f"shape {array.shape}"
    problems.append(Problem(f"'{key}' must be true or false, found {shown}", file=file,
                            key=key, fix="store np.array(True) or np.array(False)"))
    return False


def _text(value: Any, file: str, key: str, problems: list[Problem]) -> str | None:
    """A stored single string (``np.array("AWA2")``), or None with a problem."""
    array = np.asarray(value)
    if array.dtype.kind == "U" and array.size == 1:
        return str(array.reshape(()).item())
    problems.append(Problem(f"'{key}' must be one string, found {array.dtype} "
                            f"{array.shape}", file=file, key=key,
                            fix=f"store np.array('...') or leave '{key}' out"))
    return None


def _vector(values: Any, file: str, key: str) -> tuple[np.ndarray | None, list[Problem]]:
    """A stored N, N x 1 or 1 x N array as a flat vector; anything else is a problem."""
    array = np.asarray(values)
    if array.ndim <= 1 or (array.ndim == 2 and 1 in array.shape):
        return array.ravel(), []
    return None, [Problem(f"'{key}' must be a vector, found shape {array.shape}", file=file,
                          key=key, fix="store it as an N x 1 (MATLAB) or flat array")]


def _names(value: Any, file: str, key: str, problems: list[Problem]) -> list[str] | None:
    if value is None:
        return None
    try:
        return mat_strings(value)
    except ValueError:
        problems.append(Problem(f"'{key}' must hold strings (class names)", file=file,
                                key=key, fix="store the names as a cell array of strings "
                                "(MATLAB) or np.array(names, dtype=str)"))
        return None


def _orient_semantics(stored: Any, names: list[str] | None, labels: np.ndarray | None,
                      file: str, problems: list[Problem], *, count_axis: int, key: str,
                      label_base: int) -> tuple[np.ndarray | None, str | None]:
    """The class semantic matrix as C x A, or None (with the problems).

    With class names the class count is known and a transposed matrix is recognised
    (ambiguous if square). Without names the stored orientation is trusted unless only
    the transpose has a row for every label (``labels`` is None when they are unusable).
    """
    matrix = np.asarray(stored)
    found = numeric_problems(matrix, file=file, key=key)
    if found:
        problems += found
        return None, None
    if names is not None:
        oriented, found, note = orient(matrix, count=len(names), count_axis=count_axis,
                                       file=file, key=key, what="classes")
        problems += found
        return oriented, note
    if matrix.ndim != 2:
        problems.append(Problem(f"'{key}' must be a 2-D matrix, found shape {matrix.shape}",
                                file=file, key=key, fix="one semantic vector per class"))
        return None, None
    oriented = matrix if count_axis == 0 else matrix.T
    needed = int(labels.max()) - label_base + 1 if labels is not None else 0
    if oriented.shape[0] < needed <= oriented.shape[1]:
        return oriented.T, (f"{Path(file).name} '{key}' is stored transposed "
                            f"({matrix.shape[0]} x {matrix.shape[1]}): transposed on load")
    return oriented, None


def _generated_names(n_classes: int) -> tuple[str, ...]:
    return tuple(f"class_{i}" for i in range(n_classes))
