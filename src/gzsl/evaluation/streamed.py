"""The final classifier and its evaluation with bounded memory, for ImageNet-21K scale.

VAE-cFlow's large-scale protocol (Sec. 4.2) trains the softmax classifier on 50 real
features per seen class and 600 synthetic features per unseen class: 12.2 million 2048-d
rows for all 20,345 unseen classes, about 100 GB in float32. Here nothing of that size is
ever held:

* seen rows are read from their :class:`~gzsl.data.sources.FeatureSource` batch by batch
  (:class:`~gzsl.methods.rows.DeviceRows`);
* synthetic rows come in fixed *blocks* of whole unseen classes (at most ``block_rows``
  rows); a block is synthesised on the device when a pass over the data reaches it and
  dropped after, and synthesised again, identically, at the next epoch from the seed it
  drew once (:class:`SyntheticBlocks`);
* the test features are scored ``eval_rows`` at a time into per-class hit and sample
  counts (:func:`gzsl.evaluation.metrics.class_hits`).

Order of the random draws, all from the one ``rng``: the seen rows kept (one
``randperm`` of the training rows, when ``seen_per_class`` is set), the synthetic set (one
``model.sample`` call when it is one block, else one seed per block), the classifier's
initial weights, and per epoch the order of the rows. With one block the rows of an epoch
are one random permutation of [seen rows, synthetic rows], exactly as
:func:`gzsl.evaluation.protocol.evaluate_generator` does it, so on data small enough for
one block the two give the same classifier bit for bit (a test pins it). With several
blocks an epoch visits the blocks in a random order, each with an equal share of the
(permuted) seen rows, and shuffles rows within that chunk only: a block-wise shuffle, the
price of not regenerating single rows. ``materialise`` keeps every block after it is
first made (the in-memory mode: same draws, same numbers, memory grows with the classes).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gzsl.data.errors import DataError, GZSLError
from gzsl.data.sources import FeatureSource
from gzsl.evaluation.classifier import Batch, SoftmaxClassifier, SoftmaxSettings
from gzsl.evaluation.metrics import (
    accuracy_from_counts,
    class_hits,
    harmonic_mean,
    mean_over_classes,
    restricted_predictions,
)
from gzsl.evaluation.protocol import EpochScore, Evaluation, _named, _stacked_predictions
from gzsl.methods.base import Generator
from gzsl.methods.rows import DeviceRows, RowTransform

#: Called with a progress line now and then during long phases.
Say = Callable[[str], None]


@dataclass(frozen=True)
class StreamSettings:
    """How the streamed classifier reads, synthesises and scores.

    Attributes:
        seen_per_class: real features per seen class the classifier trains on (the
            paper's 50, drawn at random); None: every training row, in file order.
        block_rows: most synthetic rows held at once (whole classes per block; a class
            with more synthetic rows than this is a block of its own).
        eval_rows: test rows scored at once (bounds the ``(rows, classes)`` scores).
        materialise: keep each synthetic block once made (in-memory mode; same numbers).
        score_every_epoch: score the test sets after every classifier epoch, not only
            the last (costly at scale; the in-memory protocol scores every epoch).
        keep_predictions: return every test row's predicted class.
        progress_seconds: least time between progress lines.
    """

    seen_per_class: int | None = 50
    block_rows: int = 65536
    eval_rows: int = 1024
    materialise: bool = False
    score_every_epoch: bool = False
    keep_predictions: bool = True
    progress_seconds: float = 60.0

    def __post_init__(self) -> None:
        for name in ("block_rows", "eval_rows"):
            if getattr(self, name) < 1:
                raise GZSLError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.seen_per_class is not None and self.seen_per_class < 1:
            raise GZSLError(f"seen_per_class must be >= 1 or none, got {self.seen_per_class}")


class SyntheticBlocks:
    """``n_per_class`` synthetic features for each of ``classes``, in regenerable blocks.

    Classes go into blocks in the order given, ``max(1, block_rows // n_per_class)`` per
    block. One block is drawn from ``rng`` at once and kept; several draw one seed each
    from ``rng`` now and are synthesised from a generator seeded with it whenever asked
    for, so every epoch sees the same features.
    """

    def __init__(self, model: Generator, semantics: Tensor, classes: Tensor,
                 n_per_class: int, *, block_rows: int, rng: torch.Generator,
                 materialise: bool = False) -> None:
        self.model, self.semantics, self.n_per_class = model, semantics, n_per_class
        per_block = max(1, block_rows // n_per_class)
        self.groups = [classes[i:i + per_block] for i in range(0, len(classes), per_block)]
        self.materialise = materialise
        self.synthesised_rows = 0
        self._kept: dict[int, Tensor] = {}
        self._seeds: list[int] = []
        if len(self.groups) == 1:
            self._kept[0] = self._synthesise(0, rng)
        else:
            self._seeds = torch.randint(0, 2**62, (len(self.groups),), generator=rng,
                                        device=rng.device).tolist()

    def __len__(self) -> int:
        return len(self.groups)

    @property
    def rows(self) -> int:
        return sum(len(group) for group in self.groups) * self.n_per_class

    def labels(self, block: int) -> Tensor:
        """Global class id of each row of ``block`` (class-major)."""
        return self.groups[block].repeat_interleave(self.n_per_class)

    def features(self, block: int) -> Tensor:
        """The ``block``'s features, synthesised now unless kept."""
        if block in self._kept:
            return self._kept[block]
        generator = torch.Generator(device=self.model.device).manual_seed(self._seeds[block])
        features = self._synthesise(block, generator)
        if self.materialise:
            self._kept[block] = features
        return features

    def _synthesise(self, block: int, rng: torch.Generator) -> Tensor:
        group = self.groups[block]
        self.synthesised_rows += len(group) * self.n_per_class
        return self.model.sample(self.semantics[group], self.n_per_class, rng=rng)


def sample_per_class(labels: np.ndarray, per_class: int | None,
                     rng: torch.Generator) -> np.ndarray:
    """Row numbers of up to ``per_class`` random rows of each class, class by class
    (ascending ids), from one ``randperm`` of all rows; None: every row, in order."""
    if per_class is None:
        return np.arange(len(labels))
    order = torch.randperm(len(labels), generator=rng, device=rng.device).cpu().numpy()
    by_class = order[np.argsort(labels[order], kind="stable")]
    sorted_labels = labels[by_class]
    starts = np.searchsorted(sorted_labels, sorted_labels, side="left")
    rank = np.arange(len(by_class)) - starts
    return by_class[rank < per_class]


class TrainingStream:
    """The epochs of rows a final classifier trains on: real rows plus synthetic blocks.

    Args:
        seen: the real rows (preprocessed on reading), or None (synthetic rows only).
        seen_rows: which rows of ``seen`` take part, in their order.
        seen_labels: global class id of every row of ``seen``'s source.
        blocks: the synthetic rows.
        classifier: for the target columns.
        batch_size: rows per optimiser step.
        rng: draws each epoch's order.
    """

    def __init__(self, seen: DeviceRows | None, seen_rows: np.ndarray,
                 seen_labels: np.ndarray, blocks: SyntheticBlocks, classifier: SoftmaxClassifier,
                 batch_size: int, rng: torch.Generator, device: torch.device,
                 say: Say | None = None, progress_seconds: float = 60.0,
                 total_epochs: int = 1) -> None:
        self.seen, self.blocks, self.classifier = seen, blocks, classifier
        self.seen_rows = seen_rows if seen is not None else np.zeros(0, dtype=np.int64)
        self.seen_labels = seen_labels
        self.batch_size, self.rng, self.device = batch_size, rng, device
        self.total_epochs = total_epochs
        self.lines = _Lines(say, progress_seconds)
        self.rows_trained = 0

    @property
    def rows_per_epoch(self) -> int:
        return len(self.seen_rows) + self.blocks.rows

    def __call__(self, epoch: int) -> Iterator[Batch]:
        n_seen, n_blocks = len(self.seen_rows), len(self.blocks)
        if n_blocks == 1:
            chunks = [(self.seen_rows, 0)]
        else:
            block_order = torch.randperm(n_blocks, generator=self.rng,
                                         device=self.rng.device).tolist()
            seen_order = torch.randperm(n_seen, generator=self.rng,
                                        device=self.rng.device).cpu().numpy()
            bounds = [n_seen * k // n_blocks for k in range(n_blocks + 1)]
            chunks = [(self.seen_rows[seen_order[bounds[k]:bounds[k + 1]]], block)
                      for k, block in enumerate(block_order)]
        for rows, block in chunks:
            yield from self._chunk(rows, block, epoch)

    def _chunk(self, rows: np.ndarray, block: int, epoch: int) -> Iterator[Batch]:
        """Batches of one random order of [real ``rows``, synthetic ``block``]."""
        synthetic = self.blocks.features(block).to(self.device)
        synthetic_targets = self.classifier.targets(self.blocks.labels(block).to(self.device))
        seen_targets = self.classifier.targets(torch.as_tensor(
            self.seen_labels[rows], dtype=torch.long, device=self.device))
        n_seen, n = len(rows), len(rows) + len(synthetic)
        order = torch.randperm(n, generator=self.rng, device=self.rng.device).to(self.device)
        for start in range(0, n, self.batch_size):
            index = order[start:start + self.batch_size]
            real = index < n_seen
            features = torch.empty(len(index), synthetic.shape[1], device=self.device)
            targets = torch.empty(len(index), dtype=torch.long, device=self.device)
            if bool(real.any()):
                assert self.seen is not None
                picked = index[real]
                features[real] = self.seen[rows[picked.cpu().numpy()]]
                targets[real] = seen_targets[picked]
            fake = ~real
            features[fake] = synthetic[index[fake] - n_seen]
            targets[fake] = synthetic_targets[index[fake] - n_seen]
            self.rows_trained += len(index)
            self._report(epoch)
            yield features, targets, None

    def _report(self, epoch: int) -> None:
        def line() -> str:
            done = self.rows_trained / max(1, self.rows_per_epoch * self.total_epochs)
            return (f"classifier: epoch {epoch}/{self.total_epochs}, {self.rows_trained:,} "
                    f"rows trained ({100 * done:.0f}%)")

        self.lines.maybe(line)


class _Lines:
    """Writes a progress line through ``say`` when ``seconds`` have passed since the last."""

    def __init__(self, say: Say | None, seconds: float) -> None:
        self.say, self.seconds, self.last = say, seconds, time.monotonic()

    def maybe(self, line: Callable[[], str]) -> None:
        if self.say is not None and time.monotonic() - self.last >= self.seconds:
            self.last = time.monotonic()
            self.say(line())


@dataclass
class _Counts:
    """Per-class hit and sample counts of one prediction rule on one test set."""

    hits: Tensor
    totals: Tensor

    def add(self, predictions: Tensor, labels: Tensor) -> None:
        hits, totals = class_hits(predictions, labels, len(self.hits))
        if len(hits) != len(self.hits):
            raise DataError(f"test labels hold class id {int(labels.max())}, beyond the "
                            f"{len(self.hits)} classes of the semantics")
        self.hits += hits
        self.totals += totals

    def accuracy(self, classes: Tensor) -> Tensor:
        return accuracy_from_counts(self.hits, self.totals, classes)


def _counts(n_classes: int, device: torch.device) -> _Counts:
    return _Counts(torch.zeros(n_classes, dtype=torch.float64, device=device),
                   torch.zeros(n_classes, dtype=torch.float64, device=device))


def _batches(source: DeviceRows, labels: np.ndarray, rows: int, device: torch.device,
             lines: _Lines, what: str) -> Iterator[tuple[Tensor, Tensor]]:
    """``(features, labels)`` of ``source`` in order, ``rows`` at a time."""
    for start in range(0, len(source), rows):
        stop = min(start + rows, len(source))
        lines.maybe(lambda done=start: f"classifier: scoring {what}, "
                                       f"{done:,}/{len(source):,} rows")
        yield source[slice(start, stop)], torch.as_tensor(labels[start:stop], device=device)


def evaluate_streamed(model: Generator, *, train: FeatureSource, train_labels: np.ndarray,
                      test_seen: FeatureSource, test_seen_labels: np.ndarray,
                      test_unseen: FeatureSource, test_unseen_labels: np.ndarray,
                      semantics: Tensor, seen_classes: Tensor, unseen_classes: Tensor,
                      class_names: tuple[str, ...], n_synthetic: int,
                      settings: SoftmaxSettings, rng: torch.Generator, device: torch.device,
                      transform: RowTransform | None = None, zsl: bool = True,
                      stream: StreamSettings | None = None,
                      say: Say | None = None) -> Evaluation:
    """The fixed-budget final evaluation of ``model`` with bounded memory.

    Trains the GZSL softmax classifier over all classes for ``settings.epochs`` epochs on
    the stream described in the module text, scores U, S and H at the last epoch (every
    epoch with ``score_every_epoch``), and T1 from a second classifier over the unseen
    classes trained on the same synthetic blocks (``zsl``, as the reference codes do) or
    from the GZSL classifier's unseen columns. Returns an :class:`Evaluation` as
    :func:`~gzsl.evaluation.protocol.evaluate_generator` with ``keep="last"`` does;
    epochs not scored hold NaN in ``zsl`` and have no entry in ``gzsl``.
    Labels are global class ids (rows of ``semantics``); ``transform`` preprocesses every
    row read (fitted on the training rows beforehand).
    """
    stream = stream or StreamSettings()
    say = say or (lambda line: None)
    semantics = semantics.to(device)
    seen_classes, unseen = seen_classes.to(device), unseen_classes.to(device)
    classes = torch.sort(torch.cat([seen_classes, unseen])).values
    epochs = settings.epochs

    seen_rows = sample_per_class(train_labels, stream.seen_per_class, rng)
    say(f"classifier: {len(seen_rows):,} real rows of {len(seen_classes):,} seen classes, "
        f"{n_synthetic} synthetic per class for {len(unseen):,} unseen classes")
    blocks = SyntheticBlocks(model, semantics, unseen, n_synthetic,
                             block_rows=stream.block_rows, rng=rng,
                             materialise=stream.materialise)
    seen = DeviceRows(train, device, transform)
    final = SoftmaxClassifier(classes, seen.shape[1], settings)
    train_stream = TrainingStream(seen, seen_rows, train_labels, blocks, final,
                                  settings.batch_size, rng, device, say,
                                  stream.progress_seconds, epochs)
    result = Evaluation(n_synthetic=n_synthetic)
    n_classes = len(semantics)
    seen_columns = torch.isin(classes, seen_classes)
    no_gamma = torch.zeros(1, device=device)
    tests = {"test_seen": (DeviceRows(test_seen, device, transform), test_seen_labels),
             "test_unseen": (DeviceRows(test_unseen, device, transform), test_unseen_labels)}
    kept: dict[str, _Counts] = {}
    lines = _Lines(say, stream.progress_seconds)

    def score(epoch: int, classifier: SoftmaxClassifier) -> None:
        if not (stream.score_every_epoch or epoch == epochs):
            if not zsl:
                result.zsl.append(math.nan)
            return
        say(f"classifier: scoring epoch {epoch}/{epochs}")
        counts = {part: _counts(n_classes, device) for part in tests}
        restricted = _counts(n_classes, device)
        predicted: dict[str, list[Tensor]] = {part: [] for part in tests}
        for part, (rows, labels) in tests.items():
            for features, batch_labels in _batches(rows, labels, stream.eval_rows, device,
                                                   lines, part):
                predictions = _stacked_predictions(classifier, features, no_gamma,
                                                   seen_columns)[0]
                counts[part].add(predictions, batch_labels)
                if stream.keep_predictions:
                    predicted[part].append(predictions.cpu())
                if part == "test_unseen" and not zsl:
                    restricted.add(restricted_predictions(
                        classifier.log_probabilities(features), unseen, classes), batch_labels)
        if not zsl:
            result.zsl.append(mean_over_classes(restricted.accuracy(unseen)))
        s = mean_over_classes(counts["test_seen"].accuracy(seen_classes))
        u = mean_over_classes(counts["test_unseen"].accuracy(unseen))
        entry = EpochScore(epoch, 0.0, u, s, harmonic_mean(u, s))
        result.gzsl.append(entry)
        if epoch == epochs:
            result.kept = entry
            result.classifier_state = classifier.state_dict()
            kept.update(counts)
            if stream.keep_predictions:
                result.predictions = {part: torch.cat(parts) if parts else
                                      torch.zeros(0, dtype=torch.long)
                                      for part, parts in predicted.items()}

    say(f"classifier: training {epochs} epochs of {train_stream.rows_per_epoch:,} rows over "
        f"{len(classes):,} classes")
    final.fit_batches(train_stream, rng=rng, device=device, on_epoch=score)
    result.per_class_seen = _named(kept["test_seen"].accuracy(seen_classes), seen_classes,
                                   class_names)
    result.per_class_unseen = _named(kept["test_unseen"].accuracy(unseen), unseen, class_names)

    if zsl:
        unseen_only = SoftmaxClassifier(unseen, seen.shape[1], settings)
        zsl_stream = TrainingStream(None, seen_rows, train_labels, blocks, unseen_only,
                                    settings.batch_size, rng, device, say,
                                    stream.progress_seconds, epochs)

        def score_zsl(epoch: int, classifier: SoftmaxClassifier) -> None:
            if not (stream.score_every_epoch or epoch == epochs):
                result.zsl.append(math.nan)
                return
            counts = _counts(n_classes, device)
            rows, labels = tests["test_unseen"]
            for features, batch_labels in _batches(rows, labels, stream.eval_rows, device,
                                                   lines, "test_unseen (ZSL)"):
                counts.add(classifier.predict(features), batch_labels)
            result.zsl.append(mean_over_classes(counts.accuracy(unseen)))

        say(f"classifier: training the unseen-only (ZSL) classifier, {epochs} epochs of "
            f"{zsl_stream.rows_per_epoch:,} rows")
        unseen_only.fit_batches(zsl_stream, rng=rng, device=device, on_epoch=score_zsl)
    result.zsl_epoch = len(result.zsl)
    return result

