"""Tiny valid dataset files of every layout the loaders accept, for robustness tests.

Six classes of four images each: classes 0-3 seen (train 0, 1; val 2, 3), 4-5 unseen.
Each writer returns what to pass to :func:`gzsl.data.loaders.load_dataset` as ``root``.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import scipy.io

N_CLASSES, PER_CLASS, FEATURE_DIM, SEMANTIC_DIM = 6, 4, 5, 3
NAMES = ["ant", "bee", "cat", "dog", "eel", "fox"]


def arrays() -> dict[str, np.ndarray]:
    """0-based arrays of the tiny dataset: features N x D, labels, semantics C x A, splits."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(N_CLASSES), PER_CLASS)
    image = np.arange(len(labels))
    seen, last = labels < 4, image % PER_CLASS == PER_CLASS - 1
    trainval = image[seen & ~last]
    return {"features": rng.random((len(labels), FEATURE_DIM)), "labels": labels,
            "semantics": rng.random((N_CLASSES, SEMANTIC_DIM)),
            "trainval_loc": trainval, "test_seen_loc": image[seen & last],
            "test_unseen_loc": image[~seen], "train_loc": trainval[labels[trainval] < 2],
            "val_loc": trainval[labels[trainval] >= 2]}


def xlsa17_variables() -> tuple[dict, dict]:
    """(res101.mat, att_splits.mat) variables in MATLAB orientation, 1-based."""
    a = arrays()
    res101 = {"features": a["features"].T, "labels": (a["labels"] + 1).reshape(-1, 1)}
    splits = {key: (a[key] + 1).reshape(-1, 1) for key in
              ("trainval_loc", "test_seen_loc", "test_unseen_loc", "train_loc", "val_loc")}
    splits["att"] = a["semantics"].T
    return res101, {**splits, "allclasses_names": list(NAMES)}


def _cell(strings: list[str]) -> np.ndarray:
    cell = np.empty((len(strings), 1), dtype=object)
    for i, text in enumerate(strings):
        cell[i, 0] = text
    return cell


def write_xlsa17_v5(directory: Path, *, compressed: bool = False) -> Path:
    """v5 files as scipy writes them, or (``compressed``) as MATLAB's default v7 does."""
    directory.mkdir(parents=True, exist_ok=True)
    res101, splits = xlsa17_variables()
    splits["allclasses_names"] = _cell(splits["allclasses_names"])
    scipy.io.savemat(directory / "res101.mat", res101, do_compression=compressed)
    scipy.io.savemat(directory / "att_splits.mat", splits, do_compression=compressed)
    return directory


def write_v73(path: Path, variables: dict, keep_dtype: bool = False) -> None:
    """What MATLAB's save -v7.3 writes: HDF5 after a 512-byte text header, arrays
    transposed, cell arrays of strings as references to uint16 char arrays in #refs#.
    Numeric arrays become doubles, or keep their dtype (named as MATLAB class) with
    ``keep_dtype``."""
    with h5py.File(path, "w", userblock_size=512) as handle:
        refs = handle.create_group("#refs#")
        for key, value in variables.items():
            if isinstance(value, list):
                references = []
                for i, text in enumerate(value):
                    chars = refs.create_dataset(f"{key}_{i}", data=np.array(
                        [[ord(c)] for c in text], dtype=np.uint16))
                    chars.attrs["MATLAB_class"] = np.bytes_("char")
                    references.append(chars.ref)
                node = handle.create_dataset(key, data=np.array([references],
                                                                dtype=h5py.ref_dtype))
                node.attrs["MATLAB_class"] = np.bytes_("cell")
            else:
                array = np.asarray(value) if keep_dtype else np.asarray(value, np.float64)
                node = handle.create_dataset(key, data=array.T)
                node.attrs["MATLAB_class"] = np.bytes_(
                    "double" if array.dtype == np.float64 else str(array.dtype))
    with open(path, "r+b") as raw:
        raw.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 .")


def write_xlsa17_v73(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    res101, splits = xlsa17_variables()
    write_v73(directory / "res101.mat", res101)
    write_v73(directory / "att_splits.mat", splits)
    return directory


def write_datamat(directory: Path) -> Path:
    """GSMFlow's data.mat + label.mat: features per split, train_idx as seen positions."""
    directory.mkdir(parents=True, exist_ok=True)
    a = arrays()
    labels, semantics = a["labels"], a["semantics"]
    parts = {"train_fea": "trainval_loc", "test_seen_fea": "test_seen_loc",
             "test_unseen_fea": "test_unseen_loc"}
    seen, unseen = np.arange(4), np.arange(4, N_CLASSES)
    data = {key: a["features"][a[loc]] for key, loc in parts.items()}
    data.update(attribute=semantics, seen_pro=semantics[seen], unseen_pro=semantics[unseen])
    label = {"train_idx": (np.searchsorted(seen, labels[a["trainval_loc"]]) + 1).reshape(-1, 1),
             "test_seen_idex": (labels[a["test_seen_loc"]] + 1).reshape(-1, 1),
             "test_unseen_idex": (labels[a["test_unseen_loc"]] + 1).reshape(-1, 1)}
    scipy.io.savemat(directory / "data.mat", data)
    scipy.io.savemat(directory / "label.mat", label)
    return directory


def npz_fields() -> dict[str, np.ndarray]:
    a = arrays()
    return {**a, "class_names": np.array(NAMES), "name": np.array("tiny"),
            "synthetic": np.array(False)}


def write_npz(path: Path, **changes) -> Path:
    """Our .npz layout; a change of None drops the field."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = {k: v for k, v in {**npz_fields(), **changes}.items() if v is not None}
    np.savez(path, **fields)
    return path
