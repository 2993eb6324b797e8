"""The checks of gzsl.data.validation on hand-made arrays, one fault at a time."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gzsl.data import DataError, GZSLData
from gzsl.data.errors import GZSLError, check_choice
from gzsl.data.validation import (
    DataProblemsError,
    Problem,
    index_problems,
    missing_keys,
    orient,
    raise_if_problems,
    validate,
)

ORIGIN = {"features": ("feats.mat", "features"), "labels": ("feats.mat", "labels"),
          "semantics": ("splits.mat", "att"), "trainval": ("splits.mat", "trainval_loc"),
          "test_seen": ("splits.mat", "test_seen_loc"),
          "test_unseen": ("splits.mat", "test_unseen_loc"),
          "train": ("splits.mat", "train_loc"), "val": ("splits.mat", "val_loc")}


def tiny() -> GZSLData:
    """Five classes, four images each: 0-2 seen (train 0, 1; val 2), 3-4 unseen."""
    labels = np.repeat(np.arange(5), 4)
    seen_images = np.flatnonzero(labels < 3)
    return GZSLData(
        name="tiny", features=np.random.default_rng(0).random((20, 3)).astype(np.float32),
        labels=labels, semantics=np.random.default_rng(1).random((5, 2)).astype(np.float32),
        class_names=tuple("abcde"),
        splits={"trainval": seen_images[seen_images % 4 != 3],
                "test_seen": seen_images[seen_images % 4 == 3],
                "test_unseen": np.flatnonzero(labels >= 3),
                "train": np.flatnonzero(labels < 2), "val": np.flatnonzero(labels == 2)})


def changed(data: GZSLData, **fields) -> GZSLData:
    return dataclasses.replace(data, **fields)


def with_splits(data: GZSLData, **splits) -> GZSLData:
    new = {k: v for k, v in {**data.splits, **splits}.items() if v is not None}
    return changed(data, splits=new)


def keys(problems: list[Problem]) -> list[str | None]:
    return [p.key for p in problems]


def test_a_sound_dataset_has_no_problem():
    assert validate(tiny(), ORIGIN) == []


def test_non_finite_features_and_semantics_name_rows_file_and_key():
    data = tiny()
    features, semantics = data.features.copy(), data.semantics.copy()
    features[7, 1], features[12, 0] = np.nan, np.inf
    semantics[4, 0] = np.nan
    problems = validate(changed(data, features=features, semantics=semantics), ORIGIN)
    assert [(p.file, p.key) for p in problems] == [("feats.mat", "features"),
                                                   ("splits.mat", "att")]
    assert "2 image row(s) (0-based rows 7, 12;" in problems[0].message
    assert "1 class row(s)" in problems[1].message


def test_label_without_semantics():
    data = tiny()
    labels = data.labels.copy()
    labels[-1] = 5
    problems = validate(changed(data, labels=labels), ORIGIN)
    assert keys(problems) == ["labels"] and "without semantics" in problems[0].message


def test_overlapping_splits():
    data = tiny()
    overlapping = np.append(data.splits["test_seen"], data.splits["trainval"][0])
    problems = validate(with_splits(data, test_seen=overlapping), ORIGIN)
    assert keys(problems) == ["test_seen_loc"]
    assert "'trainval' and 'test_seen' share 1 image(s) (0-based 0)" in problems[0].message


def test_splits_must_cover_every_image():
    data = tiny()
    problems = validate(with_splits(data, test_unseen=data.splits["test_unseen"][1:]), ORIGIN)
    assert len(problems) == 1 and "1 of 20 images are in none" in problems[0].message
    assert "image 12" in problems[0].message


def test_index_out_of_range_and_duplicates():
    data = tiny()
    problems = validate(with_splits(data, test_unseen=np.append(
        data.splits["test_unseen"], 20)), ORIGIN)
    assert keys(problems) == ["test_unseen_loc"] and "out of range" in problems[0].message
    problems = validate(with_splits(data, test_seen=np.append(
        data.splits["test_seen"], data.splits["test_seen"][0])), ORIGIN)
    assert keys(problems) == ["test_seen_loc"] and "more than once" in problems[0].message


def test_unseen_class_with_training_images():
    data = tiny()
    labels = data.labels.copy()
    labels[data.splits["trainval"][0]] = 4
    problems = validate(changed(data, labels=labels), ORIGIN)
    assert any(p.key == "test_unseen_loc" and "both seen" in p.message and "4 (e)" in p.message
               for p in problems)


def test_test_seen_class_must_be_seen():
    data = tiny()
    labels = data.labels.copy()
    labels[data.splits["test_seen"][0]] = 3
    problems = validate(changed(data, labels=labels), ORIGIN)
    assert [p.key for p in problems if "no trainval image" in p.message] == ["test_seen_loc"]


def test_class_without_images():
    data = tiny()
    semantics = np.vstack([data.semantics, np.ones((1, 2), dtype=np.float32)])
    problems = validate(changed(data, semantics=semantics, class_names=(*"abcde", "f")),
                        ORIGIN)
    assert keys(problems) == ["att"] and "5 (f)" in problems[0].message


def test_validation_split_rules():
    data = tiny()
    problems = validate(with_splits(data, val=np.append(data.splits["val"], 0)), ORIGIN)
    assert "'train' and 'val' share 1 image" in problems[0].message
    val_with_train_class = np.flatnonzero(data.labels == 1)[:1]
    train = np.setdiff1d(data.splits["train"], val_with_train_class)
    problems = validate(with_splits(data, train=train, val=np.append(
        data.splits["val"], val_with_train_class)), ORIGIN)
    assert any("in both train and val" in p.message and p.key == "val_loc" for p in problems)
    problems = validate(with_splits(data, val=None), ORIGIN)
    assert keys(problems) == ["train_loc"] and "without 'val'" in problems[0].message


def test_a_missing_required_split():
    problems = validate(with_splits(tiny(), test_seen=None), ORIGIN)
    assert keys(problems) == ["test_seen_loc"] and "missing" in problems[0].message


def test_missing_keys_one_problem_each():
    problems = missing_keys(["att", "x"], ["att", "trainval_loc", "test_seen_loc"], "s.mat",
                            fix="add them")
    assert [(p.file, p.key) for p in problems] == [("s.mat", "trainval_loc"),
                                                   ("s.mat", "test_seen_loc")]


def test_index_problems_one_based():
    assert index_problems(np.array([1, 2, 5]), base=1, upper=5, file="f", key="k") == []
    zero = index_problems(np.array([0, 1, 2]), base=1, upper=5, file="f", key="k")
    assert len(zero) == 1 and "looks 0-based" in zero[0].message
    high = index_problems(np.array([1, 6]), base=1, upper=5, file="f", key="k")
    assert "index 6, out of range" in high[0].message and "valid 1..5" in high[0].message
    floats = index_problems(np.array([1.0, 2.5]), base=1, file="f", key="k")
    assert "whole numbers" in floats[0].message
    assert index_problems(np.array([1.0, 2.0]), base=1, file="f", key="k") == []
    assert "empty" in index_problems(np.array([]), base=1, file="f", key="k")[0].message


def test_index_problems_zero_based():
    assert index_problems(np.array([0, 4]), base=0, upper=5, file="f", key="k") == []
    shifted = index_problems(np.array([1, 5]), base=0, upper=5, file="f", key="k")
    assert "look 1-based" in shifted[0].message
    negative = index_problems(np.array([-1, 2]), base=0, upper=5, file="f", key="k")
    assert "below the first valid index 0" in negative[0].message


def test_orient_declared_transposed_ambiguous_and_mismatched():
    matrix = np.arange(12.0).reshape(3, 4)
    oriented, problems, note = orient(matrix, count=4, count_axis=1, file="f.mat", key="x")
    assert problems == [] and note is None
    np.testing.assert_array_equal(oriented, matrix.T)
    oriented, problems, note = orient(matrix.T, count=4, count_axis=1, file="f.mat", key="x")
    np.testing.assert_array_equal(oriented, matrix.T)
    assert problems == [] and "transposed on load" in note
    oriented, problems, _ = orient(np.eye(4), count=4, count_axis=0, file="f.mat", key="x")
    assert oriented is None and "ambiguous" in problems[0].message
    oriented, problems, _ = orient(matrix, count=5, count_axis=0, file="f.mat", key="x")
    assert oriented is None and "neither side matches the 5" in problems[0].message
    oriented, problems, _ = orient(np.ones(3), count=3, count_axis=0, file="f.mat", key="x")
    assert oriented is None and "2-D" in problems[0].message


def test_problems_raise_together():
    raise_if_problems([])
    first = Problem("bad one", file="a.mat", key="x", fix="do this")
    second = Problem("bad two", file="b.mat", key="y")
    with pytest.raises(DataError) as error:
        raise_if_problems([first, second])
    assert isinstance(error.value, DataProblemsError)
    assert (error.value.file, error.value.key) == ("a.mat", "x")
    text = str(error.value)
    assert text.startswith("2 problems") and "(1) bad one (file a.mat, key 'x'). Fix: do this" \
        in text and "(2) bad two (file b.mat, key 'y')" in text
    assert str(DataProblemsError([first])) == str(first.to_error())


def test_check_choice_names_the_setting_the_value_and_every_choice():
    check_choice("transfer", "epoch", ("epoch", "iteration"))
    with pytest.raises(GZSLError) as error:
        check_choice("transfer", "steps", ("epoch", "iteration"))
    assert str(error.value) == "unknown transfer 'steps'; choose one of epoch, iteration"


def test_duplicate_class_names_are_listed():
    problems = validate(changed(tiny(), class_names=("a", "b", "a", "d", "b")), ORIGIN)
    assert keys(problems) == ["class_names"]
    assert "'a' (classes 0, 2)" in problems[0].message
    assert "'b' (classes 1, 4)" in problems[0].message


def test_all_zero_semantic_vector_of_a_used_class():
    data = tiny()
    semantics = data.semantics.copy()
    semantics[3] = 0.0
    problems = validate(changed(data, semantics=semantics), ORIGIN)
    assert [(p.file, p.key) for p in problems] == [("splits.mat", "att")]
    assert "all-zero" in problems[0].message and "3 (d)" in problems[0].message


def test_identical_semantic_vectors_name_the_classes():
    data = tiny()
    semantics = data.semantics.copy()
    semantics[4] = semantics[1]
    problems = validate(changed(data, semantics=semantics), ORIGIN)
    assert keys(problems) == ["att"]
    assert "1 (b) = 4 (e)" in problems[0].message
