"""Running a study: Optuna storage, worker processes, trials, pruning and recovery.

A study folder holds::

    study.toml            the study file, as given (workers that join are checked against it)
    study.json            the study's name and storage
    journal.log           Optuna's journal (the default storage; works on a shared filesystem)
    trials/trial-0003/seed0/   one ordinary run directory per trial and seed
    locks/trial-3.lock    held by the worker running trial 3

Workers are plain ``study.optimize`` loops, one trial at a time, on one shared storage:
``--jobs N`` starts N of them here, and the same command on other machines with the same
``--storage`` joins them. Trial numbers, the order of waiting trials and the grid come
from Optuna; gzsl adds three things:

* **recovery**: a worker holds its trial's lock file (an OS lock, released when the
  process dies). A worker that finds a running trial whose lock is free marks it failed
  and queues a retry with Optuna's ``RetryHeartbeatStaleTrialCallback`` (database
  storages also use Optuna's heartbeat). The retry trains in the first attempt's folder,
  so finished seeds are read back and an interrupted one continues from its checkpoint;
* **an exact budget**: a trial created when ``n_trials`` trials already exist (two workers
  asking at once) stops before training and is recorded as a failed *surplus* trial;
* **pruning**: each validation checkpoint's H is reported as an intermediate value; a
  pruned run is marked ``pruned.json`` in its folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import math
import os
import socket
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gzsl.data.dataset import GZSLData
from gzsl.data.errors import GZSLError
from gzsl.experiments.config import ExperimentConfig
from gzsl.experiments.reproduce import read_result, same_settings
from gzsl.experiments.resume import resume_run
from gzsl.experiments.rundir import CHECKPOINTS, PRUNED, RESUME, RunDir, run_status
from gzsl.experiments.runner import (
    Log,
    RunResult,
    load_data,
    n_synthetic_grid,
    run_experiment,
)
from gzsl.experiments.studies.definition import StudySpec, parse_study
from gzsl.threads import worker_threads

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock-based recovery
    fcntl = None  # type: ignore[assignment]

STUDY_FILE = "study.toml"
STUDY_INFO = "study.json"
JOURNAL = "journal.log"
TRIALS = "trials"
LOCKS = "locks"
#: A running trial with no lock file yet is taken for dead only after this long.
LOCKLESS_GRACE_SECONDS = 120.0


class SurplusTrialError(Exception):
    """A trial created after the study had all its trials (two workers asked at once)."""


def default_study_dir(spec: StudySpec, base: str | Path = "studies") -> Path:
    return Path(base) / spec.name


def trial_dir(study_dir: Path, number: int) -> Path:
    return study_dir / TRIALS / f"trial-{number:04d}"


# ---------------------------------------------------------------- folder and storage


def prepare_study_dir(spec: StudySpec, study_dir: Path, storage: str | None) -> None:
    """Create the study folder (or check that it holds this same study) and record it."""
    study_file = study_dir / STUDY_FILE
    if study_file.is_file():
        saved = read_study_dir(study_dir)[0]
        if saved.identity() != spec.identity() or saved.name != spec.name:
            raise GZSLError(f"{study_dir} holds another study ({saved.name}, from "
                            f"{study_file}); its trials cannot be mixed with "
                            f"{spec.path or spec.name}. Fix: choose another --out")
        return
    if study_dir.exists() and any(study_dir.iterdir()):
        raise GZSLError(f"{study_dir} is not empty and holds no study (no {STUDY_FILE}). Fix: "
                        "choose a new or empty --out")
    try:
        study_dir.mkdir(parents=True, exist_ok=True)
        from gzsl.utils import atomic_write

        atomic_write(study_file, lambda handle: handle.write(spec.text.encode()))
        info = {"name": spec.name, "source": spec.path,
                "storage": None if storage is None or "@" in storage else storage}
        text = json.dumps(info, indent=2) + "\n"
        atomic_write(study_dir / STUDY_INFO, lambda handle: handle.write(text.encode()))
    except OSError as error:
        raise GZSLError(f"cannot write the study folder {study_dir}: {error.strerror}. Fix: "
                        "choose an --out on a writable filesystem") from error


def read_study_dir(study_dir: str | Path) -> tuple[StudySpec, str | None]:
    """The study file and recorded storage URL (None: the journal in the folder)."""
    study_dir = Path(study_dir)
    study_file = study_dir / STUDY_FILE
    if not study_file.is_file():
        raise GZSLError(f"{study_dir} is not a study folder (no {STUDY_FILE}). Fix: pass the "
                        "folder `gzsl study run` wrote (it prints 'study folder: ...')")
    spec = parse_study(study_file.read_text(), study_file)
    info_path = study_dir / STUDY_INFO
    try:
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    except (OSError, json.JSONDecodeError) as error:
        raise GZSLError(f"cannot read {info_path}: {error}. Fix: restore it") from error
    if isinstance(info.get("name"), str):  # the copy's file name is not the study's name
        spec = dataclasses.replace(spec, name=info["name"])
    return spec, info.get("storage")


def open_storage(study_dir: Path, url: str | None, heartbeat_seconds: int = 60) -> Any:
    """Optuna storage: the journal file in ``study_dir`` by default, a journal file given
    as a path ending in ``.log``, or any database URL Optuna accepts (with heartbeat)."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
    from optuna.storages.journal import JournalFileBackend

    if url is None or url.endswith(".log"):
        path = study_dir / JOURNAL if url is None else Path(url)
        try:
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as error:
            raise GZSLError(f"cannot open the study journal {path}: {error.strerror}") \
                from error
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return RDBStorage(url, heartbeat_interval=heartbeat_seconds,
                              grace_period=2 * heartbeat_seconds,
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback())
        except Exception as error:  # SQLAlchemy's errors: bad URL, no driver, no server
            raise GZSLError(f"cannot open the study storage {url!r}: "
                            f"{str(error).splitlines()[0]}. Fix: give a database URL "
                            "Optuna accepts (sqlite:///FILE.db, postgresql://...) or a "
                            "journal file path ending in .log") from error


def open_study(spec: StudySpec, study_dir: Path, storage_url: str | None,
               wait_seconds: float = 60.0) -> Any:
    """Create the study in its storage, or join it when it exists (same study file)."""
    import optuna

    storage = open_storage(study_dir, storage_url, spec.heartbeat_seconds)
    kwargs = {"study_name": spec.name, "storage": storage, "sampler": spec.make_sampler(),
              "pruner": spec.make_pruner()}
    try:
        study = optuna.create_study(direction="maximize", **kwargs)
        study.set_user_attr("gzsl_identity", spec.identity())
        study.set_user_attr("gzsl_n_trials", spec.n_trials)
        return study
    except optuna.exceptions.DuplicatedStudyError:
        pass
    study = optuna.load_study(**kwargs)
    deadline = time.monotonic() + wait_seconds
    while "gzsl_identity" not in study.user_attrs:  # its creator is still setting it up
        if time.monotonic() > deadline:
            raise GZSLError(f"study {spec.name} in its storage was not made by gzsl (no "
                            "gzsl_identity); choose another study name or storage")
        time.sleep(0.2)
    if study.user_attrs["gzsl_identity"] != spec.identity():
        raise GZSLError(f"the storage already holds a study named {spec.name} made from "
                        "another study file (other space, seeds, sampler or settings); "
                        "give this study another `name`, or use another --storage")
    return study


# ------------------------------------------------------------------------ locks


def _try_lock(path: Path) -> int | None:
    """An exclusive lock on ``path`` (created if needed), or None when another process
    holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    if fcntl is None:
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _lock_path(study_dir: Path, number: int) -> Path:
    return study_dir / LOCKS / f"trial-{number}.lock"


def _frozen(study: Any, number: int) -> Any:
    for trial in study.get_trials(deepcopy=False):
        if trial.number == number:
            return trial
    raise KeyError(number)  # pragma: no cover - Optuna numbers every trial


def _retry(study: Any, trial: Any) -> None:
    """Queue ``trial`` again with the same parameters (Optuna's retry callback)."""
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback()(study, trial)


def root_number(trial: Any) -> int:
    """The number of the first attempt of ``trial`` (itself unless it is a retry)."""
    return int(trial.system_attrs.get("failed_trial", trial.number))


def recover_dead_trials(study: Any, study_dir: Path) -> list[int]:
    """Fail every running trial whose worker is gone (its lock is free) and queue a retry;
    returns their numbers. Safe to run from any number of workers at once."""
    from optuna.trial import TrialState

    recovered = []
    now = datetime.datetime.now()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        lock = _lock_path(study_dir, trial.number)
        started = trial.datetime_start or now
        if not lock.exists() and (now - started).total_seconds() < LOCKLESS_GRACE_SECONDS:
            continue  # its worker may be about to take the lock
        fd = _try_lock(lock)
        if fd is None:
            continue  # alive
        try:
            current = _frozen(study, trial.number)
            if current.state != TrialState.RUNNING:
                continue
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            _retry(study, current)
            recovered.append(trial.number)
        finally:
            os.close(fd)
    return recovered


# ------------------------------------------------------------------------ trials


@dataclass
class Reporter:
    """Turns a trial's checkpoint rows into Optuna intermediate values.

    Each scored validation checkpoint (the best H over the synthetic counts scored there)
    is one step; steps count on across the trial's seeds, in their order, so a pruner
    compares trials at the same amount of validation training.
    """

    trial: Any
    rows_per_checkpoint: int
    steps: list[dict[str, Any]] = field(default_factory=list)
    _seen: set[tuple[int, int]] = field(default_factory=set)
    _pending: dict[int, list[float]] = field(default_factory=dict)

    def replay(self, run_dir: Path, seed: int) -> None:
        """Report the validation checkpoints a run recorded before (a retried trial)."""
        import csv

        path = run_dir / CHECKPOINTS
        if not path.is_file():
            return
        best: dict[int, float] = {}
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("phase") == "validation" and row.get("H") not in (None, ""):
                    iteration = int(row["iteration"])
                    best[iteration] = max(best.get(iteration, -math.inf), float(row["H"]))
        for iteration in sorted(best):
            self._report(seed, iteration, best[iteration])

    def tracker(self, seed: int) -> Callable[[dict[str, Any]], None]:
        """The run's tracker: reports each complete validation checkpoint, then asks the
        pruner (raising ``optuna.TrialPruned`` to stop the run)."""
        import optuna

        def track(row: dict[str, Any]) -> None:
            if row.get("phase") != "validation" or row.get("H") is None:
                return
            iteration = int(row["iteration"])
            scores = self._pending.setdefault(iteration, [])
            scores.append(float(row["H"]))
            if len(scores) < self.rows_per_checkpoint:
                return
            del self._pending[iteration]
            if self._report(seed, iteration, max(scores)) and self.trial.should_prune():
                raise optuna.TrialPruned(
                    f"pruned at seed {seed}, validation iteration {iteration} (step "
                    f"{len(self.steps) - 1}, validation H {max(scores):.2f})")

        return track

    def _report(self, seed: int, iteration: int, value: float) -> bool:
        if (seed, iteration) in self._seen:
            return False
        self._seen.add((seed, iteration))
        self.trial.report(value, len(self.steps))
        self.steps.append({"seed": seed, "iteration": iteration, "validation_H": value})
        return True


@dataclass
class Worker:
    """One worker: runs trials of ``spec`` from ``study`` until the study has all of them.

    Args:
        root: the data folder (``--root``); ``demo`` needs none.
        device: the device each run uses.
        threads: torch threads of this worker (its share of the machine's cores).
        label: how this worker's lines are prefixed.
    """

    spec: StudySpec
    study_dir: Path
    study: Any
    root: str | None = None
    device: str = "auto"
    threads: int = 1
    label: str = "worker"
    log: Log = print
    _data: GZSLData | None = None
    _held: list[int] = field(default_factory=list)

    def run(self) -> int:
        """Run trials until none is left to run; returns how many this worker ran."""
        import optuna
        import torch
        from optuna.trial import TrialState

        torch.set_num_threads(self.threads)
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        ran = 0
        while True:
            recovered = recover_dead_trials(self.study, self.study_dir)
            for number in recovered:
                self.log(f"[{self.label}] trial {number} lost its worker: queued again")
            trials = self.study.get_trials(deepcopy=False)
            waiting = [t for t in trials if t.state == TrialState.WAITING]
            active = [t for t in trials if t.state != TrialState.FAIL]
            if not waiting and len(active) >= self.spec.n_trials:
                return ran
            try:
                self.study.optimize(self.objective, n_trials=1, catch=(SurplusTrialError,),
                                    gc_after_trial=False)
            finally:
                self._release()
            ran += 1

    def _release(self) -> None:
        while self._held:
            os.close(self._held.pop())

    def objective(self, trial: Any) -> float:
        """One trial: every seed's run, in its own folder; the mean validation H."""
        import optuna
        from optuna.trial import TrialState

        earlier = [t for t in self.study.get_trials(deepcopy=False)
                   if t.number < trial.number and t.state != TrialState.FAIL]
        if len(earlier) >= self.spec.n_trials:
            trial.set_user_attr("surplus", True)
            raise SurplusTrialError(f"the study already has its {self.spec.n_trials} trials")
        fd = _try_lock(_lock_path(self.study_dir, trial.number))
        if fd is None:
            raise GZSLError(f"trial {trial.number} is locked by another worker")
        self._held.append(fd)
        frozen = _frozen(self.study, trial.number)
        first = root_number(frozen)
        params = {param.key: param.suggest(trial) for param in self.spec.space}
        folder = trial_dir(self.study_dir, first)
        trial.set_user_attr("trial_dir", str(folder.relative_to(self.study_dir)))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr("threads", self.threads)
        shown = ", ".join(f"{k}={v}" for k, v in params.items())
        again = f" (retry of trial {first})" if first != trial.number else ""
        self.log(f"[{self.label}] trial {trial.number}{again}: {shown}")
        reporter = Reporter(trial, 0)
        values = []
        try:
            for seed in self.spec.seeds:
                config = self.spec.config(params, seed, self.device)
                reporter.rows_per_checkpoint = len(n_synthetic_grid(config.evaluation))
                result = self._run_seed(config, folder / f"seed{seed}", reporter, seed)
                values.append(float(result.chosen["validation_H"]))
        except optuna.TrialPruned:
            trial.set_user_attr("pruned_at", reporter.steps[-1] if reporter.steps else None)
            self.log(f"[{self.label}] trial {trial.number} pruned at "
                     f"{reporter.steps[-1] if reporter.steps else 'its start'}")
            raise
        except BaseException:  # Ctrl-C, a data error...: the point is run again later
            _retry(self.study, _frozen(self.study, trial.number))
            raise
        mean = statistics.fmean(values)
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        trial.set_user_attr("validation_H", values)
        trial.set_user_attr("validation_H_std", std)
        self.log(f"[{self.label}] trial {trial.number}: validation H {mean:.2f} ± {std:.2f} "
                 f"over {len(values)} seed(s)")
        return mean

    def _run_seed(self, config: ExperimentConfig, run_dir: Path, reporter: Reporter,
                  seed: int) -> RunResult:
        """One seed's run: read back when finished, continued when interrupted."""
        import optuna

        status = run_status(run_dir)
        if status in ("finished", "unfinished", "pruned") and not same_settings(run_dir,
                                                                                 config):
            raise GZSLError(f"{run_dir} holds a run with other settings than its trial; "
                            "the study folder was changed by hand. Fix: remove that folder")
        if status == "finished":
            reporter.replay(run_dir, seed)
            return read_result(run_dir)
        if status == "pruned":
            raise optuna.TrialPruned(f"{run_dir} was pruned before")
        data = self.data(config)
        tracker = reporter.tracker(seed)
        try:
            if status == "unfinished":
                reporter.replay(run_dir, seed)
                return resume_run(run_dir, root=self.root, device=self.device, data=data,
                                  tracker=tracker)
            return run_experiment(config, root=self.root, out=run_dir, data=data,
                                  tracker=tracker)
        except optuna.TrialPruned:
            folder = RunDir(run_dir)
            folder.write_json(PRUNED, {"step": len(reporter.steps) - 1,
                                       **(reporter.steps[-1] if reporter.steps else {})})
            folder.remove(RESUME)
            raise

    def data(self, config: ExperimentConfig) -> GZSLData:
        """The dataset, loaded once per worker."""
        if self._data is None:
            self._data = load_data(config, self.root)
        return self._data


# ------------------------------------------------------------------ whole studies


def _worker_main(spec: StudySpec, study_dir: str, storage: str | None, root: str | None,
                 device: str, threads: int, label: str) -> None:
    """Entry point of a ``--jobs`` worker process (started with ``spawn``)."""
    import sys

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = open_study(spec, Path(study_dir), storage)
        Worker(spec, Path(study_dir), study, root=root, device=device, threads=threads,
               label=label, log=lambda line: print(line, flush=True)).run()
    except GZSLError as error:
        print(f"error: [{label}] {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def run_study(spec: StudySpec, study_dir: str | Path, *, jobs: int = 1,
              storage: str | None = None, root: str | Path | None = None,
              device: str = "auto", threads: int | None = None,
              log: Log = print) -> Any:
    """Run (or join, or continue) the study in ``study_dir`` with ``jobs`` workers here;
    returns the Optuna study once no trial is left to run."""
    if jobs < 1:
        raise GZSLError(f"--jobs must be at least 1, got {jobs}")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study_dir = Path(study_dir)
    prepare_study_dir(spec, study_dir, storage)
    study = open_study(spec, study_dir, storage)
    threads = threads or worker_threads(jobs)
    root = None if root is None else str(root)
    log(f"study {spec.name}: {spec.n_trials} trial(s) of {len(spec.seeds)} seed(s), "
        f"{spec.sampler} sampler; {jobs} worker(s) here with {threads} torch thread(s) each")
    if jobs == 1:
        Worker(spec, study_dir, study, root=root, device=device, threads=threads,
               label="worker 0", log=log).run()
        return study
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker_main, args=(
        spec, str(study_dir), storage, root, device, threads, f"worker {k}"))
        for k in range(jobs)]
    with _terminate_on_exit(processes):
        for process in processes:
            process.start()
        for process in processes:
            process.join()
    failed = [(k, p.exitcode) for k, p in enumerate(processes) if p.exitcode != 0]
    if failed:
        shown = ", ".join(f"worker {k} (status {code})" for k, code in failed)
        raise GZSLError(f"{shown} stopped early; see its messages above. Run the same "
                        "command again to continue the study")
    return study


@contextlib.contextmanager
def _terminate_on_exit(processes: list[Any]) -> Iterator[None]:
    """Stop the workers this process started if it leaves early (Ctrl-C, an error)."""
    try:
        yield
    except BaseException:
        for process in processes:
            if process.is_alive():
                process.join(timeout=30)  # Ctrl-C reaches them too; let them queue retries
            if process.is_alive():
                process.terminate()
        raise
