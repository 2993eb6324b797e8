"""`gzsl train` and `gzsl reproduce` on an ImageNet-21K split run out of core, end to end,
on a tiny SYNTHETIC feature store."""

import csv
import json
import math

import pytest
from conftest import run_main

from gzsl.data.imagenet import make_synthetic_imagenet

WORLD = dict(seen=8, unseen=40, feature_dim=16, semantic_dim=8, train_per_class=6,
             test_per_class=2, unseen_images=3.0, seed=1)
SMALL = ("method.iterations=6", "method.batch_size=8", "method.coupling_hidden=8",
         "method.encoder_hidden=[8, 8]", "method.decoder_hidden=8",
         "method.initialisation_size=16", "evaluation.n_synthetic=4",
         "evaluation.classifier_epochs=1", "evaluation.classifier_batch_size=16",
         "evaluation.checkpoint_every=3", "evaluation.loss_every=1")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_synthetic_imagenet(tmp_path_factory.mktemp("w") / "imagenet-synthetic",
                                   **WORLD)


def _sets() -> list[str]:
    return [part for setting in SMALL for part in ("--set", setting)]


def test_train_on_an_imagenet_split_writes_a_streamed_run(capsys, store, tmp_path):
    out = tmp_path / "run"
    code, output = run_main(capsys, "train", "vaecflow", "IMAGENET-2H", "--root", str(store),
                            "--out", str(out), "--threads", "1", *_sets())
    assert code == 0, output
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == "IMAGENET-2H" and results["selection"] == "final"
    assert results["synthetic_data"] is True and results["chosen"]["seen_per_class"] == 50
    assert results["published"]["H"] == 6.3
    assert "streamed" in json.loads((out / "metadata.json").read_text())
    assert "SYNTHETIC" in output
    with open(out / "losses.csv") as handle:  # loss windows between checkpoints (every 3)
        windows = list(csv.DictReader(handle))
    assert [int(row["iteration"]) for row in windows] == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(float(row["loss_total"])) for row in windows)

    (out / "results.json").unlink()  # as if interrupted
    code, output = run_main(capsys, "train", "--resume", str(out))
    assert code == 2 and "saves no resume state" in output


def test_reproduce_on_an_imagenet_split_prints_the_published_numbers(capsys, store,
                                                                     tmp_path):
    code, output = run_main(capsys, "reproduce", "vaecflow", "imagenet-m500", "--root",
                            str(store), "--seeds", "1", "--out", str(tmp_path / "runs"),
                            *_sets())
    assert code == 0, output
    assert "published" in output and "13.6" in output and "16.5" in output
    assert (tmp_path / "runs" / "seed0" / "results.json").is_file()


def test_trackers_and_test_oracle_are_refused_before_anything_is_written(capsys, store,
                                                                        tmp_path):
    out = tmp_path / "refused"
    code, output = run_main(capsys, "train", "vaecflow", "IMAGENET-3H", "--root", str(store),
                            "--out", str(out), "--tensorboard", *_sets())
    assert code == 2 and "feeds no tracker" in output
    code, output = run_main(capsys, "train", "vaecflow", "IMAGENET-3H", "--root", str(store),
                            "--out", str(out), "--selection", "test-oracle", *_sets())
    assert code == 2 and "use --selection final" in output
    assert not (out / "config.json").exists()
