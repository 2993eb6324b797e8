"""One experiment end to end: load, preprocess, fit, select, score, write the run directory.

Three selection protocols, named in every result:

* ``val`` (default, honest): the generator is trained on the *validation task* (xlsa17
  train classes as seen, val classes as unseen, only trainval images); the generator
  checkpoint (as a fraction of training), the number of synthetic features per class,
  the classifier's epochs and, if enabled, the calibrated-stacking constant are chosen
  by validation H. Then one run on the final task with those choices fixed is scored on
  the test set once.
* ``final``: the preset's fixed budget, last checkpoint, last classifier epoch.
* ``test-oracle``: the papers' protocol, kept only to compare with published tables:
  every checkpoint and classifier epoch is scored on the test set and the best H kept.

A run that writes a directory saves, at every checkpoint, all it needs to continue
(``resume.pt``: the method's training state, the random state, the protocol's choices so
far); :func:`resume_run` continues from there and ends with the result the uninterrupted
run would have had.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gzsl.data.dataset import GZSLData
from gzsl.data.errors import GZSLError
from gzsl.data.preprocessing import Preprocessor
from gzsl.evaluation.classifier import SoftmaxSettings
from gzsl.evaluation.protocol import (
    STACKING_GAMMAS,
    Evaluation,
    TaskTensors,
    evaluate_generator,
)
from gzsl.experiments.config import ExperimentConfig
from gzsl.methods.base import (
    Checkpoint,
    CheckpointSchedule,
    Generator,
    atomic_torch_save,
    cpu_copy,
    deterministic_algorithms,
    get_method,
)
from gzsl.utils import atomic_write

Log = Callable[[str], None]

#: The file in a run directory from which an interrupted run continues.
RESUME_FILE = "resume.pt"
RESUME_FORMAT = 1


def run_status(run_dir: str | Path) -> str:
    """``"finished"`` (``results.json`` is there: it is written last), ``"unfinished"``
    (started: ``config.json`` without results; interrupted or still running) or ``"new"``.

    A ``resume.pt`` left beside ``results.json`` (a kill between the two writes) does not
    make a finished run unfinished.
    """
    run_dir = Path(run_dir)
    if (run_dir / "results.json").is_file():
        return "finished"
    return "unfinished" if (run_dir / "config.json").is_file() else "new"


@dataclass
class RunResult:
    """The outcome of one run; ``results.json`` is its :meth:`to_dict`.

    U, S, H and T1 are percentages. ``chosen`` records what the selection protocol chose
    (generator epoch, synthetic count, classifier epochs, stacking constant).
    """

    method: str
    dataset: str
    selection: str
    seed: int
    U: float
    S: float
    H: float
    T1: float
    synthetic_data: bool
    chosen: dict[str, Any] = field(default_factory=dict)
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    published: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    seconds: float = 0.0
    run_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without it is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GZSLError("--device cuda was asked for but PyTorch sees no CUDA device; "
                        "use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError as error:
        raise GZSLError(f"unknown device {name!r}: use auto, cpu or cuda") from error


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


@dataclass
class _Phase:
    """Bookkeeping of one generator training (validation or final task)."""

    name: str
    task: TaskTensors
    model: Generator
    rows: list[dict[str, Any]] = field(default_factory=list)
    epoch_rows: list[dict[str, Any]] = field(default_factory=list)


class Experiment:
    """Runs one :class:`ExperimentConfig` on a loaded dataset.

    Args:
        config: resolved configuration (see :func:`gzsl.experiments.config.resolve`).
        data: the dataset (features not yet preprocessed).
        log: where progress lines go (the CLI passes a rich console printer).
        root: the data folder, recorded in the run's metadata.
        tracker: called with each checkpoint's row (TensorBoard, for instance).
        out: run directory; when given, ``checkpoints.csv`` and the resume state are
            written there (atomically) at checkpoints.
        save_every: write the resume state at every so many checkpoints (and whenever
            training stops); 0 never writes it.
        resume: a loaded resume state (see :func:`resume_run`) to continue from.
    """

    def __init__(self, config: ExperimentConfig, data: GZSLData,
                 log: Log | None = None, root: str | Path | None = None,
                 tracker: Callable[[dict[str, Any]], None] | None = None, *,
                 out: str | Path | None = None, save_every: int = 1,
                 resume: dict[str, Any] | None = None) -> None:
        if save_every < 0:
            raise GZSLError(f"save_every must be >= 0, got {save_every}")
        self.config = config
        self.out = None if out is None else Path(out)
        self.save_every = save_every
        self.resume = resume
        #: The protocol's bookkeeping (choices so far); saved with the training state.
        self.progress: dict[str, Any] = {} if resume is None else resume["progress"]
        self.seconds_before = 0.0 if resume is None else float(resume["seconds"])
        self._checkpoints = 0
        self._started = time.perf_counter()
        self.tracker = tracker
        self.data = data
        self.root = None if root is None else str(Path(root).resolve())
        self.log = log or (lambda message: None)
        self.device = resolve_device(config.device)
        self.method_cls = get_method(config.method)
        evaluation = config.evaluation
        self.classifier_settings = SoftmaxSettings(
            evaluation.classifier_lr, evaluation.classifier_beta1,
            evaluation.classifier_batch_size, evaluation.classifier_epochs)
        self.gammas = STACKING_GAMMAS if evaluation.calibrated_stacking else (0.0,)
        if evaluation.calibrated_stacking and config.selection == "final":
            raise GZSLError("calibrated stacking needs a constant chosen on data: use "
                            "--selection val (or test-oracle), or turn it off")
        self.phases: list[_Phase] = []
        self.preprocessor = Preprocessor(config.data.preprocessing, config.data.l2)

    def _prepare(self, name: str) -> TaskTensors:
        task = self.preprocessor.transform_task(self.data.task(name))  # fitted on train only
        return TaskTensors.from_task(task, self.device)

    def _evaluate(self, model: Generator, task: TaskTensors, generator: torch.Generator,
                  n_synthetic: int, **keep: Any) -> Evaluation:
        return evaluate_generator(
            model, task, n_synthetic=n_synthetic, settings=self.classifier_settings,
            rng=generator, gammas=self.gammas,
            classifier=self.config.evaluation.classifier,
            zsl=self.config.evaluation.zsl_classifier, **keep)

    def _record(self, phase: _Phase, checkpoint: Checkpoint, evaluation: Evaluation | None) -> None:
        row: dict[str, Any] = {"phase": phase.name, "iteration": checkpoint.iteration,
                               "epoch": round(checkpoint.epoch, 4)}
        row.update({f"loss_{k}": v for k, v in checkpoint.losses.items()})
        if evaluation is not None:
            best = evaluation.best()
            row.update({"n_synthetic": evaluation.n_synthetic, "classifier_epoch": best.epoch,
                        "gamma": best.gamma, "U": 100 * best.U, "S": 100 * best.S,
                        "H": 100 * best.H, "T1": 100 * max(evaluation.zsl, default=math.nan)})
            for score in evaluation.gzsl:
                phase.epoch_rows.append({
                    "phase": phase.name, "iteration": checkpoint.iteration,
                    "n_synthetic": evaluation.n_synthetic, "classifier_epoch": score.epoch,
                    "gamma": score.gamma, "U": 100 * score.U, "S": 100 * score.S,
                    "H": 100 * score.H})
        phase.rows.append(row)
        if self.tracker is not None:
            self.tracker(row)

    def run(self) -> tuple[RunResult, Generator, Evaluation]:
        """Run the configured selection protocol; returns the result, generator, evaluation."""
        selection = self.config.selection
        runs = {"val": self._run_val, "final": self._run_final,
                "test-oracle": self._run_test_oracle}
        with deterministic_algorithms():
            outcome = runs[selection]()
        model, evaluation, chosen, t1 = outcome
        kept = evaluation.kept
        assert kept is not None
        result = RunResult(
            method=self.config.method, dataset=self.data.name, selection=selection,
            seed=self.config.seed, U=round(100 * kept.U, 4), S=round(100 * kept.S, 4),
            H=round(100 * kept.H, 4), T1=round(100 * t1, 4), synthetic_data=self.data.synthetic,
            chosen=chosen,
            per_class={"seen": evaluation.per_class_seen, "unseen": evaluation.per_class_unseen},
            published=self.config.published, preprocessing=self.preprocessor.describe(),
            device=str(self.device), seconds=round(self._seconds(), 2))
        return result, model, evaluation

    def _seconds(self) -> float:
        """Time spent on this run, including before an interruption it was resumed from."""
        return self.seconds_before + time.perf_counter() - self._started

    def _fit(self, phase: _Phase, generator: torch.Generator,
             on_checkpoint: Callable[[Checkpoint], bool | None], fraction: float = 1.0,
             at: frozenset[int] = frozenset()) -> None:
        """Train ``phase.model``, or continue it from the resume state.

        Checkpoints come every ``checkpoint_every`` iterations, at the iterations in ``at``
        and at the end; before the preset's share of training (``checkpoint_after``) they
        only record losses and save progress, and the last one is always evaluated.
        """
        self.phases.append(phase)
        evaluation = self.config.evaluation
        after = min(int(evaluation.checkpoint_after * fraction),
                    phase.model.total_iterations(len(phase.task.train_labels)))
        finished, resume = self._resume_phase(phase, generator)
        if finished:
            return

        def callback(checkpoint: Checkpoint) -> bool:
            if checkpoint.iteration < after and checkpoint.iteration not in at:
                self._record(phase, checkpoint, None)
                stop = False
            else:
                stop = bool(on_checkpoint(checkpoint))
            self._save(checkpoint, generator, stop)
            return stop

        schedule = CheckpointSchedule(every=evaluation.checkpoint_every, callback=callback,
                                      at=at)
        resuming = {} if resume is None else {"resume": resume}  # methods that cannot resume
        phase.model.fit(phase.task.seen_data(), rng=generator, schedule=schedule,
                        **resuming)

    def _resume_phase(self, phase: _Phase, generator: torch.Generator
                      ) -> tuple[bool, dict[str, Any] | None]:
        """Restore ``phase`` from the resume state: its rows, and where training stood.

        Returns whether the phase's training is already over, and the method's training
        state to continue from (``None``: train from the start).
        """
        saved = {} if self.resume is None else {p["name"]: p for p in self.resume["phases"]}
        if phase.name not in saved:
            return False, None
        phase.rows, phase.epoch_rows = saved[phase.name]["rows"], saved[phase.name]["epoch_rows"]
        if phase.name != self.resume["phases"][-1]["name"]:
            return True, None
        generator.set_state(self.resume["rng"])
        training = self.resume["training"]
        self.log(f"resuming the {phase.name} task after iteration "
                 f"{training['loop']['iteration']}")
        if self.resume["stopped"]:
            phase.model.load_state_dict(training["model"], device=self.device)
            return True, None
        return False, training

    def _save(self, checkpoint: Checkpoint, generator: torch.Generator, stopped: bool) -> None:
        """Write ``checkpoints.csv`` and, when due, the resume state, both atomically."""
        if self.out is None:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        write_csv(self.out / "checkpoints.csv", [row for p in self.phases for row in p.rows])
        self._checkpoints += 1
        if (self.save_every == 0 or checkpoint.snapshot is None
                or (self._checkpoints % self.save_every and not stopped)):
            return
        atomic_torch_save({
            "format": RESUME_FORMAT, "config": self.config.to_dict(),
            "device": str(self.device), "seconds": self._seconds(), "stopped": stopped,
            "rng": generator.get_state(),
            "training": checkpoint.training_state(), "progress": cpu_copy(self.progress),
            "phases": [{"name": p.name, "rows": p.rows, "epoch_rows": p.epoch_rows}
                       for p in self.phases],
        }, self.out / RESUME_FILE)

    def _n_grid(self) -> list[int]:
        evaluation = self.config.evaluation
        return sorted({max(1, round(m * evaluation.n_synthetic))
                       for m in evaluation.n_synthetic_grid})

    def _run_val(self) -> tuple[Generator, Evaluation, dict[str, Any], float]:
        validation = self._prepare("validation")
        final = self._prepare("final")
        method = self.method_cls(self.config.method_config)
        fraction = (method.total_iterations(len(validation.train_labels))
                    / max(1, method.total_iterations(len(final.train_labels))))
        phase = _Phase("validation", validation, method)
        generator = make_generator(self.config.seed, self.device)
        best: dict[str, Any] = self.progress.setdefault("best", {})
        n_grid = self._n_grid()
        self.log(f"validation task: {len(validation.seen_classes)} seen / "
                 f"{len(validation.unseen_classes)} unseen classes, choosing over "
                 f"n_synthetic in {n_grid}")

        def on_checkpoint(checkpoint: Checkpoint) -> None:
            evaluations = [self._evaluate(method, validation, generator, n) for n in n_grid]
            for evaluation in evaluations:
                self._record(phase, checkpoint, evaluation)
                top = evaluation.best()
                if not best or top.H > best["H"]:
                    best.update(H=top.H, epoch=checkpoint.epoch, iteration=checkpoint.iteration,
                                n_synthetic=evaluation.n_synthetic, classifier_epochs=top.epoch,
                                gamma=top.gamma, zsl_epochs=evaluation.zsl_epoch)
            self.log(f"  validation checkpoint {checkpoint.iteration}: best val H so far "
                     f"{100 * best['H']:.2f}")

        self._fit(phase, generator, on_checkpoint, fraction)
        by_iteration = self.config.evaluation.transfer == "iteration"
        self.log(f"chosen on validation: generator epoch {best['epoch']:.2f} (iteration "
                 f"{best['iteration']}), {best['n_synthetic']} synthetic per class, "
                 f"{best['classifier_epochs']} classifier epochs, gamma {best['gamma']}; "
                 f"training on the final task to the same "
                 f"{'iteration' if by_iteration else 'epoch'}")
        final_model = self.method_cls(self.config.method_config)
        final_phase = _Phase("final", final, final_model)
        generator = make_generator(self.config.seed, self.device)
        stopped: dict[str, Any] = self.progress.setdefault("stopped", {})

        def stop_at_chosen(checkpoint: Checkpoint) -> bool:
            self._record(final_phase, checkpoint, None)
            stopped.update(iteration=checkpoint.iteration, epoch=checkpoint.epoch)
            if by_iteration:
                return checkpoint.iteration >= best["iteration"]
            return checkpoint.epoch >= best["epoch"] - 1e-9

        self._fit(final_phase, generator, stop_at_chosen,
                  at=frozenset({best["iteration"]}) if by_iteration else frozenset())
        evaluation = self._evaluate(final_model, final, generator, best["n_synthetic"],
                                    keep="last", keep_epoch=best["classifier_epochs"],
                                    keep_gamma=best["gamma"], keep_zsl_epoch=best["zsl_epochs"])
        chosen = {"validation_H": round(100 * best["H"], 4),
                  "generator_epoch": round(best["epoch"], 4),
                  "generator_iteration": best["iteration"],
                  "final_iteration": stopped.get("iteration"),
                  "n_synthetic": best["n_synthetic"],
                  "classifier_epochs": best["classifier_epochs"], "gamma": best["gamma"],
                  "zsl_classifier_epochs": best["zsl_epochs"]}
        return final_model, evaluation, chosen, evaluation.T1

    def _run_final(self) -> tuple[Generator, Evaluation, dict[str, Any], float]:
        final = self._prepare("final")
        model = self.method_cls(self.config.method_config)
        phase = _Phase("final", final, model)
        generator = make_generator(self.config.seed, self.device)
        last: dict[str, Any] = self.progress.setdefault("last", {})

        def log_only(checkpoint: Checkpoint) -> None:
            self._record(phase, checkpoint, None)
            last.update(iteration=checkpoint.iteration, epoch=checkpoint.epoch)

        self._fit(phase, generator, log_only)
        n = self.config.evaluation.n_synthetic
        evaluation = self._evaluate(model, final, generator, n, keep="last")
        chosen = {"generator_epoch": round(last.get("epoch", 0.0), 4),
                  "final_iteration": last.get("iteration"), "n_synthetic": n,
                  "classifier_epochs": self.classifier_settings.epochs, "gamma": 0.0}
        return model, evaluation, chosen, evaluation.T1

    def _run_test_oracle(self) -> tuple[Generator, Evaluation, dict[str, Any], float]:
        final = self._prepare("final")
        model = self.method_cls(self.config.method_config)
        phase = _Phase("final", final, model)
        generator = make_generator(self.config.seed, self.device)
        n = self.config.evaluation.n_synthetic
        best: dict[str, Any] = self.progress.setdefault("best", {"T1": 0.0})

        def on_checkpoint(checkpoint: Checkpoint) -> None:
            evaluation = self._evaluate(model, final, generator, n, keep="best")
            self._record(phase, checkpoint, evaluation)
            top = evaluation.best()
            best["T1"] = max(best["T1"], max(evaluation.zsl, default=0.0))
            if "H" not in best or top.H > best["H"]:
                best.update(H=top.H, evaluation=evaluation.to_dict(),
                            iteration=checkpoint.iteration, epoch=checkpoint.epoch,
                            state=cpu_copy(model.state_dict()))
            self.log(f"  checkpoint {checkpoint.iteration}: test H {100 * top.H:.2f} "
                     f"(best {100 * best['H']:.2f}) [test-oracle]")

        self._fit(phase, generator, on_checkpoint)
        model.load_state_dict(best["state"], device=self.device)
        evaluation = Evaluation.from_dict(best["evaluation"])
        chosen = {"generator_epoch": round(best["epoch"], 4), "final_iteration": best["iteration"],
                  "n_synthetic": n, "classifier_epochs": evaluation.kept.epoch,
                  "gamma": evaluation.kept.gamma,
                  "note": "chosen on the TEST set (test-oracle); T1 is the best test T1 "
                          "over checkpoints and epochs, as in the papers"}
        return model, evaluation, chosen, best["T1"]


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`gzsl.utils.atomic_write`)."""
    atomic_write(path, lambda handle: handle.write(text.encode()))


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rows with possibly different keys, written with the union of keys as header."""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def write_npz(path: Path, **arrays: Any) -> None:
    """``numpy.savez`` of ``arrays`` to ``path``, atomically."""
    import numpy as np

    atomic_write(path, lambda handle: np.savez(handle, **arrays))


def write_json(path: Path, value: Any) -> None:
    write_text_atomic(path, json.dumps(value, indent=2, default=str) + "\n")


def environment() -> dict[str, Any]:
    """Versions of the package and the libraries that shape results."""
    import platform

    import numpy
    import scipy
    import sklearn

    import gzsl

    return {"gzsl": gzsl.__version__, "python": platform.python_version(),
            "torch": torch.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__, "platform": platform.platform(),
            "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def write_run_start(out: Path, experiment: Experiment) -> None:
    """Write ``config.json`` and ``metadata.json`` as a run starts: all a resume needs."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", experiment.config.to_dict())
    _write_metadata(out, experiment, seconds=None)


def _write_metadata(out: Path, experiment: Experiment, seconds: float | None) -> None:
    config = experiment.config
    write_json(out / "metadata.json", {
        "environment": environment(), "seed": config.seed, "device": str(experiment.device),
        "selection": config.selection, "root": experiment.root, "data": experiment.data.source,
        "data_summary": experiment.data.summary(), "synthetic_data": experiment.data.synthetic,
        "preprocessing": experiment.preprocessor.describe(), "seconds": seconds,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })


def write_run_dir(out: Path, experiment: Experiment, result: RunResult, model: Generator,
                  evaluation: Evaluation) -> None:
    """Write config, metadata, results, curves, generator and classifier into ``out``.

    ``results.json`` comes last and the resume state is then removed: a run directory
    with ``results.json`` and without ``resume.pt`` is complete.
    """
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", experiment.config.to_dict())
    _write_metadata(out, experiment, seconds=result.seconds)
    checkpoints = [row for phase in experiment.phases for row in phase.rows]
    epochs = [row for phase in experiment.phases for row in phase.epoch_rows]
    if checkpoints:
        write_csv(out / "checkpoints.csv", checkpoints)
    if epochs:
        write_csv(out / "classifier_epochs.csv", epochs)
    model.save(out / "generator.pt")
    final_task = experiment.phases[-1].task
    write_npz(out / "predictions.npz",
              test_seen_labels=final_task.test_seen_labels.cpu().numpy(),
              test_seen_predictions=evaluation.predictions["test_seen"].numpy(),
              test_unseen_labels=final_task.test_unseen_labels.cpu().numpy(),
              test_unseen_predictions=evaluation.predictions["test_unseen"].numpy(),
              seen_classes=final_task.seen_classes.cpu().numpy(),
              unseen_classes=final_task.unseen_classes.cpu().numpy())
    prep = experiment.preprocessor
    atomic_torch_save({
        "classifier": evaluation.classifier_state,
        "preprocessing": {"scaling": prep.scaling, "l2": prep.l2,
                          "minimum": torch.from_numpy(prep.minimum_),
                          "scale": torch.from_numpy(prep.scale_)},
        "class_names": list(experiment.data.class_names),
    }, out / "classifier.pt")
    result.run_dir = str(out)
    write_json(out / "results.json", result.to_dict())
    (out / RESUME_FILE).unlink(missing_ok=True)


def run_experiment(config: ExperimentConfig, *, root: str | Path | None = None,
                   out: str | Path | None = None, data: GZSLData | None = None,
                   log: Log | None = None,
                   tracker: Callable[[dict[str, Any]], None] | None = None,
                   save_every: int = 1, resume: dict[str, Any] | None = None) -> RunResult:
    """Load the data (unless given), run ``config`` and write the run directory to ``out``.

    With ``out``, the run saves its progress there at checkpoints (every ``save_every``-th;
    0: never) so that :func:`resume_run` can continue it after an interruption.
    """
    if data is None:
        from gzsl.data.loaders import load_dataset

        data = load_dataset(config.dataset, root, layout=config.data.layout,
                            semantics=config.data.semantics)
    experiment = Experiment(config, data, log, root=root, tracker=tracker, out=out,
                            save_every=save_every, resume=resume)
    if out is not None and resume is None:
        write_run_start(Path(out), experiment)
    result, model, evaluation = experiment.run()
    if out is not None:
        write_run_dir(Path(out), experiment, result, model, evaluation)
    return result


def resume_run(run_dir: str | Path, *, root: str | Path | None = None,
               device: str | None = None, data: GZSLData | None = None,
               log: Log | None = None,
               tracker: Callable[[dict[str, Any]], None] | None = None,
               save_every: int = 1) -> RunResult:
    """Continue the interrupted run in ``run_dir`` from its last saved checkpoint.

    The run's own ``config.json`` defines it; ``root`` defaults to the data folder it
    used. A run interrupted before its first checkpoint starts again from the beginning.
    The result equals the uninterrupted run's (on the same device and software).
    """
    run_dir = Path(run_dir)
    log = log or (lambda message: None)
    config_path, state_path = run_dir / "config.json", run_dir / RESUME_FILE
    status = run_status(run_dir)
    if status == "new":
        raise GZSLError(f"{run_dir} is not a run directory: it has no config.json; start a "
                        f"run with gzsl train METHOD DATASET --out {run_dir}")
    if status == "finished":
        raise GZSLError(f"the run in {run_dir} has finished (results.json is there); "
                        f"nothing to resume")
    for stray in run_dir.glob(".*.tmp"):  # half-written files of a killed atomic_write
        stray.unlink()
    config = ExperimentConfig.from_dict(read_json(config_path))
    if device is not None:
        config = dataclasses.replace(config, device=device)
    metadata_path = run_dir / "metadata.json"
    if root is None and metadata_path.is_file():
        root = read_json(metadata_path).get("root")
    state = None
    if state_path.exists():
        state = load_resume_state(state_path, config)
        log(f"resuming {run_dir} from its checkpoint saved after "
            f"{state['seconds']:.0f} s of training")
    else:
        log(f"{run_dir} has no saved checkpoint (interrupted before the first one): "
            f"starting the run again")
    return run_experiment(config, root=root, out=run_dir, data=data, log=log, tracker=tracker,
                          save_every=save_every, resume=state)


def load_resume_state(path: Path, config: ExperimentConfig) -> dict[str, Any]:
    """Read a resume state and check that it belongs to ``config`` and this device type."""
    fix = "start the run again with gzsl train (or restore the file)"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for damaged files
        raise GZSLError(f"cannot read {path}: {error}; {fix}") from error
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
        raise GZSLError(f"{path} is not a resume state of this gzsl version; {fix}")
    saved, wanted = comparable_config(state["config"]), comparable_config(config.to_dict())
    if saved != wanted:
        changed = sorted(k for k in saved.keys() | wanted.keys() if saved.get(k) != wanted.get(k))
        raise GZSLError(f"{path} was saved by a run with other settings ({', '.join(changed)} "
                        f"differ from config.json); resume needs the run's own settings")
    saved_device = torch.device(state["device"]).type
    device = resolve_device(config.device).type
    if saved_device != device:
        raise GZSLError(f"{path} was saved on {saved_device}, this run would use {device}; "
                        f"resume on the same kind of device (--device {saved_device})")
    return state


def comparable_config(config: dict[str, Any]) -> dict[str, Any]:
    """A config as JSON holds it, without the device: the settings two runs must share
    for one to continue the other.

    Settings added to gzsl after the run was made count at their defaults (a new setting's
    default keeps the old behaviour), so a run interrupted before an upgrade still resumes
    after it; a config that no longer loads is compared as saved.
    """
    with contextlib.suppress(GZSLError):
        config = ExperimentConfig.from_dict(config).to_dict()
    plain = json.loads(json.dumps(config, default=str))
    plain.pop("device", None)
    return plain


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file of a run directory; a user error naming the file when unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise GZSLError(f"cannot read {path}: {error}") from error


def default_run_dir(config: ExperimentConfig, base: str | Path = "runs") -> Path:
    """``runs/<method>-<dataset>-<selection>-seed<N>-<timestamp>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{config.method}-{config.dataset.lower()}-{config.selection}-seed{config.seed}-{stamp}"
    return Path(base) / name
