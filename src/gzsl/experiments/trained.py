"""A finished run directory, loaded for use: classify new features, synthesise new ones.

:func:`load_run` reads what :meth:`gzsl.experiments.runner.Experiment.write_finish` wrote: the
final softmax classifier with the preprocessing fitted on the run's training features
(``classifier.pt``), the generator (``generator.pt``), the configuration and the results.
New features go through exactly the stored preprocessing, then the classifier; when the
run's selection chose a calibrated-stacking constant ``gamma`` it is applied as in the
evaluation (subtracted from the seen-class probabilities before the arg-max), so
``predict`` reproduces the run's reported predictions.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gzsl.data.dataset import GZSLData
from gzsl.data.errors import GZSLError
from gzsl.data.preprocessing import Preprocessor
from gzsl.evaluation.classifier import SoftmaxClassifier
from gzsl.experiments.rundir import (
    CLASSIFIER,
    CONFIG,
    METRICS,
    PREDICTIONS,
    RESULTS,
    RUN_FILES,
    RunDir,
)

__all__ = ["FEATURE_SUFFIXES", "TrainedRun", "load_run", "orient_features", "read_features"]

#: Files without which a run directory cannot classify anything.
REQUIRED_FILES = (CONFIG, RESULTS, CLASSIFIER)
#: Feature files ``gzsl predict`` reads.
FEATURE_SUFFIXES = (".npy", ".npz", ".mat")


class TrainedRun:
    """A trained run: its classifier, preprocessing, generator, configuration and results.

    Build it with :func:`load_run`. Features given to :meth:`predict` and
    :meth:`predict_proba` are *raw* (as in the dataset's files, before preprocessing),
    ``(N, D)`` or, when unambiguous, ``(D, N)``.

    Attributes:
        run_dir: the run directory.
        config: ``config.json`` (method, dataset, seed, selection, every setting).
        results: ``results.json`` (U, S, H, T1, per-class accuracies, what was chosen).
        metadata: ``metadata.json`` (environment, data provenance, dataset ``root``), or
            an empty dict when absent.
        device: where the classifier (and the generator, once used) lives.
        classes: ``(K,)`` global class ids, the column order of :meth:`predict_proba`.
        class_names: the ``K`` class names in column order.
        seen_classes, unseen_classes: global ids of the run's seen and unseen classes.
        gamma: calibrated-stacking constant of the reported classifier (0 when off).
    """

    def __init__(self, run_dir: str | Path, device: torch.device | str = "cpu", *,
                 root: str | Path | None = None, data: GZSLData | None = None) -> None:
        self.folder = RunDir(run_dir)
        self.run_dir = self.folder.path
        for name in REQUIRED_FILES:  # the clearest message first: absent before damaged
            if not self.folder.file(name).is_file():
                raise self.folder.missing_error(name)
        self.device = torch.device(device)
        self.config = self.folder.config()
        self.results = self.folder.results()
        self.metadata = self.folder.metadata()
        self._root = root
        self._data = data
        stored = self.folder.classifier()
        self.classifier_ = SoftmaxClassifier.from_state_dict(stored["classifier"], self.device)
        prep = stored["preprocessing"]
        self.preprocessor_ = Preprocessor(prep["scaling"], bool(prep["l2"]))
        self.preprocessor_.minimum_ = prep["minimum"].cpu().numpy().astype(np.float32)
        self.preprocessor_.scale_ = prep["scale"].cpu().numpy().astype(np.float32)
        self.all_class_names: list[str] = list(stored["class_names"])
        self._stored_semantics = self._checked_semantics(stored.get("semantics"))
        self.classes = self.classifier_.classes.cpu().numpy()
        self.class_names = [self.all_class_names[int(c)] for c in self.classes]
        self.feature_dim = int(self.classifier_.feature_dim)
        self.seen_classes, self.unseen_classes = self._seen_and_unseen()
        self.gamma = float(self.results.get("chosen", {}).get("gamma", 0.0) or 0.0)
        self._seen_columns = torch.as_tensor(np.isin(self.classes, self.seen_classes),
                                             device=self.device)

    def __repr__(self) -> str:
        r = self.results
        return (f"TrainedRun({str(self.run_dir)!r}: {r.get('method')} on {r.get('dataset')}, "
                f"selection {r.get('selection')}, seed {r.get('seed')}, H {r.get('H')})")

    def _checked_semantics(self, semantics: Any) -> torch.Tensor | None:
        """The class semantics stored with the run (runs made before they were stored
        have none), checked to hold one finite row per class."""
        if semantics is None:
            return None
        path = self.folder.file(CLASSIFIER)
        if (not isinstance(semantics, torch.Tensor) or semantics.ndim != 2
                or len(semantics) != len(self.all_class_names)
                or not bool(torch.isfinite(semantics).all())):
            raise GZSLError(f"{path} holds class semantics that are not one finite row per "
                            "class. Fix: the file is damaged or was edited; train the run "
                            "again")
        return semantics

    def _seen_and_unseen(self) -> tuple[np.ndarray, np.ndarray]:
        """From ``predictions.npz`` when present, else from the per-class results."""
        stored = self.folder.predictions()
        if stored is not None:
            try:
                seen, unseen = (np.asarray(stored[k]) for k in ("seen_classes", "unseen_classes"))
            except KeyError as error:
                raise GZSLError(f"{self.folder.file(PREDICTIONS)} lacks {error}. Fix: the file "
                                "is damaged; remove it or train the run again") from error
            both = np.concatenate([seen.ravel(), unseen.ravel()])
            if (both.dtype.kind not in "iu" or seen.ndim != 1 or unseen.ndim != 1
                    or not np.isin(both, self.classes).all()):
                raise GZSLError(f"{self.folder.file(PREDICTIONS)} lists seen / unseen classes "
                                "the run's classifier does not have. Fix: the file is damaged; "
                                "remove it or train the run again")
            return seen.astype(np.int64), unseen.astype(np.int64)
        index = {name: i for i, name in enumerate(self.all_class_names)}
        per_class = self.results.get("per_class", {})
        seen = np.array(sorted(index[n] for n in per_class.get("seen", {}) if n in index),
                        dtype=np.int64)
        return seen, np.setdiff1d(self.classes, seen)

    @classmethod
    def load(cls, run_dir: str | Path, device: torch.device | str = "cpu", *,
             root: str | Path | None = None, data: GZSLData | None = None) -> TrainedRun:
        """A finished run directory, loaded (the same as :func:`load_run`)."""
        return cls(run_dir, device, root=root, data=data)

    def save(self, path: str | Path, *, overwrite: bool = False) -> TrainedRun:
        """Copy this run's files to the run directory ``path``; returns the copy, loaded.

        A folder that holds anything is refused unless ``overwrite`` (as for training).
        """
        target = RunDir(path)
        target.check(overwrite=overwrite)
        with target.claim(overwrite=overwrite):
            for name in RUN_FILES:
                if self.folder.file(name).is_file():
                    target.copy_from(self.folder.file(name))
        return TrainedRun(target.path, self.device, root=self._root, data=self._data)

    @property
    def metrics(self) -> dict[str, float]:
        """U, S, H and T1 in percent, as in ``results.json``."""
        return {m: self.results[m] for m in METRICS}

    U = property(lambda self: self.results["U"], doc="Mean per-class accuracy, unseen (%).")
    S = property(lambda self: self.results["S"], doc="Mean per-class accuracy, seen (%).")
    H = property(lambda self: self.results["H"], doc="Harmonic mean of U and S (%).")
    T1 = property(lambda self: self.results["T1"], doc="ZSL accuracy on unseen classes (%).")

    @property
    def synthetic_data(self) -> bool:
        """True when the run was trained on generated (not image) features, like ``demo``."""
        return bool(self.results.get("synthetic_data", False))

    def preprocess(self, features: np.ndarray) -> np.ndarray:
        """Raw features (N, D) or (D, N) -> the run's preprocessed (N, D) float32 features."""
        return self.preprocessor_.transform(orient_features(features, self.feature_dim))

    def _calibrated(self, features: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities ``(N, K)`` and the scores ranked for prediction (stacking applied)."""
        inputs = torch.as_tensor(self.preprocess(features), device=self.device)
        probabilities = self.classifier_.log_probabilities(inputs).exp()
        scores = probabilities - self.gamma * self._seen_columns.to(probabilities.dtype)
        return probabilities, scores

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """``(N, K)`` class probabilities of the run's classifier, columns in ``class_names``.

        These are the softmax probabilities themselves; when the run uses calibrated
        stacking (``gamma`` > 0), :meth:`predict` ranks ``probability - gamma`` for seen
        classes instead, as the evaluation did.
        """
        probabilities, _ = self._calibrated(features)
        return probabilities.cpu().numpy()

    def predict_ids(self, features: np.ndarray) -> np.ndarray:
        """``(N,)`` global class ids of the predicted classes (ids index ``all_class_names``)."""
        _, scores = self._calibrated(features)
        return self.classes[scores.argmax(dim=1).cpu().numpy()]

    def predict(self, features: np.ndarray) -> list[str]:
        """The predicted class name of each row of raw ``features``."""
        return [self.all_class_names[int(c)] for c in self.predict_ids(features)]

    def top_k(self, features: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best classes of each row: names ``(N, k)`` and probabilities ``(N, k)``.

        Ranked as :meth:`predict` ranks (column 0 is the prediction); the probabilities
        are the classifier's own.
        """
        k = max(1, min(int(k), len(self.classes)))
        probabilities, scores = self._calibrated(features)
        order = scores.topk(k, dim=1).indices
        chosen = probabilities.gather(1, order).cpu().numpy()
        names = np.asarray(self.class_names, dtype=object)[order.cpu().numpy()]
        return names, chosen

    def dataset(self) -> GZSLData:
        """The run's dataset, reloaded (from ``root`` given to :func:`load_run`, else the
        folder recorded in ``metadata.json``; ``demo`` needs none) and checked to match."""
        if self._data is None:
            from gzsl.data.demo import embedded_name
            from gzsl.data.loaders import load_dataset

            name = self.config.get("dataset") or self.results.get("dataset")
            root = self._root if self._root is not None else self.metadata.get("root")
            data_config = self.config.get("data", {})
            if root is None and embedded_name(str(name)) is None:
                raise GZSLError(f"run {self.run_dir} does not record where dataset {name!r} "
                                "came from. Fix: pass the dataset folder (--root DIR, or "
                                "root= to load_run)")
            self._data = load_dataset(str(name), root, layout=data_config.get("layout"),
                                      semantics=data_config.get("semantics", "att"))
        data = self._data
        if list(data.class_names) != self.all_class_names or data.feature_dim != self.feature_dim:
            raise GZSLError(f"dataset {data.name!r} does not match run {self.run_dir} "
                            f"({data.n_classes} classes of {data.feature_dim}-d features; the "
                            f"run has {len(self.all_class_names)} classes of "
                            f"{self.feature_dim}-d features). Fix: pass the folder of the "
                            "dataset the run was trained on")
        return data

    @cached_property
    def generator_(self) -> Any:
        """The run's fitted generator (``generator.pt``), loaded on first use."""
        return self.folder.generator(self.device)

    def semantics(self) -> np.ndarray:
        """``(C, A)`` semantic vectors of all classes: stored with the run, else reloaded."""
        if self._stored_semantics is not None:
            return self._stored_semantics.cpu().numpy()
        return self.dataset().semantics

    def class_ids(self, classes: Sequence[str | int]) -> np.ndarray:
        """Global ids of ``classes`` given as names or ids; unknown ones are a GZSLError."""
        index = {name: i for i, name in enumerate(self.all_class_names)}
        ids, unknown = [], []
        for item in classes:
            if isinstance(item, str):
                if item in index:
                    ids.append(index[item])
                else:
                    unknown.append(item)
            elif 0 <= int(item) < len(self.all_class_names):
                ids.append(int(item))
            else:
                unknown.append(str(item))
        if unknown:
            shown = ", ".join(self.all_class_names[:10])
            raise GZSLError(f"unknown class(es) {', '.join(unknown)}. Fix: use class names "
                            f"of the run ({shown}{', ...' if len(index) > 10 else ''}) or "
                            f"ids 0..{len(index) - 1}")
        return np.asarray(ids, dtype=np.int64)

    def sample(self, classes: Sequence[str | int], n: int, seed: int = 0) -> np.ndarray:
        """``n`` synthetic features per class from the run's generator, class-major rows.

        The features live in the *preprocessed* feature space the generator was trained
        in (after the run's min-max scaling / L2 normalisation), not in the raw space of
        the dataset's files; :meth:`preprocess` maps real features there for comparison.

        Args:
            classes: class names or global ids (any classes with a semantic vector).
            n: features per class.
            seed: seed of the draw; the same seed gives the same features.

        Returns:
            ``(len(classes) * n, D)`` float32 array; rows ``i * n .. (i + 1) * n - 1``
            belong to ``classes[i]``.
        """
        ids = self.class_ids(classes)
        model = self.generator_
        semantics = torch.as_tensor(self.semantics()[ids], dtype=torch.float32,
                                    device=self.device)
        generator = torch.Generator(device=self.device).manual_seed(int(seed))
        with torch.no_grad():
            features = model.sample(semantics, int(n), rng=generator)
        return features.detach().cpu().numpy().astype(np.float32)


def load_run(run_dir: str | Path, device: torch.device | str = "cpu", *,
             root: str | Path | None = None, data: GZSLData | None = None) -> TrainedRun:
    """Load a finished run directory for prediction and synthesis.

    Args:
        run_dir: the folder ``gzsl train`` wrote.
        device: where to run (``"cpu"`` works for a run trained on a GPU).
        root: dataset folder, only needed by :meth:`TrainedRun.sample` /
            :meth:`TrainedRun.dataset` when the run's folder moved or was not recorded.
        data: the dataset itself, instead of reloading it from ``root``.

    Raises:
        GZSLError: the folder is missing, incomplete or damaged.

    Example::

        run = gzsl.load_run("runs/demo")
        run.predict(features)            # ['zebra', 'seal', ...]
        run.predict_proba(features)      # (N, K), columns in run.class_names
    """
    return TrainedRun(run_dir, device, root=root, data=data)


def orient_features(features: np.ndarray, feature_dim: int) -> np.ndarray:
    """``features`` as an ``(N, feature_dim)`` float32 matrix.

    A single vector is one row; a ``(feature_dim, N)`` matrix is transposed when its other
    side does not also equal ``feature_dim`` (a square matrix is read as rows).
    """
    array = np.asarray(features)
    if array.dtype.kind not in "fiub":
        raise GZSLError(f"features must be numbers, found dtype {array.dtype}. Fix: pass a "
                        "numeric (N, D) array")
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        raise GZSLError(f"features must be a matrix (N, {feature_dim}), found shape "
                        f"{array.shape}. Fix: one row per image")
    if array.shape[1] != feature_dim and array.shape[0] == feature_dim:
        array = array.T
    if array.shape[1] != feature_dim:
        raise GZSLError(f"features have shape {array.shape}, but the run was trained on "
                        f"{feature_dim}-d features. Fix: pass features from the same "
                        f"extractor as the run's dataset, one {feature_dim}-d row per image")
    if not np.isfinite(array).all():
        raise GZSLError("features contain NaN or infinite values. Fix: remove or repair "
                        "those rows")
    return np.ascontiguousarray(array, dtype=np.float32)


def read_features(path: str | Path, key: str | None = None) -> np.ndarray:
    """The feature matrix stored in a ``.npy``, ``.npz`` or ``.mat`` file, as stored.

    ``.npz`` and ``.mat`` files holding more than one numeric array need ``key``.
    """
    path = Path(path)
    if not path.is_file():
        raise GZSLError(f"feature file {path} does not exist. Fix: check the path")
    suffix = path.suffix.lower()
    if suffix not in FEATURE_SUFFIXES:
        raise GZSLError(f"cannot read features from {path.name}. Fix: save them as .npy "
                        "(numpy.save), .npz (numpy.savez) or .mat (MATLAB)")
    if suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise GZSLError(f"cannot read {path} as a .npy file: {error}. Fix: save a "
                            "numeric array with numpy.save") from error
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except (ValueError, OSError) as error:
            raise GZSLError(f"cannot read {path} as a .npz file: {error}. Fix: save numeric "
                            "arrays with numpy.savez") from error
    else:
        from gzsl.data.io import read_mat

        arrays = read_mat(path)
    numeric = {name: value for name, value in arrays.items()
               if isinstance(value, np.ndarray) and value.dtype.kind in "fiub" and value.size}
    if key is not None:
        if key not in arrays:
            raise GZSLError(f"{path.name} has no array {key!r}; it holds: "
                            f"{', '.join(sorted(arrays)) or 'nothing'}. Fix: --key NAME with "
                            "one of those")
        return np.asarray(arrays[key])
    if len(numeric) == 1:
        return next(iter(numeric.values()))
    if not numeric:
        raise GZSLError(f"{path.name} holds no numeric array. Fix: store the features as a "
                        "numeric (N, D) array")
    listed = ", ".join(f"{name} {value.shape}" for name, value in sorted(numeric.items()))
    raise GZSLError(f"{path.name} holds several arrays ({listed}). Fix: choose one with "
                    "--key NAME (key= in Python)")
