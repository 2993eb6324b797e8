"""Converting Xian et al.'s ImageNet-21K files (tiny copies in their layout) to a store."""

import numpy as np
import pytest
import scipy.io
from tiny_files import write_v73

from gzsl.data.errors import DataError
from gzsl.data.imagenet import dataset_names, load_large_task
from gzsl.data.imagenet_xian import convert_imagenet
from gzsl.data.store import check_store, open_store

DIM, K = 5, 4  # D differs from every image count: orientation is unambiguous
SEEN, UNSEEN = 3, 5  # classes 1..3 seen, 4..8 unseen; class 8 has no word vector
SPLITS = {"hops2": [4, 5], "hops3": [4, 5, 6], "all": [4, 5, 6, 7], "mp500": [4],
          "mp1000": [4, 5], "mp5000": [4, 5, 6], "lp500": [7], "lp1000": [7, 6],
          "lp5000": [7, 6, 5]}
UNSEEN_IMAGES = {4: 3, 5: 2, 6: 4, 7: 1}


def write_bin(path, features):
    """What Xian's load_X.m reads: int32 n, int32 d, n * d float64 image after image."""
    with open(path, "wb") as handle:
        handle.write(np.array(features.shape, dtype="<i4").tobytes())
        handle.write(np.ascontiguousarray(features, dtype="<f8").tobytes())


def write_files(folder, rng):
    """The four inputs, features as the reference codes read them: 'features' MATLAB
    N x D (HDF5 D x N), 'features_val' MATLAB D x N (HDF5 N x D)."""
    train_labels = np.repeat(np.arange(1, SEEN + 1), 4)
    val_labels = np.repeat(np.arange(1, SEEN + 1), 2)
    train = rng.random((len(train_labels), DIM))
    val = rng.random((len(val_labels), DIM))
    write_v73(folder / "ILSVRC2012_res101_feature.mat", {
        "features": train.astype(np.float32), "labels": train_labels[:, None],
        "features_val": val.T.astype(np.float32), "labels_val": val_labels[None, :]},
        keep_dtype=True)
    w2v = rng.normal(size=(SEEN + UNSEEN, K))
    w2v[-1] = np.nan
    write_v73(folder / "ImageNet_w2v" / "ImageNet_w2v.mat", {
        "w2v": w2v, "wnids": [f"n{i:08d}" for i in range(SEEN + UNSEEN)],
        "words": [f"word {i}" for i in range(SEEN + UNSEEN)],
        "no_w2v_loc": np.array([[SEEN + UNSEEN]])})
    scipy.io.savemat(folder / "ImageNet_splits.mat",
                     {k: np.array([v], dtype=np.float64) for k, v in SPLITS.items()})
    bins = folder / "ImageNet2011_res101_feature" / "res101_1crop_feature"
    bins.mkdir(parents=True)
    unseen = {}
    for label, count in UNSEEN_IMAGES.items():
        unseen[label] = rng.random((count, DIM))
        write_bin(bins / f"{label}.bin", unseen[label])
    return train, val, unseen, w2v


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "xian"
    (folder / "ImageNet_w2v").mkdir(parents=True)
    return folder, write_files(folder, np.random.default_rng(0))


def test_the_files_convert_to_a_store_every_split_loads_from(source, tmp_path):
    folder, (train, val, unseen, w2v) = source
    out = convert_imagenet(folder, tmp_path / "imagenet", block_rows=5)
    store, problems = check_store(out)
    assert problems == [] and store.manifest["synthetic"] is False
    features = store.features().read(np.arange(store.manifest["features"]["rows"]))
    expected = np.concatenate([train, val, *(unseen[c] for c in sorted(unseen))])
    np.testing.assert_array_equal(features, expected.astype(np.float16).astype(np.float32))
    arrays = store.arrays
    np.testing.assert_array_equal(arrays["labels"][:12], np.repeat([0, 1, 2], 4))
    np.testing.assert_array_equal(arrays["split_2H"], [3, 4])
    np.testing.assert_array_equal(arrays["split_L1K"], [5, 6])
    np.testing.assert_allclose(arrays["semantics"][:7], w2v[:7].astype(np.float32))
    assert not arrays["semantics"][7].any()  # no word vector: zeros, and noted
    assert any("non-finite" in note for note in store.manifest["provenance"]["notes"])
    assert arrays["class_names"][3] == "word 3" and arrays["wnids"][3] == "n00000003"
    for dataset in dataset_names():
        task = load_large_task(dataset, tmp_path)
        assert task.train.shape == (12, DIM) and task.test_seen.shape == (6, DIM)
    task = load_large_task("IMAGENET-M1K", tmp_path / "imagenet")
    np.testing.assert_array_equal(task.unseen_classes, [3, 4])
    np.testing.assert_array_equal(task.test_unseen_labels, [3, 3, 3, 4, 4])


def test_only_the_classes_of_the_chosen_splits_are_converted(source, tmp_path):
    folder, _ = source
    (folder / "ImageNet2011_res101_feature" / "res101_1crop_feature" / "7.bin").unlink()
    out = convert_imagenet(folder, tmp_path / "two", splits=["2H", "M500"])
    assert open_store(out).splits == ["2H", "M500"]
    assert open_store(out).manifest["images"]["unseen"] == 5
    with pytest.raises(DataError, match="1 unseen class feature file.*7.bin") as caught:
        convert_imagenet(folder, tmp_path / "all")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "all").exists() and not (tmp_path / "all.partial").exists()


def test_a_truncated_bin_file_is_one_error_line(source, tmp_path):
    folder, _ = source
    path = folder / "ImageNet2011_res101_feature" / "res101_1crop_feature" / "5.bin"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(DataError, match="5.bin holds 80 bytes but its header") as caught:
        convert_imagenet(folder, tmp_path / "out")
    assert "\n" not in str(caught.value)


def test_missing_inputs_are_named_together(tmp_path):
    (tmp_path / "src").mkdir()
    with pytest.raises(DataError, match="ILSVRC2012_res101_feature.mat, ImageNet_w2v.mat, "
                       "ImageNet_splits.mat, res101_1crop_feature/ not found"):
        convert_imagenet(tmp_path / "src", tmp_path / "out")


def test_split_ids_beyond_the_word_vectors_are_refused(source, tmp_path):
    folder, _ = source
    scipy.io.savemat(folder / "ImageNet_splits.mat", {"hops2": np.array([[4, 99]])})
    with pytest.raises(DataError, match="'hops2' holds values outside the 1-based ids 1..8"):
        convert_imagenet(folder, tmp_path / "out")


def test_seen_features_stream_in_blocks_and_unseen_ones_a_class_at_a_time(source, tmp_path,
                                                                          monkeypatch):
    from gzsl.data import store

    folder, _ = source
    sizes = []
    original = store.StoreWriter.append
    monkeypatch.setattr(store.StoreWriter, "append",
                        lambda self, block: (sizes.append(len(block)), original(self, block)))
    convert_imagenet(folder, tmp_path / "out", block_rows=5)
    assert sizes == [5, 5, 2, 5, 1, *UNSEEN_IMAGES.values()]


def test_a_matrix_square_in_its_labels_is_refused(tmp_path):
    folder = tmp_path / "xian"
    (folder / "ImageNet_w2v").mkdir(parents=True)
    write_files(folder, np.random.default_rng(0))
    labels = np.repeat(np.arange(1, 4), 2)[:, None]
    write_v73(folder / "ILSVRC2012_res101_feature.mat", {
        "features": np.ones((DIM, DIM), np.float32), "labels": np.ones((DIM, 1)),
        "features_val": np.ones((DIM, 6), np.float32), "labels_val": labels},
        keep_dtype=True)
    with pytest.raises(DataError, match="does not match its 5 labels along exactly one axis"):
        convert_imagenet(folder, tmp_path / "out")
