"""Loaders on the real xlsa17 split files with generated features, and on broken copies."""

from __future__ import annotations

import hashlib
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from tiny_files import write_v73

from gzsl.data import DataError, GZSLData
from gzsl.data.io import save_npz
from gzsl.data.loaders import (
    canonical_name,
    detect_layout,
    load_datamat,
    load_dataset,
    load_npz,
    load_xlsa17,
    read_dataset,
)
from gzsl.data.validation import DataProblemsError

FEATURE_DIM = 16
AWA2_UNSEEN = {"bat", "blue+whale", "bobcat", "dolphin", "giraffe", "horse", "rat", "seal",
               "sheep", "walrus"}
SPLIT_KEYS = ("trainval_loc", "test_seen_loc", "test_unseen_loc", "train_loc", "val_loc")


def write_res101(directory: Path, features_dn: np.ndarray, labels_1based: np.ndarray) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "res101.mat"
    scipy.io.savemat(path, {"features": features_dn, "labels": labels_1based.reshape(-1, 1)})
    return path


def split_content(path: Path) -> dict:
    return {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}


def derived_labels(splits: dict[str, np.ndarray], counts: dict[str, int]) -> np.ndarray:
    """Plausible 1-based labels for a split file without real labels.

    Images are sorted by class in every xlsa17 file, and each class belongs wholly to one
    role (train classes, val classes, unseen classes; or seen / unseen without a
    validation split). Each role's sorted images are cut into its number of classes.
    """
    loc = {k: v.ravel().astype(np.int64) - 1 for k, v in splits.items() if k in SPLIT_KEYS}
    n_images = int(max(v.max() for v in loc.values())) + 1
    if "train_loc" in loc:
        roles = {"train": loc["train_loc"], "val": loc["val_loc"],
                 "unseen": loc["test_unseen_loc"]}
    else:
        roles = {"seen": np.concatenate([loc["trainval_loc"], loc["test_seen_loc"]]),
                 "unseen": loc["test_unseen_loc"]}
    labels = np.zeros(n_images, dtype=np.int64)
    next_class = 1
    for role, images in roles.items():
        for chunk in np.array_split(np.sort(images), counts[role]):
            labels[chunk] = next_class
            next_class += 1
    return labels


@pytest.fixture(scope="module")
def awa2_features(xlsa17_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    labels = np.load(xlsa17_dir / "AWA2" / "labels.npy")
    rng = np.random.default_rng(0)
    return rng.random((FEATURE_DIM, len(labels))), labels


@pytest.fixture(scope="module")
def awa2_root(tmp_path_factory, xlsa17_dir: Path, awa2_features) -> Path:
    """A parent folder holding AWA2/ with generated res101.mat and the real att_splits.mat."""
    root = tmp_path_factory.mktemp("root")
    features, labels = awa2_features
    write_res101(root / "AWA2", features, labels)
    (root / "AWA2" / "att_splits.mat").symlink_to(xlsa17_dir / "AWA2" / "att_splits.mat")
    return root


@pytest.fixture(scope="module")
def awa2(awa2_root: Path) -> GZSLData:
    return load_dataset("AWA2", awa2_root)


def broken_awa2(tmp_path: Path, xlsa17_dir: Path, awa2_features, *, features=None,
                labels=None, **split_changes) -> Path:
    """An AWA2 folder whose res101.mat / att_splits.mat carry the given changes."""
    directory = tmp_path / "AWA2"
    base_features, base_labels = awa2_features
    write_res101(directory, base_features if features is None else features,
                 base_labels if labels is None else labels)
    content = split_content(xlsa17_dir / "AWA2" / "att_splits.mat")
    for key, value in split_changes.items():
        if value is None:
            del content[key]
        else:
            content[key] = value
    scipy.io.savemat(directory / "att_splits.mat", content)
    return directory


def test_awa2_class_bookkeeping(awa2: GZSLData):
    assert awa2.name == "AWA2"
    assert awa2.features.dtype == np.float32 and awa2.features.shape == (37322, FEATURE_DIM)
    assert awa2.labels.dtype == np.int64 and awa2.labels.min() == 0
    assert awa2.semantics.dtype == np.float32 and awa2.semantics.shape == (50, 85)
    assert len(awa2.seen_classes) == 40 and len(awa2.unseen_classes) == 10
    assert {awa2.class_names[c] for c in awa2.unseen_classes} == AWA2_UNSEEN
    assert {len(v) for v in awa2.splits.values()} == {23527, 5882, 7913, 20218, 9191}
    train = np.unique(awa2.labels[awa2.splits["train"]])
    val = np.unique(awa2.labels[awa2.splits["val"]])
    assert len(train) == 27 and len(val) == 13 and not np.intersect1d(train, val).size
    assert awa2.synthetic is False


def test_awa2_arrays_match_the_files(awa2: GZSLData, awa2_features, xlsa17_dir: Path):
    features, labels = awa2_features
    content = split_content(xlsa17_dir / "AWA2" / "att_splits.mat")
    np.testing.assert_array_equal(awa2.features, features.T.astype(np.float32))
    np.testing.assert_array_equal(awa2.labels, labels - 1)
    np.testing.assert_array_equal(awa2.semantics, content["att"].T.astype(np.float32))
    np.testing.assert_array_equal(awa2.splits["test_unseen"],
                                  content["test_unseen_loc"].ravel().astype(int) - 1)
    assert awa2.class_names[0] == "antelope"


def test_source_records_layout_paths_and_checksums(awa2: GZSLData, awa2_root: Path):
    assert awa2.source["layout"] == "xlsa17" and awa2.source["semantics"] == "att"
    by_role = {record["role"]: record for record in awa2.source["files"]}
    features_file = awa2_root / "AWA2" / "res101.mat"
    assert by_role["features"]["path"] == str(features_file.absolute())
    assert by_role["features"]["sha256"] == hashlib.sha256(features_file.read_bytes()).hexdigest()
    assert by_role["splits"]["path"].endswith("att_splits.mat")


def test_root_may_be_the_folder_itself_any_case(awa2_root: Path, awa2: GZSLData):
    direct = load_dataset("awa2", awa2_root / "AWA2")
    np.testing.assert_array_equal(direct.labels, awa2.labels)
    assert direct.name == "AWA2" and canonical_name("cub") == "CUB"
    assert load_dataset("Awa2", awa2_root, layout="xlsa17").n_classes == 50


def test_root_is_needed_and_must_hold_files(tmp_path: Path):
    with pytest.raises(DataError, match="--root DIR") as missing:
        load_dataset("AWA2")
    assert "res101.mat" in str(missing.value)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("AWA2", tmp_path / "nowhere")
    with pytest.raises(DataError, match="no files of dataset 'AWA2'") as empty:
        load_dataset("AWA2", tmp_path)
    assert str(tmp_path) in str(empty.value)


def test_demo_is_dispatched_lazily(monkeypatch):
    expected = object()
    stub = types.ModuleType("gzsl.data.demo")
    stub.load_embedded = lambda name: expected if name == "DeMo" else None
    monkeypatch.setitem(sys.modules, "gzsl.data.demo", stub)
    monkeypatch.setattr("gzsl.data.loaders.validate", lambda data: [])
    assert load_dataset("DeMo") is expected


def test_unknown_options_are_user_errors(awa2_root: Path):
    with pytest.raises(DataError, match="unknown semantics option 'words'") as error:
        load_dataset("AWA2", awa2_root, semantics="words")
    assert error.value.key == "semantics"
    with pytest.raises(DataError, match="unknown layout"):
        load_dataset("AWA2", awa2_root, layout="csv")


def test_sent_semantics_needs_sent_splits(awa2_root: Path):
    with pytest.raises(DataError, match="sent_splits.mat not found") as error:
        load_dataset("AWA2", awa2_root, semantics="sent")
    assert error.value.file.endswith("sent_splits.mat")


def test_missing_features_file_is_named(tmp_path: Path, xlsa17_dir: Path):
    (tmp_path / "APY").mkdir()
    (tmp_path / "APY" / "att_splits_trainval_test_only.mat").symlink_to(
        xlsa17_dir / "APY" / "att_splits_trainval_test_only.mat")
    with pytest.raises(DataError, match="res101.mat not found") as error:
        load_dataset("APY", tmp_path)
    assert error.value.file == str(tmp_path / "APY" / "res101.mat")


def _xlsa17_with_derived_labels(tmp_path: Path, xlsa17_dir: Path, dataset: str,
                                split_file: str, counts: dict[str, int]) -> Path:
    content = split_content(xlsa17_dir / dataset / split_file)
    labels = derived_labels(content, counts)
    features = np.random.default_rng(1).random((8, len(labels)))
    write_res101(tmp_path / dataset, features, labels)
    (tmp_path / dataset / split_file).symlink_to(xlsa17_dir / dataset / split_file)
    return tmp_path


def test_cub_sentence_embeddings(tmp_path: Path, xlsa17_dir: Path):
    root = _xlsa17_with_derived_labels(tmp_path, xlsa17_dir, "CUB", "sent_splits.mat",
                                       {"train": 100, "val": 50, "unseen": 50})
    cub = load_dataset("cub", root, semantics="sent")
    assert cub.semantics.shape == (200, 1024) and len(cub.class_names) == 200
    assert cub.class_names[0] == "002.Laysan_Albatross"
    assert len(cub.seen_classes) == 150 and len(cub.unseen_classes) == 50
    assert cub.has_validation and cub.source["semantics"] == "sent"


def test_flo_without_class_names(tmp_path: Path, xlsa17_dir: Path):
    root = _xlsa17_with_derived_labels(tmp_path, xlsa17_dir, "FLO", "att_splits.mat",
                                       {"train": 62, "val": 20, "unseen": 20})
    flo = load_dataset("FLO", root)
    assert flo.semantics.shape == (102, 1024)
    assert flo.class_names == tuple(f"class_{i}" for i in range(102))
    assert len(flo.unseen_classes) == 20 and flo.has_validation


@pytest.mark.parametrize(("dataset", "counts", "n_classes"), [
    ("APY", {"seen": 20, "unseen": 12}, 32), ("CUB", {"seen": 150, "unseen": 50}, 200)])
def test_trainval_test_only_file_has_no_validation_split(tmp_path: Path, xlsa17_dir: Path,
                                                         dataset, counts, n_classes):
    root = _xlsa17_with_derived_labels(tmp_path, xlsa17_dir, dataset,
                                       "att_splits_trainval_test_only.mat", counts)
    data = load_dataset(dataset, root)
    assert data.n_classes == n_classes and set(data.splits) == {"trainval", "test_seen",
                                                                "test_unseen"}
    assert not data.has_validation
    assert any("no validation split" in note for note in data.source["notes"])
    assert data.task("final").unseen_classes.size == counts["unseen"]
    with pytest.raises(DataError, match="has no validation split") as error:
        data.task("validation")
    assert "train_loc" in str(error.value)


def test_features_stored_n_by_d_are_transposed(tmp_path, xlsa17_dir, awa2_features, awa2):
    features, _ = awa2_features
    directory = broken_awa2(tmp_path, xlsa17_dir, awa2_features, features=features.T)
    data = load_dataset("AWA2", directory)
    np.testing.assert_array_equal(data.features, awa2.features)
    assert any("transposed" in note for note in data.source["notes"])


def test_features_of_another_dataset_are_refused(tmp_path, xlsa17_dir, awa2_features):
    features, _ = awa2_features
    directory = broken_awa2(tmp_path, xlsa17_dir, awa2_features, features=features[:, :-5])
    with pytest.raises(DataError, match="neither side matches the 37322 images") as error:
        load_dataset("AWA2", directory)
    assert error.value.file.endswith("res101.mat") and error.value.key == "features"


def test_square_features_are_ambiguous(tmp_path: Path):
    labels = np.repeat(np.arange(1, 5), 3)
    directory = tmp_path / "tiny"
    write_res101(directory, np.random.default_rng(0).random((12, 12)), labels)
    scipy.io.savemat(directory / "att_splits.mat", {
        "att": np.random.default_rng(1).random((5, 4)),
        "trainval_loc": np.array([[1], [2], [4], [5]]), "test_seen_loc": np.array([[3], [6]]),
        "test_unseen_loc": np.arange(7, 13).reshape(-1, 1)})
    with pytest.raises(DataError, match="ambiguous") as error:
        load_xlsa17(directory)
    assert error.value.key == "features" and error.value.file.endswith("res101.mat")


def test_missing_keys_are_all_named(tmp_path, xlsa17_dir, awa2_features):
    directory = broken_awa2(tmp_path, xlsa17_dir, awa2_features, att=None, test_seen_loc=None)
    with pytest.raises(DataProblemsError) as error:
        load_dataset("AWA2", directory)
    assert {(Path(p.file).name, p.key) for p in error.value.problems} == {
        ("att_splits.mat", "att"), ("att_splits.mat", "test_seen_loc")}
    assert "'test_seen_loc' is missing" in str(error.value)


def test_zero_based_split_file_is_refused(tmp_path, xlsa17_dir, awa2_features):
    content = split_content(xlsa17_dir / "AWA2" / "att_splits.mat")
    shifted = {k: content[k].astype(np.int64) - 1 for k in SPLIT_KEYS}
    directory = broken_awa2(tmp_path, xlsa17_dir, awa2_features, **shifted)
    with pytest.raises(DataError, match="looks 0-based") as error:
        load_dataset("AWA2", directory)
    assert error.value.file.endswith("att_splits.mat")
    assert error.value.key in SPLIT_KEYS


def test_zero_based_labels_are_refused(tmp_path, xlsa17_dir, awa2_features):
    _, labels = awa2_features
    directory = broken_awa2(tmp_path, xlsa17_dir, awa2_features, labels=labels - 1)
    with pytest.raises(DataError, match="'labels' contains 0") as error:
        load_dataset("AWA2", directory)
    assert error.value.file.endswith("res101.mat") and error.value.key == "labels"


def test_out_of_range_index_is_refused(tmp_path, xlsa17_dir, awa2_features):
    content = split_content(xlsa17_dir / "AWA2" / "att_splits.mat")
    bad = content["test_unseen_loc"].astype(np.int64)
    bad[-1] = 37323
    directory = broken_awa2(tmp_path, xlsa17_dir, awa2_features, test_unseen_loc=bad)
    with pytest.raises(DataError, match="37323, out of range") as error:
        load_dataset("AWA2", directory)
    assert error.value.key == "test_unseen_loc" and error.value.file.endswith("att_splits.mat")


def test_nan_features_are_refused(tmp_path, xlsa17_dir, awa2_features):
    features, _ = awa2_features
    bad = features.copy()
    bad[3, 100] = np.nan
    directory = broken_awa2(tmp_path, xlsa17_dir, awa2_features, features=bad)
    with pytest.raises(DataError, match=r"NaN or infinite values in 1 image row\(s\)") as error:
        load_dataset("AWA2", directory)
    assert error.value.key == "features" and error.value.file.endswith("res101.mat")
    assert "100" in str(error.value)


def test_overlapping_splits_are_refused(tmp_path, xlsa17_dir, awa2_features):
    content = split_content(xlsa17_dir / "AWA2" / "att_splits.mat")
    overlapping = np.concatenate([content["test_seen_loc"], content["trainval_loc"][:2]])
    directory = broken_awa2(tmp_path, xlsa17_dir, awa2_features, test_seen_loc=overlapping)
    with pytest.raises(DataError, match="'trainval' and 'test_seen' share 2 image") as error:
        load_dataset("AWA2", directory)
    assert error.value.key == "test_seen_loc" and error.value.file.endswith("att_splits.mat")


def test_class_without_semantics_is_refused(tmp_path, xlsa17_dir, awa2_features):
    _, labels = awa2_features
    extra = labels.copy()
    extra[extra == 50] = 51
    directory = broken_awa2(tmp_path, xlsa17_dir, awa2_features, labels=extra)
    with pytest.raises(DataError, match=r"1 class\(es\) without semantics: labels reach "
                       "class 50") as error:
        load_dataset("AWA2", directory)
    assert error.value.key == "labels" and error.value.file.endswith("res101.mat")


def test_user_files_are_not_modified(awa2_root: Path):
    files = sorted((awa2_root / "AWA2").iterdir())
    before = [(f.stat().st_mtime_ns, f.read_bytes()) for f in files]
    load_dataset("AWA2", awa2_root)
    assert [(f.stat().st_mtime_ns, f.read_bytes()) for f in files] == before


def test_read_dataset_returns_problems_instead_of_raising(tmp_path, xlsa17_dir, awa2_features):
    _, labels = awa2_features
    directory = broken_awa2(tmp_path, xlsa17_dir, awa2_features, labels=labels - 1)
    data, problems = read_dataset("AWA2", directory)
    assert data is None and problems[0].key == "labels"


# --- v7.3 (HDF5) files ----------------------------------------------------------------

def _write_v73(path: Path, variables: dict) -> None:
    write_v73(path, variables, keep_dtype=True)


def test_v73_files_load_like_v5_files(tmp_path, xlsa17_dir, awa2_features, awa2):
    features, labels = awa2_features
    content = split_content(xlsa17_dir / "AWA2" / "att_splits.mat")
    names = [str(n[0]) for n in content["allclasses_names"].ravel()]
    directory = tmp_path / "AWA2"
    directory.mkdir()
    _write_v73(directory / "res101.mat", {"features": features,
                                          "labels": labels.reshape(-1, 1).astype(np.float64)})
    _write_v73(directory / "att_splits.mat", {
        "att": content["att"], "allclasses_names": names,
        **{k: content[k].astype(np.uint16) for k in SPLIT_KEYS}})
    data = load_dataset("AWA2", tmp_path)
    np.testing.assert_array_equal(data.features, awa2.features)
    np.testing.assert_array_equal(data.labels, awa2.labels)
    np.testing.assert_array_equal(data.semantics, awa2.semantics)
    assert data.class_names == awa2.class_names
    for split in awa2.splits:
        np.testing.assert_array_equal(data.splits[split], awa2.splits[split])


# --- GSMFlow data.mat + label.mat ----------------------------------------------------

def _datamat_arrays(seed: int = 0):
    """Six classes (global ids 0..5); seen = {0, 2, 3, 5}, unseen = {1, 4}."""
    rng = np.random.default_rng(seed)
    attribute = rng.random((6, 7))
    seen, unseen = np.array([0, 2, 3, 5]), np.array([1, 4])
    train_labels = np.repeat(seen, 4)
    test_seen_labels = np.repeat(seen, 2)
    test_unseen_labels = np.repeat(unseen, 3)
    features = {k: rng.random((len(v), 10)) for k, v in (
        ("train_fea", train_labels), ("test_seen_fea", test_seen_labels),
        ("test_unseen_fea", test_unseen_labels))}
    data_mat = {**features, "attribute": attribute, "seen_pro": attribute[seen],
                "unseen_pro": attribute[unseen], "att_train": attribute[train_labels]}
    positions = np.searchsorted(seen, train_labels)
    label_mat = {"train_idx": (positions + 1).reshape(-1, 1),
                 "train_label_new": (train_labels + 1).reshape(-1, 1),
                 "test_seen_idex": (test_seen_labels + 1).reshape(-1, 1),
                 "test_unseen_idex": (test_unseen_labels + 1).reshape(-1, 1)}
    truth = np.concatenate([train_labels, test_seen_labels, test_unseen_labels])
    return data_mat, label_mat, truth


def _write_datamat(directory: Path, data_mat: dict, label_mat: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(directory / "data.mat", data_mat)
    scipy.io.savemat(directory / "label.mat", label_mat)
    return directory


def test_datamat_layout(tmp_path: Path):
    data_mat, label_mat, truth = _datamat_arrays()
    directory = _write_datamat(tmp_path / "CUB", data_mat, label_mat)
    assert detect_layout(directory) == "datamat"
    data = load_dataset("CUB", tmp_path)
    np.testing.assert_array_equal(data.labels, truth)
    np.testing.assert_array_equal(data.semantics, data_mat["attribute"].astype(np.float32))
    np.testing.assert_array_equal(data.features[data.splits["test_unseen"]],
                                  data_mat["test_unseen_fea"].astype(np.float32))
    assert list(data.seen_classes) == [0, 2, 3, 5] and list(data.unseen_classes) == [1, 4]
    assert data.class_names[5] == "class_5" and not data.has_validation
    assert data.source["layout"] == "datamat"


def test_datamat_train_idx_as_class_ids(tmp_path: Path):
    data_mat, label_mat, truth = _datamat_arrays()
    label_mat["train_idx"] = label_mat["train_label_new"]
    data = load_datamat(_write_datamat(tmp_path / "x", data_mat, label_mat))
    np.testing.assert_array_equal(data.labels, truth)


def test_datamat_transposed_attribute(tmp_path: Path):
    data_mat, label_mat, _ = _datamat_arrays()
    reference = load_datamat(_write_datamat(tmp_path / "a", data_mat, label_mat))
    data_mat["attribute"] = data_mat["attribute"].T
    data = load_datamat(_write_datamat(tmp_path / "b", data_mat, label_mat))
    np.testing.assert_array_equal(data.semantics, reference.semantics)


def test_datamat_zero_based_labels_and_missing_keys(tmp_path: Path):
    data_mat, label_mat, _ = _datamat_arrays()
    label_mat["test_seen_idex"] = label_mat["test_seen_idex"] - 1
    with pytest.raises(DataError, match="looks 0-based") as error:
        load_datamat(_write_datamat(tmp_path / "a", data_mat, label_mat))
    assert error.value.key == "test_seen_idex" and error.value.file.endswith("label.mat")
    data_mat, label_mat, _ = _datamat_arrays()
    del data_mat["attribute"]
    with pytest.raises(DataError, match="'attribute' is missing") as error:
        load_datamat(_write_datamat(tmp_path / "b", data_mat, label_mat))
    assert error.value.file.endswith("data.mat")


def test_both_layouts_in_one_folder_must_be_chosen(tmp_path, xlsa17_dir, awa2_features):
    data_mat, label_mat, _ = _datamat_arrays()
    directory = broken_awa2(tmp_path, xlsa17_dir, awa2_features)
    _write_datamat(directory, data_mat, label_mat)
    with pytest.raises(DataError, match="--layout"):
        load_dataset("AWA2", tmp_path)
    assert load_dataset("AWA2", tmp_path, layout="datamat").n_classes == 6
    assert load_dataset("AWA2", tmp_path, layout="xlsa17").n_classes == 50


# --- our .npz layout --------------------------------------------------------------------

def test_npz_round_trip(tmp_path: Path, awa2: GZSLData):
    path = save_npz(awa2, tmp_path / "awa2.npz")
    again = load_dataset("anything", path)
    assert again.name == "anything" and load_npz(path).name == "AWA2"
    np.testing.assert_array_equal(again.features, awa2.features)
    np.testing.assert_array_equal(again.labels, awa2.labels)
    np.testing.assert_array_equal(again.semantics, awa2.semantics)
    assert again.class_names == awa2.class_names and again.synthetic is False
    assert set(again.splits) == set(awa2.splits)
    for split in awa2.splits:
        np.testing.assert_array_equal(again.splits[split], awa2.splits[split])
    assert again.source["layout"] == "npz"
    assert again.source["converted_from"]["files"] == awa2.source["files"]


def _npz_fields() -> dict:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 5)
    return {"features": rng.random((20, 6)), "labels": labels, "semantics": rng.random((4, 3)),
            "class_names": np.array(["a", "b", "c", "d"]),
            "trainval_loc": np.array([0, 1, 2, 3, 5, 6, 7, 8]),
            "test_seen_loc": np.array([4, 9]), "test_unseen_loc": np.arange(10, 20)}


def test_npz_minimal_fields_and_generated_names(tmp_path: Path):
    fields = _npz_fields()
    del fields["class_names"]
    np.savez(tmp_path / "mine.npz", **fields)
    data = load_npz(tmp_path / "mine.npz")
    assert data.name == "mine" and data.class_names == ("class_0", "class_1", "class_2",
                                                          "class_3")
    assert list(data.seen_classes) == [0, 1] and not data.has_validation


def test_npz_one_based_indices_get_a_hint(tmp_path: Path):
    fields = _npz_fields()
    fields["test_unseen_loc"] = fields["test_unseen_loc"] + 1
    np.savez(tmp_path / "mine.npz", **fields)
    with pytest.raises(DataError, match="look 1-based") as error:
        load_npz(tmp_path / "mine.npz")
    assert error.value.key == "test_unseen_loc" and error.value.file.endswith("mine.npz")


def test_npz_pickled_names_and_missing_keys(tmp_path: Path):
    fields = _npz_fields()
    fields["class_names"] = np.array(["a", "b", "c", "d"], dtype=object)
    np.savez(tmp_path / "pickled.npz", **fields)
    with pytest.raises(DataError, match="pickled") as error:
        load_npz(tmp_path / "pickled.npz")
    assert error.value.key == "class_names"
    fields = _npz_fields()
    del fields["semantics"]
    np.savez(tmp_path / "short.npz", **fields)
    with pytest.raises(DataError, match="'semantics' is missing"):
        load_npz(tmp_path / "short.npz")
