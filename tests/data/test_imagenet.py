"""ImageNet-21K: split definitions as data, dataset names, the synthetic world."""

import numpy as np
import pytest

from gzsl.data.demo import SyntheticFeatureModel, make_synthetic_features
from gzsl.data.errors import DataError, GZSLError
from gzsl.data.imagenet import (
    _feature_defaults,
    check_selection,
    dataset_names,
    load_large_task,
    make_synthetic_imagenet,
    split_definitions,
    split_of,
    synthetic_world,
)
from gzsl.data.store import check_store, open_store

SMALL = dict(seen=12, unseen=300, feature_dim=32, semantic_dim=16, train_per_class=3,
             test_per_class=2, unseen_images=3.0, seed=4)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_synthetic_imagenet(tmp_path_factory.mktemp("w") / "imagenet-synthetic",
                                   block_rows=50, **SMALL)


def test_the_split_table_holds_the_published_splits():
    table = split_definitions()
    assert list(table) == ["2H", "3H", "M500", "M1K", "M5K", "L500", "L1K", "L5K", "ALL"]
    assert [d.size for d in table.values()] == [1509, 7678, 500, 1000, 5000, 500, 1000,
                                                5000, 20345]
    assert {d.kind for d in table.values()} == {"hierarchy", "popularity", "all"}
    assert table["3H"].hops == 3 and table["L1K"].order == "least"
    assert table["M5K"].scaled_size(20345) == 5000
    assert table["M5K"].scaled_size(300) == 74


def test_dataset_names_resolve_in_any_case():
    assert dataset_names()[0] == "IMAGENET-2H"
    assert split_of("imagenet-m1k") == "M1K"
    assert split_of("ImageNet-ALL") == "ALL"
    assert split_of("IMAGENET-4H") is None and split_of("AWA2") is None


def test_val_and_test_oracle_are_refused_naming_final_in_one_line():
    for selection in ("val", "test-oracle"):
        with pytest.raises(GZSLError, match="use --selection final") as caught:
            check_selection("imagenet-2h", selection)
        assert "\n" not in str(caught.value)
    check_selection("IMAGENET-2H", "final")
    check_selection("AWA2", "val")


@pytest.mark.parametrize("dataset", dataset_names())
def test_every_split_loads_as_a_large_task_from_the_synthetic_world(world, dataset):
    task = load_large_task(dataset, world.parent)
    definition = split_definitions()[split_of(dataset)]
    assert task.synthetic and task.name == dataset
    assert len(task.unseen_classes) == definition.scaled_size(300)
    assert set(np.unique(task.test_unseen_labels)) == set(task.unseen_classes.tolist())
    assert task.train.shape == (12 * 3, 32) and task.test_seen.shape == (12 * 2, 32)
    assert task.semantics.shape == (312, 16)
    assert np.isin(task.train_labels, task.seen_classes).all()
    assert task.test_unseen.read(np.array([0])).shape == (1, 32)


def test_the_world_is_labelled_synthetic_and_checks_clean(world):
    store, problems = check_store(world)
    assert problems == []
    assert store.manifest["synthetic"] is True
    assert "SYNTHETIC" in store.manifest["provenance"]
    assert all(name.startswith("SYNTHETIC") for name in store.arrays["class_names"])


def test_hierarchy_and_popularity_splits_mean_what_they_say(world):
    arrays = open_store(world).arrays
    hops, labels = arrays["hops"], arrays["labels"]
    counts = np.bincount(labels, minlength=len(hops))
    two, three, every = (set(arrays[f"split_{s}"].tolist()) for s in ("2H", "3H", "ALL"))
    assert two < three < every
    assert hops[list(two)].max() <= 2 and hops[list(every - three)].min() >= 4
    most, least = arrays["split_M500"], arrays["split_L500"]
    assert counts[most].min() >= counts[least].max()
    assert counts[arrays["split_M5K"]].sum() > counts[arrays["split_L5K"]].sum()


def test_nearer_classes_have_semantics_closer_to_their_seen_parent():
    world = synthetic_world(seen=20, unseen=2000, semantic_dim=32)
    unseen = np.arange(20, 2020)
    similarity = np.sum(world.semantics[unseen] * world.semantics[world.parents[unseen]],
                        axis=1)
    near, far = similarity[world.hops[unseen] <= 2], similarity[world.hops[unseen] >= 4]
    assert near.mean() > far.mean()


def test_features_drawn_in_blocks_are_those_of_one_draw(world):
    store = open_store(world)
    world_bookkeeping = synthetic_world(**{k: v for k, v in SMALL.items()
                                           if k != "feature_dim"})
    model = SyntheticFeatureModel.draw(world_bookkeeping.semantics, feature_dim=32, seed=4,
                                       **_feature_defaults(make_synthetic_features))
    every, _ = model.images(np.arange(312), world_bookkeeping.counts)
    stored = store.features().read(np.arange(len(every)))
    np.testing.assert_allclose(stored, every.astype(np.float16), rtol=1e-3, atol=1e-3)


def test_a_world_needs_sensible_sizes(tmp_path):
    with pytest.raises(GZSLError, match="at least"):
        make_synthetic_imagenet(tmp_path / "x", seen=0)
    with pytest.raises(DataError, match="no ImageNet feature store"):
        load_large_task("IMAGENET-2H", tmp_path)
    with pytest.raises(DataError, match="not an ImageNet-21K split"):
        load_large_task("IMAGENET-9H", tmp_path)


def test_the_world_is_written_in_blocks_never_whole(tmp_path, monkeypatch):
    from gzsl.data import store

    sizes = []
    original = store.StoreWriter.append
    monkeypatch.setattr(store.StoreWriter, "append",
                        lambda self, block: (sizes.append(len(block)), original(self, block)))
    make_synthetic_imagenet(tmp_path / "w", block_rows=40, **SMALL)
    labels = open_store(tmp_path / "w").arrays["labels"]
    largest_class = np.bincount(labels).max()
    assert largest_class > 40  # a class is drawn whole: a block of one class may be larger
    assert len(sizes) > 10 and max(sizes) <= largest_class and sum(sizes) == len(labels)
    assert all(size <= 40 or size in np.bincount(labels) for size in sizes)


def test_the_in_memory_loader_sends_imagenet_splits_to_the_store(tmp_path):
    from gzsl.data.loaders import load_dataset

    with pytest.raises(DataError, match="IMAGENET-3H is an ImageNet-21K split, too large"):
        load_dataset("IMAGENET-3H", tmp_path)
