"""Xian et al.'s ImageNet-21K files, converted once into a feature store in blocks.

The files (their layout, and what each detail rests on, in docs/data-formats.md):

* ``ILSVRC2012_res101_feature.mat`` (MATLAB v7.3): ResNet-101 features of the
  ILSVRC-2012 images of the 1,000 seen classes: ``features`` and ``labels`` (training
  images, 1-based class ids 1..1000), ``features_val`` and ``labels_val`` (validation
  images, used here as the seen test images). The two matrices are stored in opposite
  orientations; each is oriented by its label count.
* ``ImageNet_w2v.mat`` (v7.3): ``w2v`` (one 500-d word vector per class, 21,842
  classes), ``wnids`` and ``words`` (cell arrays), ``no_w2v_loc`` (1-based classes
  without a word vector).
* ``ImageNet_splits.mat``: 1-based class ids (rows of ``w2v``) of each split:
  ``hops2``, ``hops3``, ``mp500``, ``mp1000``, ``mp5000``, ``lp500``, ``lp1000``,
  ``lp5000``, ``all`` (the keys of ``imagenet_splits.toml``).
* ``res101_1crop_feature/<id>.bin`` (from ``ImageNet2011_res101_feature.zip``): the
  features of the images of unseen class ``<id>`` (1-based): int32 ``n``, int32 ``d``,
  then ``n * d`` float64, image after image (Xian's ``load_X.m``).

:func:`convert_imagenet` never holds more than one block of seen features or one
unseen class's features; only labels, word vectors and split lists live in memory.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from gzsl.data.errors import DataError
from gzsl.data.imagenet import split_definitions
from gzsl.data.io import check_readable, file_record, mat_strings, read_mat, summarize
from gzsl.data.store import Progress, StoreWriter

SEEN_FILE = "ILSVRC2012_res101_feature.mat"
W2V_FILE = "ImageNet_w2v.mat"
SPLITS_FILE = "ImageNet_splits.mat"
BIN_FOLDER = "res101_1crop_feature"
BIN_HEADER = np.dtype("<i4")
BIN_VALUES = np.dtype("<f8")
REAL_NAME = "imagenet-21k"

_FIX = ("put Xian et al.'s ImageNet files in SRC (docs/data-formats.md lists them); "
        "they are not redistributed with gzsl")


def find_files(source: str | Path) -> dict[str, Path]:
    """The four inputs under ``source`` (in it or in a sub-folder up to two levels down).

    Raises:
        DataError: one line naming every input not found.
    """
    source = Path(source).expanduser()
    if not source.is_dir():
        raise DataError(f"{source} is not a folder", file=str(source), fix=_FIX)
    wanted = {"seen": SEEN_FILE, "w2v": W2V_FILE, "splits": SPLITS_FILE, "bins": BIN_FOLDER}
    found: dict[str, Path] = {}
    for role, name in wanted.items():
        for pattern in (name, f"*/{name}", f"*/*/{name}"):
            hits = sorted(source.glob(pattern))
            if hits:
                found[role] = hits[0]
                break
    missing = [name + ("/" if role == "bins" else "") for role, name in wanted.items()
               if role not in found]
    if missing:
        raise DataError(f"{', '.join(missing)} not found in {source}", file=str(source),
                        fix=_FIX)
    return found


def bin_shape(path: Path) -> tuple[int, int]:
    """``(n, d)`` from a ``.bin`` header, checked against the file's size."""
    check_readable(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        header = np.frombuffer(handle.read(8), dtype=BIN_HEADER)
    if len(header) < 2:
        raise DataError(f"{path.name} is shorter than its 8-byte header", file=str(path),
                        fix="the file is truncated: extract it again")
    n, d = int(header[0]), int(header[1])
    expected = 8 + n * d * BIN_VALUES.itemsize
    if n < 0 or d <= 0 or size != expected:
        raise DataError(f"{path.name} holds {size} bytes but its header (n={n}, d={d}) "
                        f"announces {expected}", file=str(path),
                        fix="the file is truncated or not a load_X.m feature file: extract "
                        "it again")
    return n, d


def read_bin(path: Path) -> np.ndarray:
    """The ``(n, d)`` features of one ``.bin`` file, as float32."""
    n, d = bin_shape(path)
    values = np.fromfile(path, dtype=BIN_VALUES, offset=8, count=n * d)
    return values.reshape(n, d).astype(np.float32)


def _matrix_blocks(path: Path, key: str, count: int, rows: int
                   ) -> tuple[int, Iterator[np.ndarray]]:
    """The feature dimension and the rows (``rows`` at a time, float32) of the v7.3
    matrix ``key`` holding ``count`` images, whichever way it is stored."""
    handle = h5py.File(path, "r")
    node = handle.get(key)
    if not isinstance(node, h5py.Dataset) or node.ndim != 2:
        handle.close()
        raise DataError(f"{path.name} has no 2-D matrix '{key}'", file=str(path), key=key,
                        fix=_FIX)
    first, second = node.shape
    if second == count and first != count:  # MATLAB count x D, stored transposed
        dim, by_column = first, True
    elif first == count and second != count:  # MATLAB D x count
        dim, by_column = second, False
    else:
        handle.close()
        raise DataError(f"'{key}' has HDF5 shape {node.shape}, which does not match its "
                        f"{count} labels along exactly one axis", file=str(path), key=key,
                        fix="the features and labels must come from the same file version")

    def blocks() -> Iterator[np.ndarray]:
        try:
            for start in range(0, count, rows):
                stop = min(start + rows, count)
                block = node[:, start:stop].T if by_column else node[start:stop]
                yield np.asarray(block, dtype=np.float32)
        except OSError as error:
            raise DataError(f"cannot read '{key}' of {path.name} ({summarize(error)})",
                            file=str(path), key=key, fix="the file is damaged or truncated: "
                            "download it again") from error
        finally:
            handle.close()

    return dim, blocks()


def _one_based(values: Any, upper: int, file: Path, key: str) -> np.ndarray:
    """A stored vector of 1-based ids in 1..``upper`` as 0-based int64."""
    array = np.asarray(values)
    if array.ndim > 2 or (array.ndim == 2 and 1 not in array.shape) or array.dtype.kind \
            not in "iuf":
        raise DataError(f"'{key}' must be a numeric vector, found {array.dtype} "
                        f"{array.shape}", file=str(file), key=key, fix=_FIX)
    vector = array.ravel()
    if len(vector) and (vector.min() < 1 or vector.max() > upper
                        or not np.all(vector == np.round(vector))):
        raise DataError(f"'{key}' holds values outside the 1-based ids 1..{upper}",
                        file=str(file), key=key, fix="the split and word-vector files must "
                        "come from the same release")
    return vector.astype(np.int64) - 1


def convert_imagenet(source: str | Path, out: str | Path, *, splits: list[str] | None = None,
                     force: bool = False, block_rows: int = 8192,
                     progress: Progress | None = None) -> Path:
    """Convert Xian et al.'s ImageNet files under ``source`` to a store at ``out``.

    ``splits`` (names of ``imagenet_splits.toml``; default: every one the split file
    holds) choose which unseen classes are converted: those of their union. Rows: the
    seen training images, then the seen validation images (test-seen), then each unseen
    class's images in class order.
    """
    files = find_files(source)
    definitions = split_definitions()
    chosen = list(splits) if splits else list(definitions)
    unknown = [s for s in chosen if s not in definitions]
    if unknown:
        raise DataError(f"unknown split(s) {', '.join(unknown)}",
                        fix=f"choose among {', '.join(definitions)}")
    w2v_path, splits_path, seen_path = files["w2v"], files["splits"], files["seen"]
    vectors = read_mat(w2v_path, ["w2v", "wnids", "words", "no_w2v_loc"])
    if "w2v" not in vectors or "wnids" not in vectors:
        raise DataError(f"{W2V_FILE} must hold 'w2v' and 'wnids'", file=str(w2v_path),
                        fix=_FIX)
    wnids = mat_strings(vectors["wnids"])
    n_classes = len(wnids)
    semantics = np.asarray(vectors["w2v"], dtype=np.float64)
    if semantics.ndim != 2 or n_classes not in semantics.shape:
        raise DataError(f"'w2v' has shape {semantics.shape}, not one row per wnid "
                        f"({n_classes})", file=str(w2v_path), key="w2v", fix=_FIX)
    if semantics.shape[0] != n_classes:
        semantics = semantics.T
    notes: list[str] = []
    no_vector = (_one_based(vectors["no_w2v_loc"], n_classes, w2v_path, "no_w2v_loc")
                 if "no_w2v_loc" in vectors else np.zeros(0, dtype=np.int64))
    blank = ~np.isfinite(semantics).all(axis=1)
    if blank.any():
        semantics[blank] = 0.0
        notes.append(f"{int(blank.sum())} classes have non-finite word vectors: set to 0")
    words = mat_strings(vectors["words"]) if "words" in vectors else []
    names = words if len(words) == n_classes else wnids

    stored = read_mat(splits_path, [definitions[s].key for s in chosen])
    missing = [definitions[s].key for s in chosen if definitions[s].key not in stored]
    if missing and splits:
        raise DataError(f"{SPLITS_FILE} lacks {', '.join(missing)}", file=str(splits_path),
                        fix=f"convert only the splits it holds (--splits) or use xlsa17's "
                        f"{SPLITS_FILE}")
    split_classes = {s: np.sort(_one_based(stored[definitions[s].key], n_classes,
                                           splits_path, definitions[s].key))
                     for s in chosen if definitions[s].key in stored}
    notes += [f"{SPLITS_FILE} has no '{key}': split left out" for key in missing]
    if not split_classes:
        raise DataError(f"{SPLITS_FILE} holds none of the split lists "
                        f"({', '.join(d.key for d in definitions.values())})",
                        file=str(splits_path), fix=_FIX)

    seen_labels = read_mat(seen_path, ["labels", "labels_val"])
    for key in ("labels", "labels_val"):
        if key not in seen_labels:
            raise DataError(f"{SEEN_FILE} lacks '{key}'", file=str(seen_path), key=key,
                            fix=_FIX)
    train_labels = _one_based(seen_labels["labels"], n_classes, seen_path, "labels")
    val_labels = _one_based(seen_labels["labels_val"], n_classes, seen_path, "labels_val")
    seen = np.unique(train_labels)
    unseen = np.unique(np.concatenate(list(split_classes.values())))
    for split, classes in split_classes.items():
        if np.isin(classes, seen).any():
            raise DataError(f"split {split} ('{definitions[split].key}') holds seen classes",
                            file=str(splits_path), key=definitions[split].key,
                            fix="the split file and the ILSVRC-2012 features must come from "
                            "the same release")
        if np.isin(classes, no_vector).any():
            notes.append(f"split {split} holds classes listed in no_w2v_loc")
    bins = [files["bins"] / f"{c + 1}.bin" for c in unseen]
    absent = [p.name for p in bins if not p.is_file()]
    if absent:
        raise DataError(f"{len(absent)} unseen class feature file(s) missing from "
                        f"{files['bins']} (e.g. {absent[0]})", file=str(files["bins"]),
                        fix="extract ImageNet2011_res101_feature.zip completely, or convert "
                        "fewer splits with --splits")
    bin_counts = [bin_shape(p) for p in bins]

    dim, train_blocks = _matrix_blocks(seen_path, "features", len(train_labels), block_rows)
    val_dim, val_blocks = _matrix_blocks(seen_path, "features_val", len(val_labels),
                                         block_rows)
    wrong = [p.name for p, (_, d) in zip(bins, bin_counts, strict=True) if d != dim]
    if val_dim != dim or wrong:
        raise DataError(f"feature dimensions differ: features {dim}, features_val {val_dim}"
                        + (f", {wrong[0]} and {len(wrong) - 1} more" if wrong else ""),
                        file=str(seen_path), fix="all features must come from one network")
    unseen_labels = np.repeat(unseen, [n for n, _ in bin_counts])
    labels = np.concatenate([train_labels, val_labels, unseen_labels])
    total = len(labels)
    writer = StoreWriter(out, dim, total, force=force)
    try:
        for block in itertools.chain(train_blocks, val_blocks):
            writer.append(block)
            if progress:
                progress(writer.rows, total)
        for path in bins:
            writer.append(read_bin(path))
            if progress:
                progress(writer.rows, total)
        n_train, n_val = len(train_labels), len(val_labels)
        provenance = {
            "converted_from": "Xian et al., Zero-shot learning - a comprehensive evaluation "
                              "of the good, the bad and the ugly (ImageNet-21K files)",
            "files": [file_record(files[role], role) for role in ("seen", "w2v", "splits")],
            "unseen_features": {"folder": str(files["bins"].absolute()), "files": len(bins)},
            "test_seen": "labels_val / features_val (ILSVRC-2012 validation images)",
            "notes": notes,
        }
        return writer.finish(
            name=REAL_NAME, synthetic=False, labels=labels, semantics=semantics,
            class_names=names, seen_classes=seen, trainval_loc=np.arange(n_train),
            test_seen_loc=np.arange(n_train, n_train + n_val),
            unseen_loc=np.arange(n_train + n_val, total), splits=split_classes,
            provenance=provenance, extra={"wnids": np.array(wnids, dtype=str)})
    except BaseException:
        writer.abort()
        raise
