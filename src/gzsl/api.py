"""The short way in from Python: :func:`train` one method on one dataset, get a :class:`Run`.

``gzsl.train`` does what ``gzsl train`` does (resolve the preset and settings, load the
data, run the selection protocol, write the run directory) and returns the trained run:
its configuration, metrics, generator and classifier, ready to predict or synthesise.
``Run.load`` reads a finished run directory back; ``Run.save`` copies one elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gzsl.data.dataset import GZSLData
from gzsl.experiments.config import resolve
from gzsl.experiments.runner import Log, Tracker, default_run_dir, execute
from gzsl.experiments.trained import TrainedRun as Run

__all__ = ["Run", "train"]


def train(method: str, dataset: str, *, seed: int = 0, selection: str | None = None,
          preset: str | None = None, root: str | Path | None = None, device: str = "auto",
          out: str | Path | None = None, data: GZSLData | None = None,
          overwrite: bool = False, log: Log | None = None, tracker: Tracker | None = None,
          save_every: int = 1, **settings: Any) -> Run:
    """Train ``method`` on ``dataset``, score it, write its run directory; return the run.

    Args:
        method: a registered method (``gsmflow``, ``vaecflow``, ``amaz``, ``gaussian``).
        dataset: ``demo``, a benchmark name with ``root``, or any name with ``data``.
        seed, selection, preset, root, device: as the ``gzsl train`` options (selection
            None: the preset's own, else ``val``).
        out: the run directory (default ``runs/METHOD-DATASET-SELECTION-seedN-TIME``);
            a folder that holds anything is refused unless ``overwrite``.
        data: the dataset itself, instead of loading it from ``root``.
        log: called with each progress line (default: silent).
        **settings: settings by name (``epochs=4``, ``n_synthetic=200``), found in the
            method's, the evaluation's or the data's section; a name two sections share
            is refused: pass it with its section, ``**{"evaluation.name": value}``.

    Example::

        run = gzsl.train("gsmflow", "demo", epochs=4)
        run.metrics                      # {'U': ..., 'S': ..., 'H': ..., 'T1': ...}
        run.predict(features)            # class names of raw feature rows
    """
    config = resolve(method, dataset, preset=preset, seed=seed, selection=selection,
                     device=device, values=settings)
    out = Path(out) if out is not None else default_run_dir(config)
    _, _, model, _ = execute(config, root=root, out=out, data=data, log=log, tracker=tracker,
                             save_every=save_every, overwrite=overwrite)
    run = Run(out, model.device, root=root, data=data)
    run.__dict__["generator_"] = model  # the trained generator itself, not a reload
    return run
