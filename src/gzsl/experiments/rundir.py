"""A run directory: the one object that knows a run's file names and reads or writes them.

Every command that touches a run (train, resume, reproduce, compare, plot, predict,
retrieve, studies) goes through :class:`RunDir`, so that

* a run holds an exclusive lock on its directory while it runs (a second process given
  the same ``--out`` is refused at once, before it writes anything);
* writing over a finished run, an interrupted one or a folder that is not a run needs an
  explicit ``overwrite``;
* every file read back is checked for the shape the readers rely on: a damaged or edited
  file is one clear :class:`GZSLError` naming the file, never a traceback or a silently
  wrong number;
* a problem writing (read-only or full filesystem, no permission, ``--out`` naming a file)
  is one clear error too, and never leaves half a file (writes are atomic).

Untrusted files never execute code: ``torch.load(weights_only=True)`` and
``numpy.load(allow_pickle=False)`` only.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import pickle
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from gzsl.data.errors import GZSLError
from gzsl.utils import atomic_write

try:  # POSIX advisory locks; elsewhere runs are not locked (documented in docs/cli.md)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

CONFIG = "config.json"
METADATA = "metadata.json"
RESULTS = "results.json"
CHECKPOINTS = "checkpoints.csv"
LOSSES = "losses.csv"
CLASSIFIER_EPOCHS = "classifier_epochs.csv"
PREDICTIONS = "predictions.npz"
GENERATOR = "generator.pt"
CLASSIFIER = "classifier.pt"
RESUME = "resume.pt"
#: Written by a study when its pruner stopped the run: where it stopped (no results follow).
PRUNED = "pruned.json"
LOCK = ".gzsl.lock"
TENSORBOARD = "tensorboard"
#: Files a run writes; ``overwrite`` removes them before a new run starts in their place.
RUN_FILES = (CONFIG, METADATA, RESULTS, CHECKPOINTS, LOSSES, CLASSIFIER_EPOCHS, PREDICTIONS,
             GENERATOR, CLASSIFIER, RESUME, PRUNED)
#: The arrays of ``predictions.npz``.
PREDICTION_ARRAYS = ("test_seen_labels", "test_seen_predictions", "test_unseen_labels",
                     "test_unseen_predictions", "seen_classes", "unseen_classes")
#: What a folder may hold and still count as a new run's (the lock, a tracker's logs).
_OWN = frozenset({LOCK, TENSORBOARD})
METRICS = ("U", "S", "H", "T1")
_TORCH_LOAD_ERRORS = (OSError, RuntimeError, EOFError, ValueError, KeyError, TypeError,
                      AttributeError, IndexError, pickle.UnpicklingError, zipfile.BadZipFile)


def run_status(path: str | Path) -> str:
    """``"finished"`` (``results.json`` is there: it is written last), ``"pruned"`` (a
    study trial its pruner stopped: ``pruned.json`` without results), ``"unfinished"``
    (``config.json`` without results: interrupted or still running), ``"foreign"`` (a
    folder or file holding other things), or ``"new"`` (absent or empty).

    A ``resume.pt`` left beside ``results.json`` (a kill between the two writes) does not
    make a finished run unfinished.
    """
    path = Path(path)
    if (path / RESULTS).is_file():
        return "finished"
    if (path / CONFIG).is_file():
        return "pruned" if (path / PRUNED).is_file() else "unfinished"
    if path.is_dir():
        return "foreign" if any(p.name not in _OWN for p in path.iterdir()) else "new"
    return "foreign" if path.exists() else "new"


def _short(error: BaseException) -> str:
    """A library error in a few words: its first line, at most 160 characters."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _damaged(path: Path, what: str) -> GZSLError:
    return GZSLError(f"{path} {what}. Fix: the file is damaged or was edited; restore it "
                     "or train the run again")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class RunDir:
    """One run directory. Cheap to create; reads and checks files only when asked.

    Args:
        path: the folder (need not exist yet).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock: int | None = None

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def status(self) -> str:
        """See :func:`run_status`."""
        return run_status(self.path)

    # ----------------------------------------------------------------- ownership

    @contextlib.contextmanager
    def claim(self, *, overwrite: bool = False, resume: bool = False) -> Iterator[RunDir]:
        """Create the folder if needed and hold its exclusive lock for the block.

        Refuses, before writing anything: a path that is a file, a folder in use by another
        gzsl process, and (unless ``overwrite``) a finished run, an interrupted run (unless
        ``resume``) or a non-empty folder that is not a run. With ``overwrite``, the old
        run's files are removed once the lock is held; other files are left alone.
        """
        self._check_not_a_file()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise self._write_error(self.path, error) from error
        self._acquire()
        try:
            self._check_claim(overwrite=overwrite, resume=resume)
            yield self
        finally:
            self._release()

    def check(self, *, overwrite: bool = False, resume: bool = False) -> None:
        """Raise the error :meth:`claim` would raise for the folder as it is now, without
        creating or locking anything (to refuse before slow work such as loading data)."""
        self._check_not_a_file()
        refusal = self._refusal(overwrite=overwrite, resume=resume)
        if refusal is not None:
            raise refusal

    def _check_not_a_file(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise GZSLError(f"{self.path} is a file, not a folder. Fix: give --out a folder "
                            "path (new or empty)")

    def _check_claim(self, *, overwrite: bool, resume: bool) -> None:
        refusal = self._refusal(overwrite=overwrite, resume=resume)
        if refusal is not None:
            raise refusal
        if overwrite and not resume:
            for name in RUN_FILES:
                try:
                    self.file(name).unlink(missing_ok=True)
                except OSError as error:
                    raise self._write_error(self.file(name), error) from error

    def _refusal(self, *, overwrite: bool, resume: bool) -> GZSLError | None:
        status = self.status
        if resume:
            if status == "finished":
                return GZSLError(f"the run in {self.path} has finished (results.json is "
                                 "there); nothing to resume")
            if status == "pruned":
                return GZSLError(f"the run in {self.path} was stopped by its study's pruner "
                                 "(pruned.json); a pruned trial is not resumed")
            if status != "unfinished":
                return GZSLError(f"{self.path} is not a run directory: it has no config.json. "
                                 f"Fix: start a run with gzsl train METHOD DATASET --out "
                                 f"{self.path}")
            return None
        if status == "new" or overwrite:
            return None
        if status == "finished":
            return GZSLError(f"{self.path} holds a finished run. Fix: choose another --out, "
                             "or pass --overwrite to replace it")
        if status == "pruned":
            return GZSLError(f"{self.path} holds a study trial's run that was pruned. Fix: "
                             "choose another --out, or pass --overwrite to replace it")
        if status == "unfinished":
            return GZSLError(f"{self.path} holds an interrupted run: continue it with "
                             f"`gzsl train --resume {self.path}`, choose another --out, "
                             "or pass --overwrite to start it again")
        found = sorted(p.name for p in self.path.iterdir() if p.name not in _OWN)
        shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
        return GZSLError(f"{self.path} is not empty and not a gzsl run (found: {shown}). "
                         "Fix: choose a new or empty --out, or pass --overwrite to write "
                         "the run there anyway")

    def _acquire(self) -> None:
        try:
            fd = os.open(self.file(LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise self._write_error(self.file(LOCK), error) from error
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise GZSLError(f"{self.path} is in use by another gzsl process (pid "
                                f"{holder}). Fix: wait for it to finish, or choose another "
                                "--out") from error
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock = fd

    def _release(self) -> None:
        if self._lock is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._lock, 0)
        os.close(self._lock)  # closing releases the flock
        self._lock = None

    @staticmethod
    def _write_error(path: Path, error: OSError) -> GZSLError:
        reason = error.strerror or _short(error)
        return GZSLError(f"cannot write {path}: {reason}. Fix: choose an --out on a writable "
                         "filesystem with free space, or fix the folder's permissions")

    # ------------------------------------------------------------------- writing

    def _write(self, name: str, write: Callable[[BinaryIO], None]) -> Path:
        path = self.file(name)
        try:
            return atomic_write(path, write)
        except OSError as error:
            raise self._write_error(path, error) from error

    def write_json(self, name: str, value: Any) -> Path:
        text = json.dumps(value, indent=2, default=str) + "\n"
        return self._write(name, lambda handle: handle.write(text.encode()))

    def write_csv(self, name: str, rows: list[dict[str, Any]]) -> Path:
        """Rows with possibly different keys, written with the union of keys as header."""
        columns: list[str] = []
        for row in rows:
            columns.extend(k for k in row if k not in columns)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
        return self._write(name, lambda handle: handle.write(text.encode()))

    def write_npz(self, name: str, **arrays: Any) -> Path:
        return self._write(name, lambda handle: np.savez(handle, **arrays))

    def write_torch(self, name: str, value: Any) -> Path:
        return self._write(name, lambda handle: torch.save(value, handle))

    def write_predictions(self, *, test_seen_labels: Any, test_seen_predictions: Any,
                          test_unseen_labels: Any, test_unseen_predictions: Any,
                          seen_classes: Any, unseen_classes: Any) -> Path:
        """``predictions.npz``: labels and predicted class ids of the final task's test
        images (arrays or tensors), the layout :meth:`predictions` reads back."""
        def array(values: Any) -> np.ndarray:
            return values.cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)

        return self.write_npz(
            PREDICTIONS, test_seen_labels=array(test_seen_labels),
            test_seen_predictions=array(test_seen_predictions),
            test_unseen_labels=array(test_unseen_labels),
            test_unseen_predictions=array(test_unseen_predictions),
            seen_classes=array(seen_classes), unseen_classes=array(unseen_classes))

    def write_classifier(self, state: dict[str, Any], preprocessor: Any,
                         class_names: Any, semantics: Any) -> Path:
        """``classifier.pt``: the final classifier's weights, the fitted preprocessing
        (:class:`~gzsl.data.preprocessing.Preprocessor`), class names and semantics, so a
        saved run predicts and synthesises on its own; the layout :meth:`classifier`
        reads back."""
        return self.write_torch(CLASSIFIER, {
            "classifier": state,
            "preprocessing": {"scaling": preprocessor.scaling, "l2": preprocessor.l2,
                              "minimum": torch.from_numpy(preprocessor.minimum_),
                              "scale": torch.from_numpy(preprocessor.scale_)},
            "class_names": list(class_names),
            "semantics": torch.as_tensor(semantics, dtype=torch.float32),
        })

    def save_generator(self, model: Any) -> Path:
        """``generator.pt``: the fitted generator (:meth:`Generator.save`), atomically."""
        path = self.file(GENERATOR)
        try:
            model.save(path)
        except OSError as error:
            raise self._write_error(path, error) from error
        return path

    def copy_from(self, source: Path) -> Path:
        """Copy the file ``source`` into the run under its own name, atomically."""
        data = source.read_bytes()
        return self._write(source.name, lambda handle: handle.write(data))

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.file(name).unlink()

    def remove_stray_temporaries(self) -> None:
        """Half-written files of a killed atomic write (``.NAME.XXXX.tmp``)."""
        for stray in self.path.glob(".*.tmp"):
            stray.unlink(missing_ok=True)

    # ------------------------------------------------------------------- reading

    def read_json(self, name: str, *, required: bool = True) -> dict[str, Any]:
        """A JSON object of the run; ``{}`` for an absent optional file."""
        path = self.file(name)
        if not path.is_file():
            if not required:
                return {}
            raise self.missing_error(name)
        try:
            value = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise GZSLError(f"cannot read {path}: {_short(error)}. Fix: the file is damaged "
                            "or was edited; restore it or train the run again") from error
        if not isinstance(value, dict):
            raise _damaged(path, f"holds a JSON {type(value).__name__}, not an object")
        return value

    def missing_error(self, name: str) -> GZSLError:
        if not self.path.is_dir():
            return GZSLError(f"run directory {self.path} does not exist. Fix: pass the folder "
                             "`gzsl train` wrote (it prints 'run directory: ...' at the end)")
        if name != CONFIG and self.status == "unfinished":
            return GZSLError(f"{self.file(name)} is missing: the run in {self.path} was "
                             "interrupted or is still running. Fix: wait for it, or continue "
                             f"it with `gzsl train --resume {self.path}`")
        return GZSLError(f"{self.file(name)} is missing: {self.path} is not a run directory "
                         "written by `gzsl train`, or an incomplete one. Fix: pass a finished "
                         "run's folder, or train the run again")

    def config(self) -> dict[str, Any]:
        """``config.json`` as saved (see :meth:`experiment_config` for the parsed form)."""
        config = self.read_json(CONFIG)
        for key in ("method", "dataset", "selection"):
            if not isinstance(config.get(key), str):
                raise _damaged(self.file(CONFIG), f"has no valid {key!r}")
        for section in ("data", "method_config", "evaluation"):
            if not isinstance(config.get(section, {}), dict):
                raise _damaged(self.file(CONFIG), f"has a {section!r} that is not a table")
        return config

    def experiment_config(self) -> Any:
        """``config.json`` as an :class:`~gzsl.experiments.config.ExperimentConfig`."""
        from gzsl.experiments.config import ExperimentConfig

        try:
            return ExperimentConfig.from_dict(self.config())
        except GZSLError as error:
            raise GZSLError(f"{self.file(CONFIG)}: {error}") from error

    def metadata(self) -> dict[str, Any]:
        """``metadata.json``, or ``{}`` when the run has none."""
        return self.read_json(METADATA, required=False)

    def results(self) -> dict[str, Any]:
        """``results.json``, checked: identity strings, metrics numbers, choices sane."""
        path = self.file(RESULTS)
        results = self.read_json(RESULTS)
        for key in ("method", "dataset", "selection"):
            if not isinstance(results.get(key), str):
                raise _damaged(path, f"has no valid {key!r} (a string)")
        for metric in METRICS:
            value = results.get(metric)
            if value is not None and not _number(value):
                raise _damaged(path, f"has {metric} = {value!r}, not a number")
        seed = results.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise _damaged(path, f"has seed = {seed!r}, not an integer")
        chosen = results.get("chosen", {})
        if not isinstance(chosen, dict):
            raise _damaged(path, "has a 'chosen' that is not an object")
        gamma = chosen.get("gamma", 0.0)
        if gamma is not None and not (_number(gamma) and math.isfinite(gamma)
                                      and 0.0 <= gamma < 1.0):
            raise _damaged(path, f"has chosen.gamma = {gamma!r}; a calibrated-stacking "
                                 "constant is a number in [0, 1)")
        per_class = results.get("per_class", {})
        if not isinstance(per_class, dict) or not all(
                isinstance(part, dict) and all(_number(v) for v in part.values())
                for part in per_class.values()):
            raise _damaged(path, "has per_class accuracies that are not class -> number")
        for key in ("published", "preprocessing"):
            if not isinstance(results.get(key, {}), dict):
                raise _damaged(path, f"has a {key!r} that is not an object")
        if not isinstance(results.get("synthetic_data", False), bool):
            raise _damaged(path, "has synthetic_data that is not true or false")
        return results

    def load_torch(self, name: str) -> Any:
        """A torch file of the run, loaded on the CPU without executing code."""
        path = self.file(name)
        if not path.is_file():
            raise self.missing_error(name)
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except _TORCH_LOAD_ERRORS as error:
            raise GZSLError(f"cannot read {path}: {_short(error)}. Fix: the file is damaged "
                            "or not a gzsl file; restore it or train the run again") from error

    def classifier(self) -> dict[str, Any]:
        """``classifier.pt`` checked: a linear classifier over sorted class ids, the
        preprocessing arrays of its feature size, and one name per class."""
        path = self.file(CLASSIFIER)
        stored = self.load_torch(CLASSIFIER)
        try:
            state, prep, names = (stored["classifier"], stored["preprocessing"],
                                  stored["class_names"])
            classes, weight, bias = state["classes"], state["weight"], state["bias"]
            minimum, scale = prep["minimum"], prep["scale"]
            scaling, l2 = prep["scaling"], prep["l2"]
        except (TypeError, KeyError, IndexError) as error:
            raise _damaged(path, f"lacks {_short(error)}") from error
        tensors = (classes, weight, bias, minimum, scale)
        if not all(isinstance(t, torch.Tensor) for t in tensors):
            raise _damaged(path, "holds values of the wrong kind (tensors expected)")
        if weight.ndim != 2 or classes.ndim != 1 or bias.shape != (len(classes),) or (
                weight.shape[0] != len(classes)):
            raise _damaged(path, f"has a classifier of inconsistent shape (classes "
                                 f"{tuple(classes.shape)}, weight {tuple(weight.shape)}, bias "
                                 f"{tuple(bias.shape)})")
        dim = int(weight.shape[1])
        if minimum.shape != (dim,) or scale.shape != (dim,):
            raise _damaged(path, f"has preprocessing arrays of shape {tuple(minimum.shape)} / "
                                 f"{tuple(scale.shape)} for {dim}-d features")
        if not (isinstance(names, list | tuple) and all(isinstance(n, str) for n in names)):
            raise _damaged(path, "has class names that are not a list of strings")
        if classes.dtype.is_floating_point or len(classes) == 0 or bool(
                (classes < 0).any() or (classes >= len(names)).any()
                or (classes[1:] <= classes[:-1]).any()):
            raise _damaged(path, f"has class ids that are not sorted ids of its "
                                 f"{len(names)} classes")
        if not all(bool(torch.isfinite(t.float()).all()) for t in tensors[1:]):
            raise _damaged(path, "holds NaN or infinite numbers")
        if not isinstance(scaling, str) or not isinstance(l2, bool | int):
            raise _damaged(path, "has preprocessing settings of the wrong kind")
        return stored

    def generator(self, device: torch.device | str = "cpu") -> Any:
        """The fitted generator of ``generator.pt``, on ``device``."""
        from gzsl.methods.base import Generator

        path = self.file(GENERATOR)
        if not path.is_file():
            raise GZSLError(f"{path} is missing, so this run cannot synthesise features. "
                            "Fix: train the run again (classification still works)")
        try:
            return Generator.load(path, device)
        except GZSLError as error:
            raise GZSLError(f"cannot use {path}: {error}") from error
        except _TORCH_LOAD_ERRORS as error:
            raise GZSLError(f"cannot read {path}: {_short(error)}. Fix: the file is damaged "
                            "or not a gzsl generator; train the run again") from error

    def losses(self) -> list[dict[str, Any]] | None:
        """``losses.csv`` checked, as rows of phase (str), iteration and steps (positive
        integers, iterations rising within a phase) and ``loss_*`` numbers (NaN where a
        row has none); None when the run has no such file (runs of gzsl 0.1)."""
        path = self.file(LOSSES)
        if not path.is_file():
            return None
        try:
            with path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                rows, columns = list(reader), list(reader.fieldnames or [])
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise GZSLError(f"cannot read {path}: {_short(error)}. Fix: the file is damaged "
                            "or was edited; restore it or train the run again") from error
        loss_columns = [c for c in columns if c.startswith("loss_")]
        missing = [c for c in ("phase", "iteration", "steps") if c not in columns]
        if missing or not loss_columns:
            raise _damaged(path, f"lacks the column(s) {', '.join(missing or ['loss_*'])}")
        checked: list[dict[str, Any]] = []
        last: dict[str, int] = {}
        for number, row in enumerate(rows, start=2):
            try:
                if None in row or not row["phase"]:
                    raise ValueError("a short or long row")
                iteration, steps = int(row["iteration"]), int(row["steps"])
                values = {c: float(row[c]) if row[c] not in (None, "") else math.nan
                          for c in loss_columns}
            except (TypeError, ValueError) as error:
                raise _damaged(path, f"has a malformed line {number} ({_short(error)})") \
                    from error
            if iteration < 1 or steps < 1 or iteration <= last.get(row["phase"], 0):
                raise _damaged(path, f"has line {number} with iteration {iteration} / steps "
                                     f"{steps} (positive, iterations rising in a phase)")
            last[row["phase"]] = iteration
            checked.append({"phase": row["phase"], "iteration": iteration, "steps": steps,
                            **values})
        return checked

    def predictions(self) -> dict[str, np.ndarray] | None:
        """``predictions.npz`` as arrays (checked: integer ids, labels and predictions of
        equal length), or None when absent."""
        path = self.file(PREDICTIONS)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise GZSLError(f"cannot read {path}: {_short(error)}. Fix: the file is damaged; "
                            "remove it or train the run again") from error
        missing = [k for k in PREDICTION_ARRAYS if k not in arrays]
        if missing:
            raise _damaged(path, f"lacks {', '.join(missing)}")
        if not all(arrays[k].ndim == 1 and arrays[k].dtype.kind in "iu"
                   and (arrays[k] >= 0).all() for k in PREDICTION_ARRAYS):
            raise _damaged(path, "holds arrays that are not lists of class ids")
        for part in ("test_seen", "test_unseen"):
            if len(arrays[f"{part}_labels"]) != len(arrays[f"{part}_predictions"]):
                raise _damaged(path, f"has {part} labels and predictions of different lengths")
        return arrays
