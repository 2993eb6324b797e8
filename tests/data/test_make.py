"""gzsl data make (features + semantics + split -> checked .npz) and data valsplit."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_main

from gzsl.data.errors import GZSLError
from gzsl.data.io import read_mat
from gzsl.data.loaders import load_dataset
from gzsl.data.make import SplitSpec, make_dataset, rebuild_validation_split


def _inputs(n_classes=10, per_class=10, seed=0):
    rng = np.random.default_rng(seed)
    names = [f"class{c}" for c in range(n_classes)]
    semantics = rng.random((n_classes + 1, 4)).astype(np.float32)
    labels = np.repeat(np.arange(n_classes), per_class)
    features = rng.random((len(labels), 6)).astype(np.float32) + labels[:, None]
    return features, labels, names, semantics, [*names, "no_images"]


def test_seeded_split_follows_xlsa17_shape():
    features, labels, names, semantics, semantic_names = _inputs()
    data = make_dataset(features, labels, names, semantics, semantic_names,
                        SplitSpec(unseen_count=3, val_count=2, seed=4), name="x")
    split = data.source["split"]
    assert len(split["unseen_classes"]) == 3 and len(split["val_classes"]) == 2
    assert set(split["val_classes"]).isdisjoint(split["unseen_classes"])
    s = data.splits
    assert len(s["test_unseen"]) == 30 and len(s["test_seen"]) == 7 * 2
    assert len(s["trainval"]) == 7 * 8 and len(s["val"]) == 2 * 8
    assert np.array_equal(np.sort(np.concatenate([s["train"], s["val"]])), s["trainval"])
    unseen_ids = [names.index(n) for n in split["unseen_classes"]]
    assert not np.isin(data.labels[s["trainval"]], unseen_ids).any()
    assert data.n_classes == 10  # the class without images is left out
    again = make_dataset(features, labels, names, semantics, semantic_names,
                         SplitSpec(unseen_count=3, val_count=2, seed=4), name="x")
    assert all(np.array_equal(again.splits[k], s[k]) for k in s)
    other = make_dataset(features, labels, names, semantics, semantic_names,
                         SplitSpec(unseen_count=3, val_count=2, seed=5), name="x")
    assert other.source["split"] != split or not np.array_equal(other.splits["test_seen"],
                                                                s["test_seen"])


def test_given_classes_and_their_errors():
    features, labels, names, semantics, semantic_names = _inputs()
    data = make_dataset(features, labels, names, semantics, semantic_names,
                        SplitSpec(unseen=("class1", "class2"), val=("class3",)), name="x")
    assert data.source["split"]["unseen_classes"] == ["class1", "class2"]
    assert data.source["split"]["val_classes"] == ["class3"]
    with pytest.raises(GZSLError, match="validation class\\(es\\) class1 are unseen"):
        make_dataset(features, labels, names, semantics, semantic_names,
                     SplitSpec(unseen=("class1",), val=("class1",)), name="x")
    with pytest.raises(GZSLError, match="unseen class\\(es\\) zebra have no images"):
        make_dataset(features, labels, names, semantics, semantic_names,
                     SplitSpec(unseen=("zebra",)), name="x")
    with pytest.raises(GZSLError, match="no vector for 1 class\\(es\\) of the images: class9"):
        make_dataset(features, labels, names, semantics[:9], semantic_names[:9], SplitSpec(),
                     name="x")


def test_data_make_command_writes_a_dataset_data_check_accepts(tmp_path, capsys):
    features, labels, names, semantics, semantic_names = _inputs()
    np.savez(tmp_path / "f.npz", features=features, labels=labels,
             class_names=np.array(names), name=np.array("mine"))
    np.savez(tmp_path / "s.npz", semantics=semantics, class_names=np.array(semantic_names))
    (tmp_path / "unseen.txt").write_text("class0\nclass5\n")
    code, output = run_main(capsys, "data", "make", str(tmp_path / "f.npz"),
                            str(tmp_path / "s.npz"), str(tmp_path / "d.npz"), "--unseen",
                            str(tmp_path / "unseen.txt"), "--val", "class1,class2")
    assert code == 0, output
    assert "10 classes (8 seen, 2 unseen: class0, class5)" in output
    code, output = run_main(capsys, "data", "check", str(tmp_path / "d.npz"))
    assert code == 0 and "no problems found" in output
    data = load_dataset("mine", tmp_path / "d.npz")
    assert data.has_validation and data.source["converted_from"]["layout"] == "made"


def test_valsplit_rebuilds_the_official_awa2_split(xlsa17_dir, tmp_path, capsys):
    labels = np.load(xlsa17_dir / "AWA2" / "labels.npy")
    official = read_mat(xlsa17_dir / "AWA2" / "att_splits.mat")
    names = [str(np.ravel(n)[0]) for n in np.ravel(official["allclasses_names"])]
    train = sorted({names[c - 1] for c in labels[np.ravel(official["train_loc"]) - 1]})
    val = sorted({names[c - 1] for c in labels[np.ravel(official["val_loc"]) - 1]})
    (tmp_path / "classlists").mkdir()
    (tmp_path / "classlists" / "trainclasses1.txt").write_text("\n".join(train) + "\n")
    (tmp_path / "classlists" / "valclasses1.txt").write_text("\n".join(val) + "\n")
    stripped = {k: v for k, v in official.items() if k not in ("train_loc", "val_loc")}
    import scipy.io

    scipy.io.savemat(tmp_path / "att_splits_trainval_test_only.mat", stripped)
    np.save(tmp_path / "labels.npy", labels)
    code, output = run_main(capsys, "data", "valsplit",
                            str(tmp_path / "att_splits_trainval_test_only.mat"),
                            str(tmp_path / "labels.npy"), str(tmp_path / "att_splits.mat"))
    assert code == 0, output
    rebuilt = read_mat(tmp_path / "att_splits.mat")
    for key in ("train_loc", "val_loc"):
        assert np.array_equal(np.sort(np.ravel(rebuilt[key])), np.sort(np.ravel(official[key])))
    with pytest.raises(GZSLError, match="both train and val"):
        rebuild_validation_split(tmp_path / "att_splits.mat", labels, train, train[:1],
                                 tmp_path / "other.mat")


def test_awa1_class_lists_name_classes_of_its_split_file(xlsa17_dir):
    names = [str(np.ravel(n)[0]) for n in np.ravel(
        read_mat(xlsa17_dir / "AWA1" / "att_splits.mat")["allclasses_names"])]
    from gzsl.data.make import read_names

    for file in ("trainclasses1.txt", "valclasses1.txt"):
        assert set(read_names(xlsa17_dir / "AWA1" / "classlists" / file)) <= set(names)
