"""The on-disk feature store: reading rows, writing in blocks, and its checks."""

import json
import pickle

import numpy as np
import pytest

from gzsl.data.errors import DataError
from gzsl.data.sources import ArrayFeatures, FeatureSource
from gzsl.data.store import (
    ARRAYS_FILE,
    FEATURES_FILE,
    MANIFEST,
    OnDiskFeatures,
    StoreWriter,
    check_store,
    load_store_task,
    open_store,
)


def _write(root, features, *, block=7, force=False):
    """A store of ``features`` (3 seen classes with 4 train + 2 test rows each, 2
    unseen classes), written ``block`` rows at a time."""
    labels = np.repeat(np.arange(5), [6, 6, 6, 3, 4])
    position = np.arange(len(labels)) - np.searchsorted(labels, labels)
    seen = labels < 3
    writer = StoreWriter(root, features.shape[1], len(features), force=force)
    for start in range(0, len(features), block):
        writer.append(features[start:start + block])
    return writer.finish(
        name="tiny", synthetic=True, labels=labels,
        semantics=np.random.default_rng(1).normal(size=(5, 3)),
        class_names=[f"c{i}" for i in range(5)], seen_classes=np.arange(3),
        trainval_loc=np.flatnonzero(seen & (position < 4)),
        test_seen_loc=np.flatnonzero(seen & (position >= 4)),
        unseen_loc=np.flatnonzero(~seen), splits={"A": np.array([3]), "B": np.array([3, 4])},
        provenance={"test": True})


@pytest.fixture
def features():
    return np.random.default_rng(0).normal(size=(25, 6)).astype(np.float16).astype(np.float32)


@pytest.fixture
def store(tmp_path, features):
    return _write(tmp_path / "store", features)


def test_rows_come_back_in_the_order_asked_with_repeats_as_in_memory(store, features):
    source = OnDiskFeatures(store / FEATURES_FILE)
    assert isinstance(source, FeatureSource)
    asked = np.array([24, 0, 5, 5, 13, 1, 24, 12])
    assert source.shape == (25, 6)
    np.testing.assert_array_equal(source.read(asked), ArrayFeatures(features).read(asked))
    assert source.read(asked).dtype == np.float32
    np.testing.assert_array_equal(source.read(np.arange(3, 9)), features[3:9])  # one slice
    view = OnDiskFeatures(store / FEATURES_FILE, rows=np.array([20, 3, 9]))
    assert len(view) == 3
    np.testing.assert_array_equal(view.read(np.array([2, 0, 2])), features[[9, 20, 9]])
    np.testing.assert_array_equal(np.concatenate(list(view.blocks(2))), features[[20, 3, 9]])
    with pytest.raises(IndexError):
        view.read(np.array([3]))


def test_a_source_pickles_without_its_file_handle(store, features):
    source = OnDiskFeatures(store / FEATURES_FILE)
    source.read(np.array([1]))
    again = pickle.loads(pickle.dumps(source))
    np.testing.assert_array_equal(again.read(np.array([3, 2])), features[[3, 2]])


def test_blocks_appended_give_the_store_one_write_gives(tmp_path, features):
    one = _write(tmp_path / "one", features, block=len(features))
    many = _write(tmp_path / "many", features, block=3)
    first, second = (json.loads((p / MANIFEST).read_text()) for p in (one, many))
    assert first["checksum"]["features_sha256"] == second["checksum"]["features_sha256"]
    assert not (tmp_path / "many.partial").exists()
    stored = np.load(many / FEATURES_FILE)
    assert stored.dtype == np.float16 and stored.shape == (25, 6)
    np.testing.assert_array_equal(stored, features.astype(np.float16))


def test_the_writer_holds_to_the_rows_it_announced(tmp_path):
    writer = StoreWriter(tmp_path / "s", 2, 3)
    writer.append(np.zeros((2, 2)))
    with pytest.raises(DataError, match="more feature rows than the 3 announced"):
        writer.append(np.zeros((2, 2)))
    with pytest.raises(DataError, match="2 feature rows written of the 3 announced"):
        writer.finish(name="x", synthetic=True, labels=np.zeros(3), semantics=np.ones((1, 1)),
                      class_names=["a"], seen_classes=[0], trainval_loc=[0], test_seen_loc=[],
                      unseen_loc=[], splits={}, provenance={})
    writer.abort()


def test_an_existing_folder_is_kept_unless_forced(tmp_path, features):
    _write(tmp_path / "s", features)
    with pytest.raises(DataError, match="exists"):
        _write(tmp_path / "s", features)
    _write(tmp_path / "s", features, force=True)


def test_values_beyond_float16_are_refused(tmp_path):
    writer = StoreWriter(tmp_path / "s", 2, 1)
    with pytest.raises(DataError, match="float16"):
        writer.append(np.array([[1.0, 1e6]]))
    writer.abort()
    assert not (tmp_path / "s.partial").exists()


def test_task_of_a_split_has_its_rows_and_global_labels(store, features):
    task = load_store_task(store, "A")
    assert task.synthetic and task.name == "tiny-A"
    assert task.train.shape == (12, 6) and task.test_seen.shape == (6, 6)
    np.testing.assert_array_equal(task.unseen_classes, [3])
    np.testing.assert_array_equal(task.test_unseen_labels, [3, 3, 3])
    np.testing.assert_array_equal(task.test_unseen.read(np.arange(3)), features[18:21])
    assert load_store_task(store, "B").test_unseen.shape == (7, 6)
    with pytest.raises(DataError, match="no split 'C'.*A, B"):
        load_store_task(store, "C")


def test_a_sound_store_has_no_problems_and_a_streamed_pass(store):
    seen = []
    _, problems = check_store(store, progress=lambda done, total: seen.append((done, total)))
    assert problems == []
    assert seen[-1] == (25, 25)


def _one_line(text):
    return "\n" not in str(text)


def test_missing_features_file_is_one_problem(store):
    (store / FEATURES_FILE).unlink()
    _, problems = check_store(store)
    assert len(problems) == 1 and "features.npy not found" in str(problems[0])
    assert _one_line(problems[0])


def _rewrite_arrays(store, **changes):
    arrays = dict(open_store(store).arrays)
    arrays.update(changes)
    with open(store / ARRAYS_FILE, "wb") as handle:
        np.savez(handle, **arrays)


def test_labels_of_the_wrong_shape_or_out_of_range_are_problems(store):
    labels = open_store(store).arrays["labels"]
    _rewrite_arrays(store, labels=labels[:-1])
    _, problems = check_store(store)
    assert "'labels' has shape (24,) but there are 25 feature rows" in str(problems[0])
    bad = labels.copy()
    bad[2] = 9
    _rewrite_arrays(store, labels=bad)
    _, problems = check_store(store)
    assert "1 label(s) outside the class ids 0..4" in str(problems[0])
    assert all(_one_line(p) for p in problems)


def test_changed_values_fail_the_checksum(store):
    matrix = np.load(store / FEATURES_FILE, mmap_mode="r+")
    matrix[3, 1] = 7.0
    matrix.flush()
    del matrix
    _, problems = check_store(store)
    assert len(problems) == 1 and "checksum mismatch" in str(problems[0])
    _rewrite_arrays(store, split_B=np.array([4, 3]))  # still sound, but not as written
    _, problems = check_store(store)
    assert any(ARRAYS_FILE in str(p) and "checksum" in str(p) for p in problems)


def test_non_finite_features_are_found(tmp_path, features):
    features = features.copy()
    features[7, 2] = np.nan
    _, problems = check_store(_write(tmp_path / "s", features))
    assert len(problems) == 1 and "1 feature row(s) hold NaN or inf (first: row 7)" in str(
        problems[0])


def test_a_truncated_features_file_is_one_error_line(store):
    path = store / FEATURES_FILE
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match="features.npy is truncated: 300 bytes") as caught:
        check_store(store)
    assert _one_line(caught.value)


def test_a_missing_or_foreign_manifest_is_one_error_line(store):
    manifest = json.loads((store / MANIFEST).read_text())
    (store / MANIFEST).write_text(json.dumps({**manifest, "version": 99}))
    with pytest.raises(DataError, match="version 99 is not supported"):
        check_store(store)
    (store / MANIFEST).unlink()
    with pytest.raises(DataError, match="not a gzsl feature store") as caught:
        check_store(store)
    assert _one_line(caught.value)


def test_a_manifest_shape_that_disagrees_with_the_file_is_a_problem(store):
    manifest = json.loads((store / MANIFEST).read_text())
    manifest["features"]["dim"] = 7
    (store / MANIFEST).write_text(json.dumps(manifest))
    _, problems = check_store(store)
    assert "holds 25 x 6 float16 but the manifest says 25 x 7 float16" in str(problems[0])


def test_a_file_that_is_not_a_matrix_is_one_error_line(store):
    (store / FEATURES_FILE).write_bytes(b"not a numpy file at all")
    with pytest.raises(DataError, match="cannot read features.npy as a .npy matrix"):
        check_store(store)
    np.save(store / FEATURES_FILE, np.zeros((3, 2), dtype=np.float32))
    with pytest.raises(DataError, match="must hold a 2-D row-major float16 matrix"):
        check_store(store)


def test_a_file_cut_after_it_was_opened_fails_in_one_line(store):
    source = OnDiskFeatures(store / FEATURES_FILE)
    path = store / FEATURES_FILE
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(DataError, match="features.npy ended while reading row 24"):
        source.read(np.array([24]))
