"""--mlflow's tracker: a tiny run logged to a local MLflow store, read back."""

from __future__ import annotations

import pytest
from conftest import make_tiny_dataset

from gzsl.experiments.config import resolve
from gzsl.experiments.runner import run_experiment
from gzsl.experiments.tracking import mlflow_tracker

mlflow = pytest.importorskip("mlflow")

TINY = ("method.epochs=2", "method.hidden_dim=16", "method.global_semantic_dim=8",
        "method.batch_size=32", "evaluation.checkpoint_every=3", "evaluation.n_synthetic=20",
        "evaluation.classifier_epochs=2", "evaluation.n_synthetic_grid=[1]")


def test_a_tiny_run_logs_its_checkpoint_rows_and_settings_to_a_local_store(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").resolve().as_uri()
    track, close = mlflow_tracker("tiny-run", uri=uri, params={"method.epochs": 2})
    rows = []

    def both(row):
        rows.append(row)
        track(row)

    config = resolve("gsmflow", "tiny", overrides=TINY, selection="final", device="cpu")
    run_experiment(config, data=make_tiny_dataset(), tracker=both)
    close()

    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("gzsl").experiment_id])
    assert run.info.run_name == "tiny-run" and run.info.status == "FINISHED"
    assert run.data.params == {"method.epochs": "2"}
    losses = client.get_metric_history(run.info.run_id, "final/loss_nll")
    assert sorted((m.step, round(m.value, 4)) for m in losses) == [
        (row["iteration"], round(row["loss_nll"], 4)) for row in rows]
    scored = [row for row in rows if "H" in row]
    history = client.get_metric_history(run.info.run_id, "final/H")
    assert [(m.step, round(m.value, 4)) for m in history] == [
        (row["iteration"], round(row["H"], 4)) for row in scored]
