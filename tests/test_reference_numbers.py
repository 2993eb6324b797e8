"""Results do not move: tiny runs of every method and selection protocol give the numbers
recorded in ``reference_numbers.json`` (made with commit 36a4063, before the run-API
refactor), through the command line a user runs.

The losses summed over checkpoints fingerprint every random draw and update of training;
the metrics fingerprint synthesis, the final classifiers and selection. A change of
draw order or numerical path moves them far beyond the tolerances, which only absorb
float noise between CPUs. When a change is *meant* to move results, regenerate the file
with the same cases and say so in the commit.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import make_tiny_dataset, run_main

from gzsl.data.io import save_npz

REFERENCE = json.loads((Path(__file__).parent / "reference_numbers.json").read_text())
EVALUATION = ("evaluation.checkpoint_every=3", "evaluation.checkpoint_after=7",
              "evaluation.n_synthetic=20", "evaluation.classifier_epochs=8",
              "evaluation.classifier_lr=0.05", "evaluation.classifier_batch_size=32",
              "evaluation.n_synthetic_grid=[0.5, 1]")
GSMFLOW = ("method.epochs=4", "method.hidden_dim=16", "method.global_semantic_dim=8",
           "method.batch_size=32")
CASES = {
    "gaussian-val-stacking": ("gaussian", "val", ("evaluation.calibrated_stacking=true",)),
    "gsmflow-val": ("gsmflow", "val", (*GSMFLOW, "method.lr_step_epochs=1")),
    "gsmflow-test-oracle": ("gsmflow", "test-oracle", (*GSMFLOW,
                                                       "evaluation.checkpoint_after=8")),
    "vaecflow-final": ("vaecflow", "final", (
        "method.iterations=20", "method.encoder_hidden=[16, 16]", "method.decoder_hidden=8",
        "method.coupling_hidden=8", "method.batch_size=32")),
    "amaz-val": ("amaz", "val", (
        "method.iterations=12", "method.n_way=3", "method.support_shots=2",
        "method.query_shots=2", "method.tasks_per_batch=2", 'evaluation.transfer="iteration"')),
}


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("reference") / "tiny.npz"
    save_npz(make_tiny_dataset(), path)
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_results_match_the_recorded_reference(case, tiny_npz, tmp_path, capsys):
    method, selection, extra = CASES[case]
    settings = [arg for setting in (*EVALUATION, *extra) for arg in ("--set", setting)]
    code, output = run_main(capsys, "train", method, "tiny", "--root", str(tiny_npz),
                            "--device", "cpu", "--selection", selection,
                            "--out", str(tmp_path / "run"), *settings)
    assert code == 0, output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    with open(tmp_path / "run" / "checkpoints.csv") as handle:
        rows = list(csv.DictReader(handle))
    expected = REFERENCE[case]
    for metric in ("U", "S", "H", "T1"):
        assert results[metric] == pytest.approx(expected[metric], abs=1e-3), metric
    for loss, total in expected["losses"].items():
        summed = sum(float(row[loss]) for row in rows if row[loss])
        assert summed == pytest.approx(total, rel=1e-5, abs=1e-6), loss
