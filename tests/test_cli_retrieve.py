"""``gzsl retrieve``: zero-shot retrieval from a trained run, checked against the library."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import invoke_cli as invoke
from conftest import make_tiny_dataset, train_tiny_run

import gzsl.cli.results  # noqa: F401  (registers retrieve)
import gzsl.cli.run  # noqa: F401  (registers train)
from gzsl.data.errors import GZSLError
from gzsl.evaluation.retrieval import retrieval_precision, synthetic_queries
from gzsl.experiments.trained import load_run

FAST = ("--set", "evaluation.classifier_epochs=2", "--set", "evaluation.classifier_lr=0.05",
        "--set", "evaluation.classifier_batch_size=32", "--set", "evaluation.n_synthetic=10")



@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A Gaussian-baseline run on the tiny dataset (stored as ``tiny.npz``)."""
    folder = tmp_path_factory.mktemp("retrieve")
    return train_tiny_run(folder, *FAST), folder


def _expected(run_dir: Path, n: int, ks: tuple[int, ...], metric: str, seed: int) -> dict:
    """Retrieval computed directly: the run's generator, its preprocessing, test_unseen."""
    data = make_tiny_dataset()
    run = load_run(run_dir, data=data)
    final = data.task("final")
    unseen = np.unique(final.test_unseen_labels)
    semantics = torch.as_tensor(data.semantics[unseen], dtype=torch.float32)
    queries = synthetic_queries(run.generator_, semantics, n,
                                rng=torch.Generator().manual_seed(seed))
    return retrieval_precision(queries, torch.as_tensor(unseen),
                               torch.as_tensor(run.preprocess(final.test_unseen_features)),
                               torch.as_tensor(final.test_unseen_labels), ks, metric=metric)


def test_retrieve_writes_the_library_precisions(trained):
    run_dir, _ = trained
    result = invoke("retrieve", str(run_dir), "--n", "20", "--k", "3", "--k", "1",
                    "--metric", "cosine", "--seed", "4")
    assert result.exit_code == 0, result.output
    report = json.loads((run_dir / "retrieval.json").read_text())
    expected = _expected(run_dir, 20, (1, 3), "cosine", 4)
    assert report["ks"] == [1, 3] and report["metric"] == "cosine" and report["n"] == 20
    assert report["method"] == "gaussian" and report["dataset"] == "tiny"
    final = make_tiny_dataset().task("final")
    assert report["gallery_images"] == len(final.test_unseen_labels)
    names = make_tiny_dataset().class_names
    unseen = np.unique(final.test_unseen_labels)
    assert list(report["per_class"]) == [names[c] for c in unseen]
    for k in (1, 3):
        assert report["mean"][f"precision@{k}"] == pytest.approx(expected[f"precision@{k}"])
        for c in unseen:
            row = report["per_class"][names[c]]
            assert row["class_id"] == c
            assert row["gallery_images"] == int((final.test_unseen_labels == c).sum())
            assert row[f"precision@{k}"] == pytest.approx(expected[f"precision@{k}/{c}"])
    # the tiny dataset's class centres are an affine map of the semantics: far above chance
    assert report["mean"]["precision@3"] > 100 / len(unseen) + 20
    assert "P@3" in result.output and f"{report['mean']['precision@1']:.1f}" in result.output


def test_retrieve_defaults_are_the_papers(trained):
    run_dir, _ = trained
    result = invoke("retrieve", str(run_dir))
    assert result.exit_code == 0, result.output
    report = json.loads((run_dir / "retrieval.json").read_text())
    assert (report["n"], report["ks"], report["metric"], report["seed"]) == (
        100, [5, 10], "euclidean", 0)
    expected = _expected(run_dir, 100, (5, 10), "euclidean", 0)
    assert report["mean"] == pytest.approx({k: v for k, v in expected.items() if "/" not in k})


def test_retrieve_user_errors(trained, tmp_path):
    run_dir, _ = trained
    result = invoke("retrieve", str(run_dir), "--metric", "manhattan")
    assert result.exit_code == 2 and "euclidean or cosine" in result.output
    result = invoke("retrieve", str(run_dir), "--k", "100000")
    assert isinstance(result.exception, GZSLError) and "gallery size" in str(result.exception)
    result = invoke("retrieve", str(tmp_path / "nowhere"))
    assert isinstance(result.exception, GZSLError)
    assert "does not exist" in str(result.exception)
