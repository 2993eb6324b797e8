"""One experiment end to end: load, preprocess, fit, select, score, write the run directory.

:class:`Experiment` owns the training of each phase (validation task, final task), the
scoring of checkpoints and what is recorded; a selection protocol
(:mod:`gzsl.experiments.protocols`) decides what is scored on which data and what is kept;
a :class:`~gzsl.experiments.rundir.RunDir` owns the files. A run that writes a directory
saves, at checkpoints, all it needs to continue (:mod:`gzsl.experiments.resume`).
"""

from __future__ import annotations

import dataclasses
import math
import shlex
import sys
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
from gzsl.experiments import progress
from gzsl.experiments.config import EvaluationConfig, ExperimentConfig
from gzsl.experiments.protocols import SelectionProtocol, make_protocol
from gzsl.experiments.rundir import (
    CHECKPOINTS,
    CLASSIFIER_EPOCHS,
    CONFIG,
    LOSSES,
    METADATA,
    RESULTS,
    RESUME,
    RunDir,
)
from gzsl.methods.base import (
    Checkpoint,
    CheckpointSchedule,
    Generator,
    deterministic_algorithms,
    get_method,
    show_progress,
)

Log = Callable[[str], None]
Tracker = Callable[[dict[str, Any]], None]

#: Version of the resume state's layout (``resume.pt``).
RESUME_FORMAT = 1
#: Loss windows a phase aims at when ``evaluation.loss_every`` is 0 (automatic).
LOSS_POINTS = 150


@dataclass
class RunResult:
    """The outcome of one run; ``results.json`` is its :meth:`to_dict`.

    U, S, H and T1 are percentages. ``chosen`` records what the selection protocol chose
    (generator epoch, synthetic count, classifier epochs, stacking constant).
    ``seen_features`` says what the final GZSL classifier learnt the seen classes from
    (``"real"`` features, or ``"synthetic"`` ones as some papers do), since that changes
    S, U and H.
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
    seen_features: str = "real"
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    published: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    seconds: float = 0.0
    run_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunResult:
        """A result from a checked ``results.json`` (:meth:`RunDir.results`); keys this
        version does not know are ignored, missing optional ones take their defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [k for k in ("seed", "U", "S", "H", "T1") if values.get(k) is None]
        if missing:
            raise GZSLError(f"results lack {', '.join(missing)}. Fix: the file was damaged "
                            "or edited; train the run again")
        kept = {k: v for k, v in values.items() if k in names}
        kept.setdefault("synthetic_data", False)
        return cls(**kept)


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
    """The random generator a run's phase starts from: ``seed`` on ``device``."""
    return torch.Generator(device=device).manual_seed(seed)


@dataclass
class Phase:
    """One generator training (validation or final task): its model, task, random
    generator, and the rows recorded at its checkpoints, classifier epochs and loss
    windows (``losses.csv``)."""

    name: str
    task: TaskTensors
    model: Generator
    rng: torch.Generator
    rows: list[dict[str, Any]] = field(default_factory=list)
    epoch_rows: list[dict[str, Any]] = field(default_factory=list)
    loss_rows: list[dict[str, Any]] = field(default_factory=list)


class Experiment:
    """Runs one :class:`ExperimentConfig` on a loaded dataset.

    Args:
        config: resolved configuration (see :func:`gzsl.experiments.config.resolve`).
        data: the dataset (features not yet preprocessed).
        log: where progress lines go (the CLI passes a rich console printer).
        root: the data folder, recorded in the run's metadata.
        tracker: called with each checkpoint's row (TensorBoard, for instance).
        run_dir: where ``checkpoints.csv`` and the resume state are written (atomically)
            at checkpoints; the caller holds its lock.
        save_every: write the resume state at every so many checkpoints (and whenever
            training stops); 0 never writes it.
        resume: a loaded resume state (see :mod:`gzsl.experiments.resume`).
    """

    def __init__(self, config: ExperimentConfig, data: GZSLData,
                 log: Log | None = None, root: str | Path | None = None,
                 tracker: Tracker | None = None, *, run_dir: RunDir | None = None,
                 save_every: int = 1, resume: dict[str, Any] | None = None) -> None:
        if save_every < 0:
            raise GZSLError(f"save_every must be >= 0, got {save_every}")
        self.config = config
        self.run_dir = run_dir
        self.save_every = save_every
        self.resume = resume
        self.protocol: SelectionProtocol = make_protocol(config.selection)
        if resume is not None:
            self.protocol.load_state_dict(resume["progress"])
        self.seconds_before = 0.0 if resume is None else float(resume["seconds"])
        self._checkpoints = 0
        self._training = False
        self._note: progress.LongRunNote | None = None
        self._note_due = False
        self._started = time.perf_counter()
        self.tracker = tracker
        self.data = data
        self.root = None if root is None else str(Path(root).resolve())
        self.log: Log = log or (lambda message: None)
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
        if config.selection == "val" and not data.has_validation:
            data.task("validation")  # its error names the fix; raised before any file is made
        self.phases: list[Phase] = []
        self.preprocessor = Preprocessor(config.data.preprocessing, config.data.l2)

    # ------------------------------------------------------------ for protocols

    def prepare(self, name: str) -> TaskTensors:
        """The task ``name``, preprocessed (fitted on its training features), on the device."""
        task = self.preprocessor.transform_task(self.data.task(name))
        return TaskTensors.from_task(task, self.device)

    def new_model(self) -> Generator:
        return self.method_cls(self.config.method_config)

    def phase(self, name: str, task: TaskTensors, model: Generator) -> Phase:
        """A new phase with its own random generator, seeded from the run's seed."""
        phase = Phase(name, task, model, make_generator(self.config.seed, self.device))
        self.phases.append(phase)
        return phase

    def n_synthetic_grid(self) -> list[int]:
        return n_synthetic_grid(self.config.evaluation)

    def evaluate(self, phase: Phase, n_synthetic: int, **keep: Any) -> Evaluation:
        """Score ``phase.model`` on ``phase.task`` (see :func:`evaluate_generator`)."""
        reporter = progress.active()
        if reporter is not None and not reporter.training:
            reporter.evaluation(n_synthetic)
        elif reporter is None and show_progress(None) and not self._training:
            self.log(f"{progress.PHASE_NAMES.get(phase.name, phase.name)}: evaluation, final "
                     f"classifier on {n_synthetic} synthetic features per unseen class")
        return evaluate_generator(
            phase.model, phase.task, n_synthetic=n_synthetic,
            settings=self.classifier_settings, rng=phase.rng, gammas=self.gammas,
            classifier=self.config.evaluation.classifier,
            zsl=self.config.evaluation.zsl_classifier,
            seen_features=self.config.evaluation.seen_features, **keep)

    def record(self, phase: Phase, checkpoint: Checkpoint,
               evaluation: Evaluation | None) -> None:
        """Add a checkpoint's row (losses, and scores when it was evaluated)."""
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
        reporter = progress.active()
        if reporter is not None:
            reporter.checkpoint(row)
        if self.tracker is not None:
            self.tracker(row)

    def train(self, phase: Phase, on_checkpoint: Callable[[Checkpoint], bool | None], *,
              fraction: float = 1.0, at: frozenset[int] = frozenset(),
              score_at_after: bool = True, scores: bool = True) -> None:
        """Train ``phase.model``, or continue it from the resume state.

        Checkpoints come every ``checkpoint_every`` iterations, at the iterations in ``at``
        and at the end; before the preset's share of training (``checkpoint_after``, scaled
        by ``fraction``; with ``score_at_after`` False also at it) they only record losses
        and save progress, and the last one is always passed to ``on_checkpoint``
        (``scores``: whether it evaluates the model there, for the progress bar's ETA).
        The mean losses of each window of ``evaluation.loss_every`` steps are kept in
        ``phase.loss_rows``.
        """
        evaluation = self.config.evaluation
        total = phase.model.total_iterations(len(phase.task.train_labels))
        after = min(int(evaluation.checkpoint_after * fraction), total)
        finished, resume = self._resume_phase(phase)
        if finished:
            return

        def early(iteration: int) -> bool:
            return iteration < after or (not score_at_after and iteration == after)

        def callback(checkpoint: Checkpoint) -> bool:
            last = checkpoint.iteration >= phase.model.total_iterations(
                len(phase.task.train_labels))
            if early(checkpoint.iteration) and checkpoint.iteration not in at and not last:
                self.record(phase, checkpoint, None)
                stop = False
            else:
                stop = bool(on_checkpoint(checkpoint))
            self._save(phase, checkpoint, stop)
            return stop

        def on_losses(iteration: int, steps: int, means: dict[str, float]) -> None:
            phase.loss_rows.append({"phase": phase.name, "iteration": iteration,
                                    "steps": steps,
                                    **{f"loss_{k}": v for k, v in means.items()}})
            reporter = progress.active()
            if reporter is not None:
                reporter.window(means)

        schedule = CheckpointSchedule(
            every=evaluation.checkpoint_every, callback=callback, at=at,
            losses_every=loss_window(evaluation.loss_every, total), on_losses=on_losses,
            label=progress.PHASE_NAMES.get(phase.name, phase.name),
            scored_from=(after if score_at_after else after + 1) if scores else None)
        resuming = {} if resume is None else {"resume": resume}  # methods that cannot resume
        if self._note_due:  # the run's first training: all of the run's iterations
            self._note_due = False
            planned = total + (phase.model.total_iterations(len(self.data.splits["trainval"]))
                               if phase.name == "validation" else 0)
            self._note = progress.LongRunNote(
                planned, self.log, small=Path(self.config.preset or "").name == "small.toml",
                upper=phase.name == "validation")  # the final task stops at the choice
        watchers = () if self._note is None else (self._note.step,)
        self._training = True
        try:
            with progress.training(phase.name, total, resume, schedule,
                                   watchers) as schedule:
                phase.model.fit(phase.task.seen_data(), rng=phase.rng, schedule=schedule,
                                **resuming)
        finally:
            self._training = False

    # ------------------------------------------------------------------ running

    def run(self) -> tuple[RunResult, Generator, Evaluation]:
        """Run the configured selection protocol; returns the result, generator, evaluation.

        A new run on the CPU says, after its first steps, how long its training will take
        when that is long (:class:`~gzsl.experiments.progress.LongRunNote`)."""
        self._note_due = self.resume is None and self.device.type == "cpu"
        with deterministic_algorithms():
            selected = self.protocol.run(self)
        evaluation = selected.evaluation
        kept = evaluation.kept
        assert kept is not None
        result = RunResult(
            method=self.config.method, dataset=self.data.name, selection=self.config.selection,
            seed=self.config.seed, U=round(100 * kept.U, 4), S=round(100 * kept.S, 4),
            H=round(100 * kept.H, 4), T1=round(100 * selected.T1, 4),
            synthetic_data=self.data.synthetic, chosen=selected.chosen,
            seen_features=self.config.evaluation.seen_features,
            per_class={"seen": evaluation.per_class_seen, "unseen": evaluation.per_class_unseen},
            published=self.config.published, preprocessing=self.preprocessor.describe(),
            device=str(self.device), seconds=round(self._seconds(), 2))
        return result, selected.model, evaluation

    def _seconds(self) -> float:
        """Time spent on this run, including before an interruption it was resumed from."""
        return self.seconds_before + time.perf_counter() - self._started

    def _resume_phase(self, phase: Phase) -> tuple[bool, dict[str, Any] | None]:
        """Restore ``phase`` from the resume state: its rows, and where training stood.

        Returns whether the phase's training is already over, and the method's training
        state to continue from (``None``: train from the start).
        """
        saved = {} if self.resume is None else {p["name"]: p for p in self.resume["phases"]}
        if phase.name not in saved:
            return False, None
        phase.rows, phase.epoch_rows = saved[phase.name]["rows"], saved[phase.name]["epoch_rows"]
        phase.loss_rows = list(saved[phase.name].get("loss_rows", []))  # older states: none
        if phase.name != self.resume["phases"][-1]["name"]:
            return True, None
        phase.rng.set_state(self.resume["rng"])
        training = self.resume["training"]
        self.log(f"resuming the {phase.name} task after iteration "
                 f"{training['loop']['iteration']}")
        if self.resume["stopped"]:
            phase.model.load_state_dict(training["model"], device=self.device)
            return True, None
        return False, training

    def _save(self, phase: Phase, checkpoint: Checkpoint, stopped: bool) -> None:
        """Write ``checkpoints.csv``, ``losses.csv`` and, when due, the resume state, all
        atomically."""
        if self.run_dir is None:
            return
        self.run_dir.write_csv(CHECKPOINTS, [row for p in self.phases for row in p.rows])
        self._write_losses()
        self._checkpoints += 1
        if (self.save_every == 0 or checkpoint.snapshot is None
                or (self._checkpoints % self.save_every and not stopped)):
            return
        self.run_dir.write_torch(RESUME, {
            "format": RESUME_FORMAT, "config": self.config.to_dict(),
            "device": str(self.device), "seconds": self._seconds(), "stopped": stopped,
            "rng": phase.rng.get_state(),
            "training": checkpoint.training_state(), "progress": self.protocol.state_dict(),
            "phases": [{"name": p.name, "rows": p.rows, "epoch_rows": p.epoch_rows,
                        "loss_rows": p.loss_rows} for p in self.phases],
        })

    def _write_losses(self) -> None:
        """``losses.csv``: every phase's loss windows so far (rewritten whole: a resumed
        run continues it from the resume state's rows, without duplicates)."""
        rows = [row for phase in self.phases for row in phase.loss_rows]
        if self.run_dir is not None and rows:
            self.run_dir.write_csv(LOSSES, rows)

    # ------------------------------------------------------------------ writing

    def metadata(self, started: str, finished: str | None = None,
                 seconds: float | None = None) -> dict[str, Any]:
        """``metadata.json``: environment, seed, device, data provenance, times, and how
        the run was asked for (command line, preset name, settings changed from it)."""
        config = self.config
        return {
            **provenance(config),
            "environment": environment(), "seed": config.seed, "device": str(self.device),
            "selection": config.selection, "root": self.root, "data": self.data.source,
            "data_summary": self.data.summary(), "synthetic_data": self.data.synthetic,
            "preprocessing": self.preprocessor.describe(), "seconds": seconds,
            "started": started, "finished": finished,
        }

    def write_start(self) -> None:
        """``config.json`` and ``metadata.json`` as a run starts: all a resume needs."""
        assert self.run_dir is not None
        self.run_dir.write_json(CONFIG, self.config.to_dict())
        self.run_dir.write_json(METADATA, self.metadata(started=now()))

    def write_finish(self, result: RunResult, model: Generator,
                     evaluation: Evaluation) -> None:
        """Write metadata, curves, predictions, generator, classifier and, last, results.

        ``results.json`` comes last and the resume state is then removed: a run directory
        with ``results.json`` and without ``resume.pt`` is complete.
        """
        run_dir = self.run_dir
        assert run_dir is not None
        before = run_dir.metadata()
        metadata = self.metadata(before.get("started") or now(), now(), seconds=result.seconds)
        if before.get("command") and before["command"] != metadata["command"]:
            metadata["command"], metadata["resumed_with"] = before["command"], metadata["command"]
        run_dir.write_json(CONFIG, self.config.to_dict())
        run_dir.write_json(METADATA, metadata)
        checkpoints = [row for phase in self.phases for row in phase.rows]
        epochs = [row for phase in self.phases for row in phase.epoch_rows]
        if checkpoints:
            run_dir.write_csv(CHECKPOINTS, checkpoints)
        if epochs:
            run_dir.write_csv(CLASSIFIER_EPOCHS, epochs)
        self._write_losses()
        run_dir.save_generator(model)
        final_task = self.phases[-1].task
        run_dir.write_predictions(
            test_seen_labels=final_task.test_seen_labels,
            test_seen_predictions=evaluation.predictions["test_seen"],
            test_unseen_labels=final_task.test_unseen_labels,
            test_unseen_predictions=evaluation.predictions["test_unseen"],
            seen_classes=final_task.seen_classes, unseen_classes=final_task.unseen_classes)
        run_dir.write_classifier(evaluation.classifier_state, self.preprocessor,
                                 self.data.class_names, self.data.semantics)
        result.run_dir = str(run_dir.path)
        run_dir.write_json(RESULTS, result.to_dict())
        run_dir.remove(RESUME)


def loss_window(loss_every: int, total: int) -> int:
    """Steps per loss window: ``loss_every``, or with 0 about :data:`LOSS_POINTS` windows
    over ``total`` iterations."""
    return loss_every if loss_every > 0 else max(1, round(total / LOSS_POINTS))


def n_synthetic_grid(evaluation: EvaluationConfig) -> list[int]:
    """The synthetic counts per class ``val`` scores at each validation checkpoint (one
    checkpoint row each)."""
    return sorted({max(1, round(m * evaluation.n_synthetic))
                   for m in evaluation.n_synthetic_grid})


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def provenance(config: ExperimentConfig) -> dict[str, Any]:
    """The command line of this process, the preset's name and the settings that differ
    from the preset's (``--set`` overrides and keyword settings, in ``--set`` spelling)."""
    from gzsl.experiments.config import overrides_from_preset, preset_name

    argv = list(sys.argv)
    if argv and Path(argv[0]).name == "gzsl":
        argv[0] = "gzsl"
    return {"command": shlex.join(argv), "preset": preset_name(config.preset),
            "overrides": overrides_from_preset(config.to_dict())}


def environment() -> dict[str, Any]:
    """Versions of the package and the libraries that shape results."""
    import platform

    import numpy
    import scipy
    import sklearn

    import gzsl
    from gzsl.threads import applied

    chosen = applied()
    return {"gzsl": gzsl.__version__, "python": platform.python_version(),
            "torch": torch.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__, "platform": platform.platform(),
            "threads": torch.get_num_threads(),
            "threads_chosen_by": chosen.reason if chosen is not None else "PyTorch's default",
            "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def load_data(config: ExperimentConfig, root: str | Path | None) -> GZSLData:
    """The dataset ``config`` names, from ``root`` (``demo`` needs none)."""
    from gzsl.data.loaders import load_dataset

    return load_dataset(config.dataset, root, layout=config.data.layout,
                        semantics=config.data.semantics)


def run_experiment(config: ExperimentConfig, *, root: str | Path | None = None,
                   out: str | Path | None = None, data: GZSLData | None = None,
                   log: Log | None = None, tracker: Tracker | None = None,
                   save_every: int = 1, overwrite: bool = False) -> RunResult:
    """Load the data (unless given), run ``config`` and write the run directory to ``out``.

    With ``out``, the run holds the folder's lock while it runs and saves its progress
    there at checkpoints (every ``save_every``-th; 0: never) so that
    :func:`gzsl.experiments.resume.resume_run` can continue it after an interruption.
    A finished run, an interrupted one or a folder that is not a run is not written over
    unless ``overwrite``.
    """
    return execute(config, root=root, out=out, data=data, log=log, tracker=tracker,
                   save_every=save_every, overwrite=overwrite)[0]


def is_out_of_core(dataset: str) -> bool:
    """Whether ``dataset`` names an ImageNet-21K split, read from a feature store and run
    out of core (:mod:`gzsl.experiments.streamed`) instead of in memory."""
    from gzsl.data.imagenet import split_of

    return split_of(dataset) is not None


def execute(config: ExperimentConfig, *, root: str | Path | None = None,
            out: str | Path | None = None, data: GZSLData | None = None,
            log: Log | None = None, tracker: Tracker | None = None, save_every: int = 1,
            overwrite: bool = False
            ) -> tuple[RunResult, Experiment | None, Generator, Evaluation]:
    """:func:`run_experiment`, also returning the experiment, generator and evaluation.

    An ImageNet-21K split (:func:`is_out_of_core`) runs through
    :func:`gzsl.experiments.streamed.run_large` instead; it has no :class:`Experiment`
    (None), saves no resume state and feeds no tracker.
    """
    if data is None and is_out_of_core(config.dataset):
        return _execute_out_of_core(config, root=root, out=out, log=log, tracker=tracker,
                                    overwrite=overwrite)
    if out is None:
        return _finish(Experiment(config, data if data is not None else load_data(config, root),
                                  log, root=root, tracker=tracker, save_every=save_every))
    run_dir = RunDir(out)
    run_dir.check(overwrite=overwrite)  # refuse before loading any data
    if data is None:
        data = load_data(config, root)
    experiment = Experiment(config, data, log, root=root, tracker=tracker,
                            save_every=save_every)  # refuses bad combinations: nothing written
    with run_dir.claim(overwrite=overwrite):
        experiment.run_dir = run_dir
        experiment.write_start()
        return _finish(experiment)


def _execute_out_of_core(config: ExperimentConfig, *, root: str | Path | None,
                         out: str | Path | None, log: Log | None, tracker: Tracker | None,
                         overwrite: bool
                         ) -> tuple[RunResult, None, Generator, Evaluation]:
    """Every refusal first (settings, trackers, the run folder), then the store is opened
    and the run streamed."""
    from gzsl.data.imagenet import load_large_task
    from gzsl.experiments.streamed import check_large_config, run_large

    check_large_config(config)
    if tracker is not None:
        raise GZSLError(f"{config.dataset} runs out of core, which feeds no tracker yet: "
                        f"drop --tensorboard / --mlflow (checkpoints.csv and results.json "
                        f"are written as usual)")
    if out is not None:
        RunDir(out).check(overwrite=overwrite)
    task = load_large_task(config.dataset, root)
    result, model, evaluation = run_large(config, task, out=out, log=log, root=root,
                                          overwrite=overwrite)
    return result, None, model, evaluation


def _finish(experiment: Experiment) -> tuple[RunResult, Experiment, Generator, Evaluation]:
    """Run ``experiment`` and write its results (when it has a run directory)."""
    result, model, evaluation = experiment.run()
    if experiment.run_dir is not None:
        experiment.write_finish(result, model, evaluation)
    return result, experiment, model, evaluation


def default_run_dir(config: ExperimentConfig, base: str | Path = "runs") -> Path:
    """``runs/<method>-<dataset>-<selection>-seed<N>-<timestamp>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{config.method}-{config.dataset.lower()}-{config.selection}-seed{config.seed}-{stamp}"
    return Path(base) / name
