"""Corrupt, unreadable and silently wrong dataset files: each is one clear DataError."""

from __future__ import annotations

import builtins
import io
import os
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from conftest import run_main
from tiny_files import (
    NAMES,
    npz_fields,
    write_datamat,
    write_npz,
    write_v73,
    write_xlsa17_v5,
    write_xlsa17_v73,
    xlsa17_variables,
)

from gzsl.data import DataError
from gzsl.data.io import read_mat
from gzsl.data.loaders import load_dataset, load_npz


def refused(root: Path, match: str, **options) -> DataError:
    """The DataError loading ``root`` raises; its message is one short line."""
    with pytest.raises(DataError, match=match) as caught:
        load_dataset("tiny", root, **options)
    text = str(caught.value)
    assert "\n" not in text and len(text) < 600, text
    return caught.value


def test_the_tiny_files_load(tmp_path: Path):
    for root in (write_xlsa17_v5(tmp_path / "v5"), write_xlsa17_v73(tmp_path / "v73"),
                 write_datamat(tmp_path / "gsm"), write_npz(tmp_path / "n.npz")):
        data = load_dataset("tiny", root)
        assert data.n_classes == 6 and len(data.unseen_classes) == 2


# --- files that cannot be read -----------------------------------------------------------

@pytest.mark.parametrize("name", ["res101.mat", "att_splits.mat"])
def test_zero_byte_mat_file(tmp_path: Path, name: str):
    root = write_xlsa17_v5(tmp_path / "tiny")
    (root / name).write_bytes(b"")
    error = refused(root, "is empty")
    assert error.file == str(root / name)


def test_zero_byte_npz_file(tmp_path: Path):
    (tmp_path / "mine.npz").write_bytes(b"")
    error = refused(tmp_path / "mine.npz", "is empty")
    assert error.file == str(tmp_path / "mine.npz")


@pytest.mark.parametrize("command", ["check", "convert"])
def test_cli_on_a_zero_byte_npz_is_one_error_line(tmp_path, monkeypatch, capsys, command):
    (tmp_path / "mine.npz").write_bytes(b"")
    args = [str(tmp_path / "mine.npz")] + ([str(tmp_path / "out.npz")]
                                           if command == "convert" else [])
    code, output = run_main(capsys, "data", command, *args)
    assert code == 2, output
    assert output.startswith("error: ") and "is empty" in output
    assert "aborted" not in output and "Traceback" not in output
    assert not (tmp_path / "out.npz").exists()


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_truncated_v73_file(tmp_path: Path, keep: float):
    root = write_xlsa17_v73(tmp_path / "tiny")
    content = (root / "res101.mat").read_bytes()
    (root / "res101.mat").write_bytes(content[:int(len(content) * keep)])
    error = refused(root, "cannot read res101.mat as a MATLAB v7.3")
    assert error.file == str(root / "res101.mat")


def test_unreadable_file_simulated(tmp_path: Path, monkeypatch):
    root = write_xlsa17_v5(tmp_path / "tiny")
    real_open = builtins.open

    def denying_open(file, *args, **kwargs):
        if str(file).endswith("att_splits.mat"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", denying_open)
    error = refused(root, "permission denied")
    assert error.file == str(root / "att_splits.mat") and "chmod" in error.fix


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root reads files whatever their permissions")
def test_unreadable_file_for_real(tmp_path: Path):
    path = write_npz(tmp_path / "mine.npz")
    path.chmod(0)
    try:
        refused(path, "permission denied")
    finally:
        path.chmod(0o600)


def _with_cell(path: Path, make) -> Path:
    """A v7.3 split file whose allclasses_names is the cell ``make(handle)`` returns."""
    res101, splits = xlsa17_variables()
    del splits["allclasses_names"]
    path.parent.mkdir(parents=True)
    write_v73(path.parent / "res101.mat", res101)
    write_v73(path, splits)
    with h5py.File(path, "a") as handle:
        node = make(handle)
        node.attrs["MATLAB_class"] = np.bytes_("cell")
    return path


@pytest.mark.parametrize("kind", ["null", "group", "itself"])
def test_broken_hdf5_object_reference(tmp_path: Path, kind: str):
    def make(handle):
        if kind == "null":
            return handle.create_dataset("allclasses_names", shape=(1, 6),
                                         dtype=h5py.ref_dtype)
        if kind == "group":
            group = handle.create_group("elsewhere")
            return handle.create_dataset("allclasses_names",
                                         data=np.array([[group.ref]], dtype=h5py.ref_dtype))
        node = handle.create_dataset("allclasses_names", shape=(1, 1), dtype=h5py.ref_dtype)
        node[0, 0] = node.ref
        return node

    path = _with_cell(tmp_path / "tiny" / "att_splits.mat", make)
    error = refused(path.parent, "allclasses_names")
    assert error.file == str(path)


def test_npy_renamed_npz(tmp_path: Path):
    np.save(tmp_path / "x.npy", np.ones((3, 2)))
    (tmp_path / "x.npy").rename(tmp_path / "mine.npz")
    refused(tmp_path / "mine.npz", "single .npy array, not a .npz archive")


def test_bad_crc_in_an_npz_member(tmp_path: Path):
    path = write_npz(tmp_path / "mine.npz")
    content = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        member = archive.getinfo("features.npy")
    content[member.header_offset + 30 + len(member.filename) + 150] ^= 0xFF
    path.write_bytes(bytes(content))
    error = refused(path, "'features'.*Bad CRC")
    assert error.key == "features"


def test_text_instead_of_numbers(tmp_path: Path):
    path = write_npz(tmp_path / "mine.npz",
                     features=np.full((24, 5), "0.5x"))
    error = refused(path, "'features' must hold numbers, found text")
    assert error.key == "features"
    root = write_xlsa17_v5(tmp_path / "tiny")
    res101, _ = xlsa17_variables()
    scipy.io.savemat(root / "res101.mat", {**res101, "features": np.full((5, 24), "a")})
    assert refused(root, "must hold numbers").key == "features"


def test_text_labels_and_indices_are_refused(tmp_path: Path):
    fields = npz_fields()
    path = write_npz(tmp_path / "mine.npz", labels=fields["labels"].astype(str),
                     test_seen_loc=fields["test_seen_loc"].astype(str))
    with pytest.raises(DataError) as caught:
        load_npz(path)
    assert {p.key for p in caught.value.problems} >= {"labels", "test_seen_loc"}


def test_datamat_feature_dimensions_must_agree(tmp_path: Path):
    root = write_datamat(tmp_path / "gsm")
    content = {k: v for k, v in scipy.io.loadmat(root / "data.mat").items()
               if not k.startswith("__")}
    content["test_unseen_fea"] = np.hstack([content["test_unseen_fea"],
                                            np.ones((len(content["test_unseen_fea"]), 2))])
    scipy.io.savemat(root / "data.mat", content)
    error = refused(root, "'test_unseen_fea' has 7 feature columns but 'train_fea' has 5")
    assert error.key == "test_unseen_fea" and error.file == str(root / "data.mat")


# --- files read silently wrong before ---------------------------------------------------

def test_complex_features_are_refused(tmp_path: Path):
    fields = npz_fields()
    path = write_npz(tmp_path / "mine.npz", features=fields["features"] + 0.5j)
    assert refused(path, "complex").key == "features"
    path = write_npz(tmp_path / "sem.npz", semantics=fields["semantics"] + 0j)
    assert refused(path, "complex").key == "semantics"


@pytest.mark.parametrize(("stored", "expected"), [
    ("False", False), ("false", False), ("TRUE", True), (0, False), (1, True),
    (np.array(True), True), (np.array([False]), False)])
def test_synthetic_flag_is_parsed_strictly(tmp_path: Path, stored, expected):
    path = write_npz(tmp_path / "mine.npz", synthetic=np.asarray(stored))
    assert load_npz(path).synthetic is expected


@pytest.mark.parametrize("stored", ["no", "", 2, 0.5, [True, False]])
def test_unclear_synthetic_flag_is_an_error(tmp_path: Path, stored):
    path = write_npz(tmp_path / "mine.npz", synthetic=np.asarray(stored))
    error = refused(path, "'synthetic' must be true or false")
    assert error.key == "synthetic"


def test_duplicate_class_names_in_a_file(tmp_path: Path):
    names = list(NAMES)
    names[5] = names[1]
    path = write_npz(tmp_path / "mine.npz", class_names=np.array(names))
    error = refused(path, "class names appear more than once: 'bee' \\(classes 1, 5\\)")
    assert error.key == "class_names"


def test_zero_and_repeated_semantic_vectors_in_a_file(tmp_path: Path):
    semantics = npz_fields()["semantics"]
    semantics[2] = 0
    semantics[5] = semantics[4]
    path = write_npz(tmp_path / "mine.npz", semantics=semantics)
    with pytest.raises(DataError) as caught:
        load_npz(path)
    text = str(caught.value)
    assert "all-zero semantic vector: 2 (cat)" in text
    assert "4 (eel) = 5 (fox)" in text


def test_name_field_must_be_one_string(tmp_path: Path):
    path = write_npz(tmp_path / "mine.npz", name=np.array(["a", "b"]))
    assert refused(path, "'name' must be one string").key == "name"


def test_folder_one_may_not_list(tmp_path: Path, monkeypatch):
    write_xlsa17_v5(tmp_path / "tiny")

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "iterdir", denied)
    with pytest.raises(DataError, match="cannot read .*: permission denied") as caught:
        load_dataset("tiny", tmp_path)
    assert caught.value.file == str(tmp_path)


def test_values_beyond_float32_are_named_without_a_numpy_warning(tmp_path: Path):
    fields = npz_fields()
    features = fields["features"].copy()
    features[3, 1] = 1e300
    path = write_npz(tmp_path / "mine.npz", features=features)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        error = refused(path, r"1 image row\(s\).*float32")
    assert error.key == "features" and "rows 3;" in str(error)


# --- v5 files that crash scipy's reader (a segfault, not an exception) -----------------

def _v5_file(path: Path, *, element_type: int | None = None, complex_flag: bool = False,
             compressed: bool = False) -> Path:
    """A v5 file of two variables whose first array has a corrupt data tag or flags.

    Offsets: 128-byte header, array tag (8), flags (8 + 8), dimensions (8 + 8), name 'a'
    as a small element (8), then the tag of the real part at byte 176.
    """
    stream = io.BytesIO()
    scipy.io.savemat(stream, {"a": np.arange(3.0), "b": np.ones((2, 2))})
    content = bytearray(stream.getvalue())
    if element_type is not None:
        content[176:180] = struct.pack("<I", element_type)
    if complex_flag:
        content[145] |= 0x08
    if compressed:
        first_length = struct.unpack("<I", content[132:136])[0]
        first = bytes(content[128:136 + first_length])
        packed = zlib.compress(first)
        content = (content[:128] + struct.pack("<II", 15, len(packed)) + packed
                   + content[136 + first_length:])
    path.write_bytes(bytes(content))
    return path


@pytest.mark.parametrize("compressed", [False, True])
def test_unknown_element_type_is_refused_before_scipy_reads_it(tmp_path, compressed):
    path = _v5_file(tmp_path / "x.mat", element_type=0xFF0C, compressed=compressed)
    with pytest.raises(DataError, match="unknown data type code 65292"):
        read_mat(path)


def test_array_flags_announcing_missing_data_are_refused(tmp_path: Path):
    path = _v5_file(tmp_path / "x.mat", complex_flag=True)
    with pytest.raises(DataError, match="lacks the data its header announces"):
        read_mat(path)


@pytest.mark.parametrize("compressed", [False, True])
def test_the_v5_scan_accepts_sound_files(tmp_path: Path, compressed: bool):
    content = read_mat(_v5_file(tmp_path / "x.mat", compressed=compressed))
    np.testing.assert_array_equal(content["a"], [[0.0, 1.0, 2.0]])
    assert content["b"].shape == (2, 2)
