"""One run on a :class:`~gzsl.data.sources.LargeTask` (ImageNet-21K scale), out of core.

:func:`run_large` is :func:`gzsl.experiments.runner.run_experiment` for data that do not
fit in memory: the preprocessing is fitted in one streamed pass over the training rows,
the method trains on rows read batch by batch (:class:`~gzsl.methods.rows.DeviceRows`),
and the final classifier trains and scores on a stream
(:func:`gzsl.evaluation.streamed.evaluate_streamed`). Only the fixed-budget ``final``
selection exists: the ImageNet splits of VAE-cFlow (Sec. 4.2) have no validation classes.
The run directory has the usual files (``config.json``, ``metadata.json``,
``checkpoints.csv``, ``losses.csv``, ``generator.pt``, ``classifier.pt``,
``predictions.npz``, ``results.json``), so ``gzsl compare`` and ``gzsl show`` read it like
any other run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gzsl.data.errors import GZSLError
from gzsl.data.preprocessing import Preprocessor
from gzsl.data.sources import LargeTask
from gzsl.evaluation.classifier import SoftmaxSettings
from gzsl.evaluation.protocol import Evaluation
from gzsl.evaluation.streamed import StreamSettings, evaluate_streamed
from gzsl.experiments import progress
from gzsl.experiments.config import ExperimentConfig
from gzsl.experiments.rundir import (
    CHECKPOINTS,
    CONFIG,
    LOSSES,
    METADATA,
    RESULTS,
    RunDir,
)
from gzsl.experiments.runner import (
    Log,
    RunResult,
    environment,
    loss_window,
    make_generator,
    now,
    provenance,
    resolve_device,
)
from gzsl.methods.base import (
    Checkpoint,
    CheckpointSchedule,
    Generator,
    SeenData,
    deterministic_algorithms,
    get_method,
)
from gzsl.methods.rows import DeviceRows


def check_large_config(config: ExperimentConfig) -> None:
    """Refuse, in one line each, what the streamed path does not do."""
    if config.selection != "final":
        raise GZSLError(f"selection {config.selection!r} is not available at ImageNet scale: "
                        f"these splits have no validation classes (VAE-cFlow Sec. 4.2); use "
                        f"--selection final (the fixed budget)")
    evaluation = config.evaluation
    if evaluation.classifier != "softmax":
        raise GZSLError(f"classifier {evaluation.classifier!r} is not streamed; use "
                        f"evaluation.classifier=softmax at ImageNet scale")
    if evaluation.seen_features != "real":
        raise GZSLError("seen_features 'synthetic' is not streamed; use "
                        "evaluation.seen_features=real at ImageNet scale")
    if evaluation.calibrated_stacking:
        raise GZSLError("calibrated stacking needs a constant chosen on validation data, "
                        "which these splits lack; turn it off")
    method_cls = get_method(config.method)
    if not method_cls.trains_from_batches:
        raise GZSLError(f"{config.method} trains on its whole feature matrix in memory, which "
                        f"does not fit at ImageNet scale; use a method that trains from "
                        f"batches (vaecflow)")


def run_large(config: ExperimentConfig, task: LargeTask, *, out: str | Path | None = None,
              stream: StreamSettings | None = None, log: Log | None = None,
              root: str | Path | None = None, overwrite: bool = False
              ) -> tuple[RunResult, Generator, Evaluation]:
    """Fit ``config``'s method on ``task``'s streamed seen data, then train and score the
    streamed final classifier; with ``out``, write a run directory there.

    Args:
        config: a resolved configuration with ``selection="final"`` (see
            :func:`check_large_config` for what else is refused).
        task: the split, its feature matrices read on demand.
        out: the run directory (claimed and locked while the run writes; a finished run
            is not written over unless ``overwrite``).
        stream: memory bounds and the classifier's real rows per seen class
            (default :class:`StreamSettings`: the paper's 50).
        log: where progress lines go (the active progress reporter's stream otherwise).
        root: the data folder, recorded in the metadata.
    """
    check_large_config(config)
    stream = stream or StreamSettings()
    if out is None:
        return _run(config, task, stream, log, None, root)
    run_dir = RunDir(out)
    run_dir.check(overwrite=overwrite)
    with run_dir.claim(overwrite=overwrite):
        return _run(config, task, stream, log, run_dir, root)


def _run(config: ExperimentConfig, task: LargeTask, stream: StreamSettings, log: Log | None,
         run_dir: RunDir | None, root: str | Path | None
         ) -> tuple[RunResult, Generator, Evaluation]:
    started, clock = now(), time.perf_counter()
    reporter = progress.active()
    say = log or (reporter.write if reporter is not None else (lambda line: None))
    device = resolve_device(config.device)
    preprocessor = Preprocessor(config.data.preprocessing, config.data.l2)
    metadata: dict[str, Any] = {
        **provenance(config), "environment": environment(), "seed": config.seed,
        "device": str(device), "selection": config.selection,
        "root": None if root is None else str(Path(root).resolve()), "data": task.source,
        "data_summary": summary(task), "synthetic_data": task.synthetic,
        "streamed": _stream_record(stream), "started": started, "finished": None,
    }
    if run_dir is not None:
        run_dir.write_json(CONFIG, config.to_dict())
        run_dir.write_json(METADATA, metadata)
    say(f"{task.name}: fitting {preprocessor.scaling} preprocessing on "
        f"{len(task.train):,} training rows (one streamed pass)")
    preprocessor.fit_source(task.train)
    metadata["preprocessing"] = preprocessor.describe()

    def tensor(values: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(values), dtype=dtype, device=device)

    semantics = tensor(task.semantics, torch.float32)
    seen_classes = tensor(task.seen_classes, torch.long)
    unseen_classes = tensor(task.unseen_classes, torch.long)
    data = SeenData(DeviceRows(task.train, device, preprocessor.transform),
                    tensor(task.train_labels, torch.long), semantics, seen_classes)
    model = get_method(config.method)(config.method_config)
    rng = make_generator(config.seed, device)
    rows: list[dict[str, Any]] = []
    last: dict[str, Any] = {}

    def record(checkpoint: Checkpoint) -> None:
        row = {"phase": "final", "iteration": checkpoint.iteration,
               "epoch": round(checkpoint.epoch, 4),
               **{f"loss_{k}": v for k, v in checkpoint.losses.items()}}
        rows.append(row)
        last.update(iteration=checkpoint.iteration, epoch=checkpoint.epoch)
        if reporter is not None:
            reporter.checkpoint(row)
        if run_dir is not None:
            run_dir.write_csv(CHECKPOINTS, rows)

    loss_rows: list[dict[str, Any]] = []

    def on_losses(iteration: int, steps: int, means: dict[str, float]) -> None:
        loss_rows.append({"phase": "final", "iteration": iteration, "steps": steps,
                          **{f"loss_{k}": v for k, v in means.items()}})
        if reporter is not None:
            reporter.window(means)
        if run_dir is not None:
            run_dir.write_csv(LOSSES, loss_rows)

    evaluation_config = config.evaluation
    total = model.total_iterations(len(task.train))
    schedule = CheckpointSchedule(
        every=evaluation_config.checkpoint_every, callback=record,
        losses_every=loss_window(evaluation_config.loss_every, total), on_losses=on_losses)
    settings = SoftmaxSettings(evaluation_config.classifier_lr,
                               evaluation_config.classifier_beta1,
                               evaluation_config.classifier_batch_size,
                               evaluation_config.classifier_epochs)
    n = evaluation_config.n_synthetic
    with deterministic_algorithms():
        with progress.training("final", total, None, schedule) as reporting_schedule:
            model.fit(data, rng=rng, schedule=reporting_schedule)
        if reporter is not None:
            reporter.evaluation(n)
        evaluation = evaluate_streamed(
            model, train=task.train, train_labels=task.train_labels,
            test_seen=task.test_seen, test_seen_labels=task.test_seen_labels,
            test_unseen=task.test_unseen, test_unseen_labels=task.test_unseen_labels,
            semantics=semantics, seen_classes=seen_classes, unseen_classes=unseen_classes,
            class_names=task.class_names, n_synthetic=n, settings=settings, rng=rng,
            device=device, transform=preprocessor.transform,
            zsl=evaluation_config.zsl_classifier, stream=stream, say=say)
    kept = evaluation.kept
    assert kept is not None
    seconds = round(time.perf_counter() - clock, 2)
    chosen = {"generator_epoch": round(last.get("epoch", 0.0), 4),
              "final_iteration": last.get("iteration"), "n_synthetic": n,
              "classifier_epochs": settings.epochs, "gamma": 0.0,
              "seen_per_class": stream.seen_per_class}
    result = RunResult(
        method=config.method, dataset=task.name, selection=config.selection,
        seed=config.seed, U=round(100 * kept.U, 4), S=round(100 * kept.S, 4),
        H=round(100 * kept.H, 4), T1=round(100 * evaluation.T1, 4),
        synthetic_data=task.synthetic, chosen=chosen,
        per_class={"seen": evaluation.per_class_seen, "unseen": evaluation.per_class_unseen},
        published=config.published, preprocessing=preprocessor.describe(),
        device=str(device), seconds=seconds)
    if run_dir is not None:
        _write_finish(run_dir, result, model, evaluation, task, preprocessor,
                      {**metadata, "finished": now(), "seconds": seconds})
    return result, model, evaluation


def _write_finish(run_dir: RunDir, result: RunResult, model: Generator,
                  evaluation: Evaluation, task: LargeTask, preprocessor: Preprocessor,
                  metadata: dict[str, Any]) -> None:
    """Metadata, generator, classifier, predictions and, last, ``results.json``."""
    run_dir.write_json(METADATA, metadata)
    run_dir.save_generator(model)
    if evaluation.predictions:
        run_dir.write_predictions(
            test_seen_labels=task.test_seen_labels,
            test_seen_predictions=evaluation.predictions["test_seen"],
            test_unseen_labels=task.test_unseen_labels,
            test_unseen_predictions=evaluation.predictions["test_unseen"],
            seen_classes=task.seen_classes, unseen_classes=task.unseen_classes)
    run_dir.write_classifier(evaluation.classifier_state, preprocessor, task.class_names,
                             task.semantics)
    result.run_dir = str(run_dir.path)
    run_dir.write_json(RESULTS, result.to_dict())


def summary(task: LargeTask) -> dict[str, Any]:
    """Sizes of ``task`` for the run metadata."""
    return {"name": task.name, "feature_dim": int(task.train.shape[1]),
            "semantic_dim": int(task.semantics.shape[1]), "classes": len(task.semantics),
            "seen_classes": len(task.seen_classes), "unseen_classes": len(task.unseen_classes),
            "train": len(task.train), "test_seen": len(task.test_seen),
            "test_unseen": len(task.test_unseen)}


def _stream_record(stream: StreamSettings) -> dict[str, Any]:
    return {"seen_per_class": stream.seen_per_class, "block_rows": stream.block_rows,
            "eval_rows": stream.eval_rows, "materialise": stream.materialise,
            "score_every_epoch": stream.score_every_epoch}
