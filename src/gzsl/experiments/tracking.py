"""Optional experiment tracking: checkpoint rows to TensorBoard, MLflow or your own.

The hook: a *tracker* is any callable taking one dict, the row of a checkpoint, which the
runner (:meth:`gzsl.experiments.runner.Experiment.record`) calls at every generator
checkpoint of every phase, in order. A row holds ``phase`` (``validation`` or ``final``),
``iteration``, ``epoch``, the mean of each loss term since the previous checkpoint
(``loss_<name>``) and, where the checkpoint was scored, ``n_synthetic``,
``classifier_epoch``, ``gamma``, ``U``, ``S``, ``H`` and ``T1`` (percent). Pass one as
``tracker=`` to :func:`gzsl.experiments.runner.run_experiment` or
:func:`gzsl.experiments.resume.resume_run`; a tracker that raises stops the run (the
resume state of the previous checkpoint stays). :func:`tensorboard_tracker` and
:func:`mlflow_tracker` are the two the CLI offers (``--tensorboard``, ``--mlflow``); both
are optional extras (``pip install 'gzsl[tensorboard]'``, ``pip install 'gzsl[mlflow]'``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gzsl.data.errors import GZSLError

#: Where ``--mlflow`` logs without ``MLFLOW_TRACKING_URI``: a local file store.
MLFLOW_DEFAULT_STORE = "mlruns"

Tracker = Callable[[dict[str, Any]], None]


def tensorboard_tracker(folder: str | Path) -> tuple[Tracker, Callable[[], None]]:
    """A tracker writing scalars ``<phase>/<name>`` at step ``iteration``, and its closer.

    Raises a :class:`GZSLError` naming the install command when TensorBoard is missing.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise GZSLError("--tensorboard needs the tensorboard package, which is not installed. "
                        "Fix: pip install 'gzsl[tensorboard]' (or pip install tensorboard), "
                        "or run without --tensorboard") from error
    writer = SummaryWriter(log_dir=str(folder))

    def track(row: dict[str, Any]) -> None:
        step = int(row["iteration"])
        for name, value in row.items():
            if name in ("phase", "iteration") or not isinstance(value, int | float):
                continue
            writer.add_scalar(f"{row['phase']}/{name}", float(value), step)
        writer.flush()

    return track, writer.close


def _scalars(row: dict[str, Any]) -> dict[str, float]:
    """A row's numbers as ``<phase>/<name>``, the same names TensorBoard gets."""
    return {f"{row['phase']}/{name}": float(value) for name, value in row.items()
            if name not in ("phase", "iteration") and isinstance(value, int | float)
            and not isinstance(value, bool)}


def mlflow_tracker(run_name: str, *, uri: str | None = None, experiment: str = "gzsl",
                   params: dict[str, Any] | None = None) -> tuple[Tracker, Callable[[], None]]:
    """A tracker logging each row as MLflow metrics ``<phase>/<name>`` at step
    ``iteration`` in a new run ``run_name`` of ``experiment``, and its closer.

    ``uri`` is a tracking URI (a team's server, ``http://...``); default: the
    ``MLFLOW_TRACKING_URI`` environment variable, else a local file store in
    ``./mlruns`` (which MLflow 3 keeps in maintenance mode: it is allowed here, with
    ``MLFLOW_ALLOW_FILE_STORE``, because it needs no database package).
    ``params`` (the run's settings) are logged as the run's parameters.
    Raises a :class:`GZSLError` naming the install command when MLflow is missing.
    """
    import os

    try:
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient
    except ImportError as error:
        raise GZSLError("--mlflow needs the mlflow package, which is not installed. Fix: "
                        "pip install 'gzsl[mlflow]' (or pip install mlflow), or run "
                        "without --mlflow") from error
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or \
        Path(MLFLOW_DEFAULT_STORE).resolve().as_uri()
    if uri.startswith("file:"):  # MLflow 3 refuses its file store unless this is set
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = (found.experiment_id if found is not None
                     else client.create_experiment(experiment))
    run_id = client.create_run(experiment_id, run_name=run_name).info.run_id
    if params:
        client.log_batch(run_id, params=[Param(str(k), str(v)[:6000])
                                         for k, v in params.items()])

    def track(row: dict[str, Any]) -> None:
        stamp = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(name, value, stamp, int(row["iteration"]))
                                          for name, value in _scalars(row).items()])

    def close() -> None:
        client.set_terminated(run_id)

    return track, close
