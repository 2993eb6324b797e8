"""The selection protocols: what is trained, what is scored on which data, what is kept.

Each protocol is a small object whose state is data (``state_dict`` / ``load_state_dict``:
plain values saved in the resume state), driven by an :class:`~gzsl.experiments.runner.
Experiment` that owns the training, the scoring and the run directory:

* :class:`ValSelection` (``val``, the honest default): the generator is trained on the
  *validation task* (xlsa17 train classes as seen, val classes as unseen, trainval images
  only); the generator checkpoint, the number of synthetic features per class, the
  classifier's epochs and, if enabled, the calibrated-stacking constant are chosen by
  validation H. One run on the final task with those choices fixed is then scored on the
  test set once.
* :class:`FinalSelection` (``final``): the preset's fixed budget, last checkpoint, last
  classifier epoch.
* :class:`TestOracleSelection` (``test-oracle``): the papers' protocol, kept only to compare
  with published tables: every checkpoint strictly after ``checkpoint_after`` (and the
  last) is scored on the test set, and the best H kept, as the reference code does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from gzsl.evaluation.protocol import Evaluation
from gzsl.methods.base import Checkpoint, Generator, cpu_copy

if TYPE_CHECKING:
    from gzsl.experiments.runner import Experiment


@dataclass
class Selected:
    """What a protocol hands back: the kept generator and evaluation, its choices, T1."""

    model: Generator
    evaluation: Evaluation
    chosen: dict[str, Any]
    T1: float


class SelectionProtocol:
    """Base class: ``run`` drives the experiment; the state is the dataclass's fields."""

    name: ClassVar[str]
    #: Whether a checkpoint exactly at ``checkpoint_after`` is scored (the reference
    #: test-oracle code scores only those strictly after it).
    score_at_after: ClassVar[bool] = True

    def run(self, experiment: Experiment) -> Selected:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """The protocol's choices so far: plain values and CPU tensors (resume state)."""
        return cpu_copy({name: getattr(self, name) for name in self.__dataclass_fields__})

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self.__dataclass_fields__:
            if name in state:
                setattr(self, name, state[name])


@dataclass
class ValSelection(SelectionProtocol):
    """``val``: every choice on the validation task; the final task trained to it.

    Attributes:
        best: the best validation score so far and where it was (H, epoch, iteration,
            n_synthetic, classifier_epochs, gamma, zsl_epochs).
        stopped: where the final task's training stopped (iteration, epoch).
    """

    name: ClassVar[str] = "val"
    best: dict[str, Any] = field(default_factory=dict)
    stopped: dict[str, Any] = field(default_factory=dict)

    def run(self, experiment: Experiment) -> Selected:
        validation = experiment.prepare("validation")
        final = experiment.prepare("final")
        model = experiment.new_model()
        fraction = (model.total_iterations(len(validation.train_labels))
                    / max(1, model.total_iterations(len(final.train_labels))))
        n_grid = experiment.n_synthetic_grid()
        experiment.log(f"validation task: {len(validation.seen_classes)} seen / "
                       f"{len(validation.unseen_classes)} unseen classes, choosing over "
                       f"n_synthetic in {n_grid}")
        phase = experiment.phase("validation", validation, model)

        def on_checkpoint(checkpoint: Checkpoint) -> None:
            evaluations = [experiment.evaluate(phase, n) for n in n_grid]
            for evaluation in evaluations:
                experiment.record(phase, checkpoint, evaluation)
                self._consider(checkpoint, evaluation)
            experiment.log(f"  validation checkpoint {checkpoint.iteration}: best val H so "
                           f"far {100 * self.best['H']:.2f}")

        experiment.train(phase, on_checkpoint, fraction=fraction,
                         score_at_after=self.score_at_after)
        best = self.best
        by_iteration = experiment.config.evaluation.transfer == "iteration"
        experiment.log(f"chosen on validation: generator epoch {best['epoch']:.2f} (iteration "
                       f"{best['iteration']}), {best['n_synthetic']} synthetic per class, "
                       f"{best['classifier_epochs']} classifier epochs, gamma "
                       f"{best['gamma']}; training on the final task to the same "
                       f"{'iteration' if by_iteration else 'epoch'}")
        final_model = experiment.new_model()
        final_phase = experiment.phase("final", final, final_model)

        def stop_at_chosen(checkpoint: Checkpoint) -> bool:
            experiment.record(final_phase, checkpoint, None)
            self.stopped.update(iteration=checkpoint.iteration, epoch=checkpoint.epoch)
            if by_iteration:
                return checkpoint.iteration >= best["iteration"]
            return checkpoint.epoch >= best["epoch"] - 1e-9

        experiment.train(final_phase, stop_at_chosen,
                         at=frozenset({best["iteration"]}) if by_iteration else frozenset(),
                         score_at_after=self.score_at_after, scores=False)
        evaluation = experiment.evaluate(
            final_phase, best["n_synthetic"], keep="last",
            keep_epoch=best["classifier_epochs"], keep_gamma=best["gamma"],
            keep_zsl_epoch=best["zsl_epochs"])
        chosen = {"validation_H": round(100 * best["H"], 4),
                  "generator_epoch": round(best["epoch"], 4),
                  "generator_iteration": best["iteration"],
                  "final_iteration": self.stopped.get("iteration"),
                  "n_synthetic": best["n_synthetic"],
                  "classifier_epochs": best["classifier_epochs"], "gamma": best["gamma"],
                  "zsl_classifier_epochs": best["zsl_epochs"]}
        return Selected(final_model, evaluation, chosen, evaluation.T1)

    def _consider(self, checkpoint: Checkpoint, evaluation: Evaluation) -> None:
        top = evaluation.best()
        if not self.best or top.H > self.best["H"]:
            self.best.update(H=top.H, epoch=checkpoint.epoch, iteration=checkpoint.iteration,
                             n_synthetic=evaluation.n_synthetic, classifier_epochs=top.epoch,
                             gamma=top.gamma, zsl_epochs=evaluation.zsl_epoch)


@dataclass
class FinalSelection(SelectionProtocol):
    """``final``: the fixed budget; the last checkpoint and classifier epoch.

    Attributes:
        last: the last checkpoint seen (iteration, epoch).
    """

    name: ClassVar[str] = "final"
    last: dict[str, Any] = field(default_factory=dict)

    def run(self, experiment: Experiment) -> Selected:
        final = experiment.prepare("final")
        model = experiment.new_model()
        phase = experiment.phase("final", final, model)

        def log_only(checkpoint: Checkpoint) -> None:
            experiment.record(phase, checkpoint, None)
            self.last.update(iteration=checkpoint.iteration, epoch=checkpoint.epoch)

        experiment.train(phase, log_only, score_at_after=self.score_at_after, scores=False)
        n = experiment.config.evaluation.n_synthetic
        evaluation = experiment.evaluate(phase, n, keep="last")
        chosen = {"generator_epoch": round(self.last.get("epoch", 0.0), 4),
                  "final_iteration": self.last.get("iteration"), "n_synthetic": n,
                  "classifier_epochs": experiment.classifier_settings.epochs, "gamma": 0.0}
        return Selected(model, evaluation, chosen, evaluation.T1)


@dataclass
class TestOracleSelection(SelectionProtocol):
    """``test-oracle``: the best test H over checkpoints and classifier epochs (papers).

    Attributes:
        best: the best test score so far, its evaluation and the generator's state there;
            ``T1`` is the best test T1 over every scored checkpoint and epoch.
    """

    name: ClassVar[str] = "test-oracle"
    score_at_after: ClassVar[bool] = False
    best: dict[str, Any] = field(default_factory=lambda: {"T1": 0.0})

    def run(self, experiment: Experiment) -> Selected:
        final = experiment.prepare("final")
        model = experiment.new_model()
        phase = experiment.phase("final", final, model)
        n = experiment.config.evaluation.n_synthetic
        best = self.best

        def on_checkpoint(checkpoint: Checkpoint) -> None:
            evaluation = experiment.evaluate(phase, n, keep="best")
            experiment.record(phase, checkpoint, evaluation)
            top = evaluation.best()
            best["T1"] = max(best["T1"], max(evaluation.zsl, default=0.0))
            if "H" not in best or top.H > best["H"]:
                best.update(H=top.H, evaluation=evaluation.to_dict(),
                            iteration=checkpoint.iteration, epoch=checkpoint.epoch,
                            state=cpu_copy(model.state_dict()))
            experiment.log(f"  checkpoint {checkpoint.iteration}: test H {100 * top.H:.2f} "
                           f"(best {100 * best['H']:.2f}) [test-oracle]")

        experiment.train(phase, on_checkpoint, score_at_after=self.score_at_after)
        model.load_state_dict(best["state"], device=experiment.device)
        evaluation = Evaluation.from_dict(best["evaluation"])
        kept = evaluation.kept
        assert kept is not None
        chosen = {"generator_epoch": round(best["epoch"], 4),
                  "final_iteration": best["iteration"], "n_synthetic": n,
                  "classifier_epochs": kept.epoch, "gamma": kept.gamma,
                  "note": "chosen on the TEST set (test-oracle); T1 is the best test T1 "
                          "over checkpoints and epochs, as in the papers"}
        return Selected(model, evaluation, chosen, best["T1"])


PROTOCOLS: dict[str, type[SelectionProtocol]] = {
    protocol.name: protocol for protocol in (ValSelection, FinalSelection, TestOracleSelection)}


def make_protocol(name: str) -> SelectionProtocol:
    """A fresh protocol object for a selection name (``val``, ``final``, ``test-oracle``)."""
    from gzsl.data.errors import check_choice

    check_choice("selection", name, PROTOCOLS)
    return PROTOCOLS[name]()
