"""MATLAB v5 / v7.3 reading, checksums and the atomic .npz writer."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from gzsl.data import DataError, GZSLData
from gzsl.data.io import file_record, is_mat_v73, mat_strings, read_mat, save_npz, sha256_file

NAMES = ["antelope", "grizzly+bear", "", "killer+whale"]


def write_v73(path: Path, variables: dict) -> None:
    """What MATLAB's save -v7.3 writes: HDF5 after a 512-byte text header, every array
    transposed, char arrays as uint16, cell arrays as object references into #refs#."""
    with h5py.File(path, "w", userblock_size=512) as handle:
        refs = handle.create_group("#refs#")
        for key, value in variables.items():
            if isinstance(value, list):
                references = []
                for i, text in enumerate(value):
                    if text:
                        chars = refs.create_dataset(f"{key}{i}", data=np.array(
                            [[ord(c)] for c in text], dtype=np.uint16))
                        chars.attrs["MATLAB_class"] = np.bytes_("char")
                    else:
                        chars = refs.create_dataset(f"{key}{i}", data=np.array([0, 0],
                                                                               np.uint64))
                        chars.attrs["MATLAB_class"] = np.bytes_("char")
                        chars.attrs["MATLAB_empty"] = np.uint8(1)
                    references.append(chars.ref)
                node = handle.create_dataset(key, data=np.array([references],
                                                                dtype=h5py.ref_dtype))
                node.attrs["MATLAB_class"] = np.bytes_("cell")
            elif isinstance(value, str):
                node = handle.create_dataset(key, data=np.array([[ord(c)] for c in value],
                                                                dtype=np.uint16))
                node.attrs["MATLAB_class"] = np.bytes_("char")
            else:
                node = handle.create_dataset(key, data=np.asarray(value).T)
                node.attrs["MATLAB_class"] = np.bytes_("double")
    with open(path, "r+b") as raw:
        raw.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 .")


def test_v5_cell_array_of_names(tmp_path: Path):
    cell = np.empty((4, 1), dtype=object)
    for i, name in enumerate(NAMES):
        cell[i, 0] = name
    scipy.io.savemat(tmp_path / "a.mat", {"allclasses_names": cell, "att": np.eye(3)})
    assert not is_mat_v73(tmp_path / "a.mat")
    content = read_mat(tmp_path / "a.mat")
    assert set(content) == {"allclasses_names", "att"}
    assert mat_strings(content["allclasses_names"]) == NAMES


def test_v73_arrays_come_back_in_matlab_orientation(tmp_path: Path):
    features = np.random.default_rng(0).random((5, 7))
    labels = np.arange(1, 8, dtype=np.float64).reshape(-1, 1)
    write_v73(tmp_path / "b.mat", {"features": features, "labels": labels,
                                   "allclasses_names": NAMES, "title": "awa"})
    assert is_mat_v73(tmp_path / "b.mat")
    with h5py.File(tmp_path / "b.mat", "r") as handle:
        assert handle["features"].shape == (7, 5)
    content = read_mat(tmp_path / "b.mat")
    assert set(content) == {"features", "labels", "allclasses_names", "title"}
    np.testing.assert_array_equal(content["features"], features)
    np.testing.assert_array_equal(content["labels"], labels)
    assert content["allclasses_names"].shape == (4, 1)
    assert mat_strings(content["allclasses_names"]) == NAMES
    assert content["title"] == "awa"


def test_only_requested_keys_are_read(tmp_path: Path):
    scipy.io.savemat(tmp_path / "a.mat", {"x": np.ones(2), "y": np.zeros(3)})
    write_v73(tmp_path / "b.mat", {"x": np.ones((2, 1)), "y": np.zeros((3, 1))})
    for name in ("a.mat", "b.mat"):
        assert set(read_mat(tmp_path / name, ["y", "absent"])) == {"y"}


def test_unreadable_file_names_the_file(tmp_path: Path):
    (tmp_path / "broken.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(DataError, match="cannot read broken.mat") as error:
        read_mat(tmp_path / "broken.mat")
    assert error.value.file == str(tmp_path / "broken.mat")


def test_sha256_matches_hashlib_and_follows_changes(tmp_path: Path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * 5_000_000)
    assert sha256_file(path) == hashlib.sha256(b"a" * 5_000_000).hexdigest()
    path.write_bytes(b"b" * 10)
    os.utime(path, ns=(1, 1))
    assert sha256_file(path) == hashlib.sha256(b"b" * 10).hexdigest()
    record = file_record(path, "features")
    assert record == {"role": "features", "path": str(path.absolute()), "bytes": 10,
                      "sha256": hashlib.sha256(b"b" * 10).hexdigest()}


def small_data(**changes) -> GZSLData:
    fields = dict(name="small", features=np.arange(12, dtype=np.float32).reshape(4, 3),
                  labels=np.array([0, 0, 1, 1]), semantics=np.eye(2, dtype=np.float32),
                  class_names=("cat", "dog"),
                  splits={"trainval": np.array([0]), "test_seen": np.array([1]),
                          "test_unseen": np.array([2, 3])},
                  source={"layout": "xlsa17", "files": []}, synthetic=True)
    fields.update(changes)
    return GZSLData(**fields)


def test_save_npz_writes_every_field(tmp_path: Path):
    path = save_npz(small_data(), tmp_path / "sub" / "out.npz")
    with np.load(path, allow_pickle=False) as archive:
        assert set(archive.files) == {"features", "labels", "semantics", "class_names",
                                      "trainval_loc", "test_seen_loc", "test_unseen_loc",
                                      "name", "synthetic", "source"}
        assert archive["features"].dtype == np.float32 and archive["labels"].dtype == np.int64
        assert list(archive["class_names"]) == ["cat", "dog"] and bool(archive["synthetic"])
        np.testing.assert_array_equal(archive["test_unseen_loc"], [2, 3])
    assert [p.name for p in path.parent.iterdir()] == ["out.npz"]


def test_save_npz_is_atomic(tmp_path: Path, monkeypatch):
    path = tmp_path / "out.npz"
    save_npz(small_data(), path)
    before = path.read_bytes()

    def interrupted(handle, **fields):
        handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_npz(small_data(name="other"), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.npz"]
