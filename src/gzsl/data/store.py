"""gzsl's on-disk feature store: a dataset too large for memory, read row by row.

A store is a folder::

    manifest.json   format and version, name, SYNTHETIC flag, shapes, dtype, image and
                    class counts per split, checksums, provenance
    features.npy    the (N, D) float16 matrix, row-major, in NumPy's .npy format (its
                    header carries shape and dtype), read by positioned reads
    arrays.npz      everything small, 0-based: ``labels`` (N,) class ids, ``semantics``
                    (C, K) float32, ``class_names`` (C,), ``seen_classes``,
                    ``trainval_loc`` / ``test_seen_loc`` / ``unseen_loc`` (row indices:
                    training images of the seen classes, their test images, every image
                    of an unseen class), ``split_<NAME>`` (the unseen classes of each
                    split, e.g. ``split_2H``), optionally ``hops`` (C,) and ``wnids`` (C,)

The features of one split's task are rows of the one matrix: :func:`load_store_task`
builds a :class:`~gzsl.data.sources.LargeTask` whose three parts are
:class:`OnDiskFeatures` views (row-index lists) of ``features.npy``; nothing reads the
whole matrix. The checksum ``features_sha256`` is SHA-256 of the float16 values in row
order (little-endian), so :func:`check_store` verifies it in the same streamed pass that
looks for non-finite values; ``arrays_sha256`` is that of the ``arrays.npz`` file.

Why a raw row-major ``.npy`` read with positioned reads, not a chunked HDF5 file (both
were built and measured, docs/data-formats.md): a random batch of 256 rows of 2048
float16 values reads over 10x faster (a 4 KiB row is one read of exactly its bytes,
where HDF5 reads and converts whole chunks, or walks a slow point selection), and a
full pass about 2x faster. Not a memory map either: mapped pages that were read or
written count in the process's resident memory, which would then grow with the data.
The ``.npy`` header carries shape and dtype, and a file shorter than its header says
is refused when opened. The price: the writer must know N before it starts (both do).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gzsl.data.errors import DataError
from gzsl.data.io import check_readable, sha256_file, summarize
from gzsl.data.sources import LargeTask
from gzsl.data.validation import Problem

FORMAT = "gzsl-feature-store"
VERSION = 1
MANIFEST = "manifest.json"
FEATURES_FILE = "features.npy"
ARRAYS_FILE = "arrays.npz"
STORE_DTYPE = np.float16
#: float16's largest finite value; a feature beyond it would be stored as inf.
FLOAT16_MAX = float(np.finfo(np.float16).max)
#: Rows per block of a streamed pass over the whole matrix (checksum, scans).
SCAN_ROWS = 1 << 14
ROW_SETS = ("trainval_loc", "test_seen_loc", "unseen_loc")

Progress = Callable[[int, int], None]


def is_store(path: str | Path) -> bool:
    """Whether ``path`` is a folder holding a store's manifest."""
    return (Path(path) / MANIFEST).is_file()


class OnDiskFeatures:
    """A :class:`~gzsl.data.sources.FeatureSource` over rows of a store's ``features.npy``.

    ``rows`` (optional) selects and orders the rows this source shows: row ``i`` of the
    source is row ``rows[i]`` of the file. ``read`` sorts the distinct file rows it
    needs, reads each run of consecutive rows with one positioned read (``os.pread``)
    and returns float32 rows in the order asked (indices may repeat). Nothing is
    memory-mapped, so the process holds only the rows asked: the operating system's
    page cache keeps what it can, outside the process's resident memory. The file is
    opened on first read, so a source pickles without its descriptor (worker processes).
    """

    def __init__(self, path: str | Path, rows: np.ndarray | None = None) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self.header = matrix_header(self.path)
        self._dim = self.header.dim
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        if self.rows is not None and len(self.rows) and (
                self.rows.min() < 0 or self.rows.max() >= self.header.rows):
            raise DataError(f"row indices outside 0..{self.header.rows - 1} of "
                            f"{self.path.name}", file=str(self.path))

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), self._dim)

    def __len__(self) -> int:
        return self.header.rows if self.rows is None else len(self.rows)

    def read(self, indices: np.ndarray) -> np.ndarray:
        return self.read_stored(indices).astype(np.float32)

    def read_stored(self, indices: np.ndarray) -> np.ndarray:
        """:meth:`read` without the conversion: float16 rows as stored."""
        indices = np.asarray(indices, dtype=np.int64).ravel()
        if len(indices) and (indices.min() < -len(self) or indices.max() >= len(self)):
            raise IndexError(f"index out of range for {len(self)} rows")
        indices = np.where(indices < 0, indices + len(self), indices)
        wanted = indices if self.rows is None else self.rows[indices]
        if len(wanted) and wanted[-1] - wanted[0] == len(wanted) - 1 and np.all(
                np.diff(wanted) == 1):  # a run of consecutive rows: one read
            return self._read_runs(wanted)
        unique, inverse = np.unique(wanted, return_inverse=True)
        return self._read_runs(unique)[inverse.ravel()]

    def blocks(self, rows: int = SCAN_ROWS, *, stored: bool = False) -> Iterator[np.ndarray]:
        """The whole source in order, ``rows`` rows at a time: float32, or float16 as
        stored with ``stored``."""
        read = self.read_stored if stored else self.read
        for start in range(0, len(self), rows):
            yield read(np.arange(start, min(start + rows, len(self))))

    def _read_runs(self, unique: np.ndarray) -> np.ndarray:
        """File rows ``unique`` (sorted, distinct) as float16, one read per run."""
        out = np.empty((len(unique), self._dim), dtype=STORE_DTYPE)
        if not len(unique):
            return out
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        row_bytes = self.header.row_bytes
        breaks = np.flatnonzero(np.diff(unique) != 1) + 1
        position = 0
        for run in np.split(unique, breaks):
            size = len(run) * row_bytes
            data = os.pread(self._fd, size, self.header.offset + int(run[0]) * row_bytes)
            if len(data) != size:
                raise DataError(f"{self.path.name} ended while reading row {int(run[0])}",
                                file=str(self.path), fix="the file was truncated: write "
                                "the store again")
            out[position:position + len(run)] = np.frombuffer(data, dtype="<f2").reshape(
                len(run), self._dim)
            position += len(run)
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_fd"] = None
        return state

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            self.close()


@dataclass(frozen=True)
class MatrixHeader:
    """Where a ``.npy`` float16 matrix's rows are: ``rows`` x ``dim`` from ``offset``."""

    rows: int
    dim: int
    offset: int

    @property
    def row_bytes(self) -> int:
        return self.dim * STORE_DTYPE().itemsize


def matrix_header(path: Path) -> MatrixHeader:
    """The header of the ``.npy`` matrix in ``path``, checked: a 2-D float16 row-major
    matrix, with every byte its header announces. A missing, empty, truncated or foreign
    file is one :class:`DataError` line."""
    check_readable(path)
    fix = ("the file is damaged or incomplete: write the store again (gzsl data "
           "convert-imagenet / make-imagenet-synthetic)")
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = reader(handle)
            offset = handle.tell()
    except Exception as error:  # ValueError for a bad magic string or header
        raise DataError(f"cannot read {path.name} as a .npy matrix ({summarize(error)})",
                        file=str(path), fix=fix) from error
    if len(shape) != 2 or dtype != np.dtype("<f2") or fortran:
        raise DataError(f"{path.name} must hold a 2-D row-major float16 matrix (N x D), "
                        f"found {dtype} {shape}{' (Fortran order)' if fortran else ''}",
                        file=str(path), fix="write the store again")
    header = MatrixHeader(int(shape[0]), int(shape[1]), offset)
    expected = offset + header.rows * header.row_bytes
    size = path.stat().st_size
    if size < expected:
        raise DataError(f"{path.name} is truncated: {size} bytes, its header announces "
                        f"{header.rows} x {header.dim} float16 ({expected} bytes)",
                        file=str(path), fix=fix)
    return header


# ------------------------------------------------------------------------- writing


class StoreWriter:
    """Write a store: ``rows`` feature rows appended block by block, then the arrays.

    Everything goes to ``<root>.partial`` first, renamed to ``root`` by :meth:`finish`,
    so an interrupted write never leaves a folder that looks like a store. The feature
    checksum is computed while appending; the matrix is never held whole.
    """

    def __init__(self, root: str | Path, dim: int, rows: int, *, force: bool = False
                 ) -> None:
        self.root = Path(root)
        if self.root.exists() and not force:
            raise DataError(f"{self.root} exists", file=str(self.root),
                            fix="choose another folder, or pass --force to replace it")
        self.partial = self.root.with_name(self.root.name + ".partial")
        if self.partial.exists():
            shutil.rmtree(self.partial)
        self.partial.mkdir(parents=True)
        self.dim, self.total = int(dim), int(rows)
        self._file = open(self.partial / FEATURES_FILE, "wb")  # noqa: SIM115 - closed in finish
        np.lib.format.write_array_header_1_0(self._file, {
            "descr": np.lib.format.dtype_to_descr(np.dtype("<f2")), "fortran_order": False,
            "shape": (self.total, self.dim)})
        self.rows = 0
        self._digest = hashlib.sha256()

    def append(self, block: np.ndarray) -> None:
        """Add rows (any float dtype) after those written; values must fit float16."""
        block = np.asarray(block)
        if block.ndim != 2 or block.shape[1] != self.dim:
            raise DataError(f"feature block of shape {block.shape} does not match "
                            f"{self.dim}-d rows")
        if self.rows + len(block) > self.total:
            raise DataError(f"more feature rows than the {self.total} announced")
        with np.errstate(invalid="ignore"):
            too_large = np.abs(block[np.isfinite(block)]).max(initial=0.0) > FLOAT16_MAX
        if too_large:
            raise DataError(f"feature values beyond float16's range (|x| > {FLOAT16_MAX:g})",
                            fix="scale the features down before converting them")
        stored = np.ascontiguousarray(block, dtype="<f2").tobytes()
        self._file.write(stored)
        self._digest.update(stored)
        self.rows += len(block)

    def finish(self, *, name: str, synthetic: bool, labels: np.ndarray,
               semantics: np.ndarray, class_names: list[str] | tuple[str, ...],
               seen_classes: np.ndarray, trainval_loc: np.ndarray, test_seen_loc: np.ndarray,
               unseen_loc: np.ndarray, splits: dict[str, np.ndarray],
               provenance: dict[str, Any], extra: dict[str, np.ndarray] | None = None
               ) -> Path:
        """Write the arrays and the manifest, and move the folder into place."""
        if self.rows != self.total:
            raise DataError(f"{self.rows} feature rows written of the {self.total} announced")
        self._file.close()
        labels = np.asarray(labels, dtype=np.int64)
        semantics = np.ascontiguousarray(semantics, dtype=np.float32)
        arrays: dict[str, np.ndarray] = {
            "labels": labels,
            "semantics": semantics,
            "class_names": np.array(list(class_names), dtype=str),
            "seen_classes": np.asarray(seen_classes, dtype=np.int64),
            "trainval_loc": np.asarray(trainval_loc, dtype=np.int64),
            "test_seen_loc": np.asarray(test_seen_loc, dtype=np.int64),
            "unseen_loc": np.asarray(unseen_loc, dtype=np.int64),
        }
        for split, classes in splits.items():
            arrays[f"split_{split}"] = np.asarray(classes, dtype=np.int64)
        arrays.update(extra or {})
        arrays_path = self.partial / ARRAYS_FILE
        with open(arrays_path, "wb") as handle:
            np.savez(handle, **arrays)
        unseen_labels = labels[arrays["unseen_loc"]]
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "name": name,
            "synthetic": bool(synthetic),
            "features": {"file": FEATURES_FILE, "rows": self.rows, "dim": self.dim,
                         "dtype": "float16", "order": "row-major (C)"},
            "classes": int(semantics.shape[0]),
            "semantic_dim": int(semantics.shape[1]),
            "seen_classes": len(arrays["seen_classes"]),
            "unseen_classes": int(len(np.unique(unseen_labels))),
            "images": {"trainval": len(arrays["trainval_loc"]),
                       "test_seen": len(arrays["test_seen_loc"]),
                       "unseen": len(arrays["unseen_loc"])},
            "splits": {split: {"classes": len(classes),
                               "images": int(np.isin(unseen_labels, classes).sum())}
                       for split, classes in splits.items()},
            "checksum": {"algorithm": "sha256",
                         "features_sha256": self._digest.hexdigest(),
                         "arrays_sha256": sha256_file(arrays_path)},
            "provenance": provenance,
        }
        (self.partial / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        if self.root.exists():
            shutil.rmtree(self.root)
        os.replace(self.partial, self.root)
        return self.root

    def abort(self) -> None:
        """Drop what was written (after an error)."""
        self._file.close()
        shutil.rmtree(self.partial, ignore_errors=True)


# ------------------------------------------------------------------------- reading


@dataclass
class Store:
    """A store's manifest and small arrays (features stay on disk)."""

    root: Path
    manifest: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def features_path(self) -> Path:
        return self.root / self.manifest["features"]["file"]

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", self.root.name))

    @property
    def synthetic(self) -> bool:
        return bool(self.manifest.get("synthetic", False))

    @property
    def splits(self) -> list[str]:
        return [key[len("split_"):] for key in self.arrays if key.startswith("split_")]

    def features(self, rows: np.ndarray | None = None) -> OnDiskFeatures:
        return OnDiskFeatures(self.features_path, rows)

    def split_classes(self, split: str) -> np.ndarray:
        key = f"split_{split}"
        if key not in self.arrays:
            raise DataError(f"store {self.root} has no split {split!r}",
                            file=str(self.root / ARRAYS_FILE), key=key,
                            fix=f"choose one of {', '.join(self.splits) or 'none'}")
        return self.arrays[key]


def read_manifest(root: str | Path) -> dict[str, Any]:
    """The manifest of the store at ``root``; anything unreadable is one error line."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise DataError(f"{root} is not a gzsl feature store ({MANIFEST} not found)",
                        file=str(path), fix="pass the folder written by `gzsl data "
                        "convert-imagenet` or `gzsl data make-imagenet-synthetic`")
    check_readable(path)
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{MANIFEST} is not valid JSON ({summarize(error)})", file=str(path),
                        fix="write the store again") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{MANIFEST} is not a gzsl feature store manifest (format "
                        f"{manifest.get('format') if isinstance(manifest, dict) else None!r})",
                        file=str(path), key="format", fix="write the store again")
    if manifest.get("version") != VERSION:
        raise DataError(f"store format version {manifest.get('version')!r} is not supported "
                        f"(this gzsl reads version {VERSION})", file=str(path),
                        key="version", fix="write the store again with this gzsl")
    for key in ("features", "classes", "semantic_dim", "checksum"):
        if key not in manifest:
            raise DataError(f"{MANIFEST} lacks '{key}'", file=str(path), key=key,
                            fix="write the store again")
    return manifest


def open_store(root: str | Path) -> Store:
    """The manifest and small arrays of the store at ``root`` (not checked; see
    :func:`check_store`)."""
    root = Path(root)
    manifest = read_manifest(root)
    path = root / ARRAYS_FILE
    check_readable(path)
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
    except Exception as error:  # any parser failure on these bytes
        raise DataError(f"cannot read {ARRAYS_FILE} ({summarize(error)})", file=str(path),
                        fix="write the store again") from error
    return Store(root, manifest, arrays)


def load_store_task(root: str | Path, split: str, *, name: str | None = None) -> LargeTask:
    """The GZSL task of ``split`` (its unseen classes) from the store at ``root``.

    Train: the seen classes' training rows; test-seen: their test rows; test-unseen:
    every row of the split's unseen classes. The three are :class:`OnDiskFeatures`
    views; labels are global class ids. Only ``arrays.npz`` and the manifest are read.
    """
    store = open_store(root)
    problems = structure_problems(store)
    if problems:
        raise problems[0].to_error()
    classes = np.sort(store.split_classes(split))
    labels = store.arrays["labels"]
    unseen_rows = store.arrays["unseen_loc"]
    unseen_rows = unseen_rows[np.isin(labels[unseen_rows], classes)]
    parts = {"train": store.arrays["trainval_loc"], "test_seen": store.arrays["test_seen_loc"],
             "test_unseen": unseen_rows}
    return LargeTask(
        name=name or f"{store.name}-{split}",
        train=store.features(parts["train"]), train_labels=labels[parts["train"]],
        test_seen=store.features(parts["test_seen"]),
        test_seen_labels=labels[parts["test_seen"]],
        test_unseen=store.features(parts["test_unseen"]),
        test_unseen_labels=labels[parts["test_unseen"]],
        semantics=np.asarray(store.arrays["semantics"], dtype=np.float32),
        seen_classes=np.sort(store.arrays["seen_classes"]),
        unseen_classes=classes,
        class_names=tuple(str(n) for n in store.arrays["class_names"]),
        synthetic=store.synthetic,
        source={"layout": FORMAT, "root": str(Path(root).resolve()), "split": split,
                "checksum": store.manifest["checksum"],
                "provenance": store.manifest.get("provenance", {})},
    )


# ------------------------------------------------------------------------- checking

REQUIRED_ARRAYS = ("labels", "semantics", "class_names", "seen_classes", *ROW_SETS)


def structure_problems(store: Store) -> list[Problem]:
    """Problems found from the manifest, the small arrays and the HDF5 header alone
    (no feature row is read): missing pieces, shapes, label and index ranges, class
    bookkeeping."""
    arrays_file = str(store.root / ARRAYS_FILE)
    fix = "write the store again (gzsl data convert-imagenet / make-imagenet-synthetic)"
    problems = [Problem(f"{ARRAYS_FILE} lacks '{key}'", file=arrays_file, key=key, fix=fix)
                for key in REQUIRED_ARRAYS if key not in store.arrays]
    if not store.features_path.is_file():
        problems.append(Problem(f"{store.features_path.name} not found",
                                file=str(store.features_path), fix=fix))
    if problems:
        return problems
    meta = store.manifest["features"]
    header = matrix_header(store.features_path)
    rows, dim, dtype = header.rows, header.dim, "float16"
    if (rows, dim) != (meta.get("rows"), meta.get("dim")) or dtype != meta.get("dtype"):
        problems.append(Problem(
            f"{store.features_path.name} holds {rows} x {dim} {dtype} but the manifest says "
            f"{meta.get('rows')} x {meta.get('dim')} {meta.get('dtype')}",
            file=str(store.features_path), fix=fix))
    a = store.arrays
    labels, semantics = a["labels"], a["semantics"]
    n_classes = store.manifest["classes"]
    if labels.ndim != 1 or len(labels) != rows:
        problems.append(Problem(f"'labels' has shape {labels.shape} but there are {rows} "
                                "feature rows", file=arrays_file, key="labels", fix=fix))
    if semantics.ndim != 2 or semantics.shape != (n_classes, store.manifest["semantic_dim"]):
        problems.append(Problem(
            f"'semantics' has shape {semantics.shape}, the manifest says "
            f"{n_classes} x {store.manifest['semantic_dim']}", file=arrays_file,
            key="semantics", fix=fix))
    elif not np.isfinite(semantics).all():
        problems.append(Problem("'semantics' holds non-finite values", file=arrays_file,
                                key="semantics", fix=fix))
    if len(a["class_names"]) != n_classes:
        problems.append(Problem(f"'class_names' has {len(a['class_names'])} names for "
                                f"{n_classes} classes", file=arrays_file, key="class_names",
                                fix=fix))
    if problems:
        return problems
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        bad = int(((labels < 0) | (labels >= n_classes)).sum())
        problems.append(Problem(f"{bad} label(s) outside the class ids 0..{n_classes - 1}",
                                file=arrays_file, key="labels", fix=fix))
    for key in (*ROW_SETS, "seen_classes") + tuple(f"split_{s}" for s in store.splits):
        upper = n_classes if key == "seen_classes" or key.startswith("split_") else rows
        values = a[key]
        if values.ndim != 1 or (len(values) and (values.min() < 0 or values.max() >= upper)):
            problems.append(Problem(f"'{key}' holds values outside 0..{upper - 1}",
                                    file=arrays_file, key=key, fix=fix))
        elif len(np.unique(values)) != len(values):
            problems.append(Problem(f"'{key}' holds duplicates", file=arrays_file, key=key,
                                    fix=fix))
    if problems:
        return problems
    seen = a["seen_classes"]
    for key in ("trainval_loc", "test_seen_loc"):
        if not np.isin(labels[a[key]], seen).all():
            problems.append(Problem(f"'{key}' holds images of classes not in 'seen_classes'",
                                    file=arrays_file, key=key, fix=fix))
    if np.isin(labels[a["unseen_loc"]], seen).any():
        problems.append(Problem("'unseen_loc' holds images of seen classes", file=arrays_file,
                                key="unseen_loc", fix=fix))
    unseen = np.unique(labels[a["unseen_loc"]])
    for split in store.splits:
        classes = a[f"split_{split}"]
        missing = np.setdiff1d(classes, unseen)
        if len(missing):
            problems.append(Problem(
                f"split {split}: {len(missing)} class(es) have no unseen image (e.g. class "
                f"{int(missing[0])})", file=arrays_file, key=f"split_{split}", fix=fix))
        expected = store.manifest.get("splits", {}).get(split, {}).get("classes")
        if expected is not None and expected != len(classes):
            problems.append(Problem(f"split {split} has {len(classes)} classes, the manifest "
                                    f"says {expected}", file=arrays_file,
                                    key=f"split_{split}", fix=fix))
    return problems


def content_problems(store: Store, progress: Progress | None = None) -> list[Problem]:
    """Checksums of the arrays file and of the feature values, and non-finite features,
    in one streamed pass over the matrix (``SCAN_ROWS`` rows at a time)."""
    checksum = store.manifest["checksum"]
    fix = "the store changed after it was written: write it again"
    problems = []
    arrays_path = store.root / ARRAYS_FILE
    if sha256_file(arrays_path) != checksum.get("arrays_sha256"):
        problems.append(Problem(f"checksum mismatch: {ARRAYS_FILE} differs from the "
                                "manifest's arrays_sha256", file=str(arrays_path), fix=fix))
    digest = hashlib.sha256()
    bad_rows = 0
    first_bad: int | None = None
    source = store.features()
    total = len(source)
    try:
        for start, block in zip(range(0, total, SCAN_ROWS), source.blocks(stored=True),
                                strict=True):
            digest.update(np.ascontiguousarray(block).astype("<f2", copy=False).tobytes())
            finite = np.isfinite(block).all(axis=1)
            if not finite.all():
                bad_rows += int((~finite).sum())
                first_bad = first_bad if first_bad is not None else start + int(
                    np.flatnonzero(~finite)[0])
            if progress:
                progress(min(start + SCAN_ROWS, total), total)
    finally:
        source.close()
    if digest.hexdigest() != checksum.get("features_sha256"):
        problems.append(Problem(f"checksum mismatch: the feature values of "
                                f"{source.path.name} differ from the manifest's "
                                "features_sha256", file=str(source.path), fix=fix))
    if bad_rows:
        problems.append(Problem(f"{bad_rows} feature row(s) hold NaN or inf (first: row "
                                f"{first_bad})", file=str(source.path),
                                fix="the source features overflowed float16 or were "
                                "corrupt: convert them again"))
    return problems


def check_store(root: str | Path, *, progress: Progress | None = None
                ) -> tuple[Store, list[Problem]]:
    """Every check on a store, reading the features once in blocks: structure first,
    then (if it is sound) checksums and non-finite values.

    Raises:
        DataError: the manifest or a file cannot be read at all (one line).
    """
    store = open_store(root)
    problems = structure_problems(store)
    if not problems:
        problems = content_problems(store, progress)
    return store, problems


def summary(store: Store) -> dict[str, Any]:
    """What ``gzsl data check`` shows of a store (from the manifest and small arrays)."""
    manifest = store.manifest
    labels = store.arrays.get("labels", np.zeros(0, dtype=np.int64))
    unseen_loc = store.arrays.get("unseen_loc", np.zeros(0, dtype=np.int64))
    unseen_labels = labels[unseen_loc] if len(labels) else labels
    splits = {}
    for split in store.splits:
        classes = store.arrays[f"split_{split}"]
        splits[split] = (len(classes), int(np.isin(unseen_labels, classes).sum()))
    return {
        "name": store.name, "synthetic": store.synthetic,
        "rows": manifest["features"].get("rows"), "dim": manifest["features"].get("dim"),
        "dtype": manifest["features"].get("dtype"), "classes": manifest.get("classes"),
        "semantic_dim": manifest.get("semantic_dim"),
        "seen_classes": manifest.get("seen_classes"),
        "unseen_classes": manifest.get("unseen_classes"),
        "images": manifest.get("images", {}), "splits": splits,
        "provenance": manifest.get("provenance", {}),
    }
