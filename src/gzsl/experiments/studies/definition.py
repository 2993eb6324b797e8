"""Study files: what a study searches, how, and on which objective; checked before training.

A study file is TOML with top-level keys::

    description = "GSMFlow Fig. 6: perturbation weight"
    method = "gsmflow"
    dataset = "demo"
    preset = "demo"                       # optional: the dataset's own preset by default
    seeds = [0, 1, 2]                     # every trial trains one run per seed
    set = ["evaluation.n_synthetic=100"]  # optional fixed --set overrides
    sampler = "grid"                      # grid, random or tpe
    sampler_seed = 0                      # optional (random and tpe)
    n_trials = 5                          # random / tpe; a grid runs each point once
    objective = "validation_H"            # the only objective: mean validation H over seeds

    [space]                               # any setting --set accepts
    "method.perturbation" = [0.02, 0.1, 0.5]                  # listed values (categorical)
    "method.lr" = { low = 1e-4, high = 1e-2, log = true }     # float range, log scale
    "method.coupling_blocks" = { low = 1, high = 4 }          # int range (int bounds)

    [pruner]                              # optional; other keys go to the Optuna pruner
    type = "median"                       # median, percentile, successive-halving,
    n_warmup_steps = 2                    # hyperband, threshold, patient or none

Every listed value and every range bound is resolved into a full experiment
configuration while the file is read, so an unknown key, a value the configuration
rejects, an empty space or a test-set objective is one clear error before any training.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gzsl.data.errors import GZSLError
from gzsl.experiments.config import ExperimentConfig, resolve

STUDY_DIR = Path(__file__).resolve().parent
SAMPLERS: tuple[str, ...] = ("grid", "random", "tpe")
OBJECTIVE = "validation_H"
PRUNERS: tuple[str, ...] = ("none", "median", "percentile", "successive-halving",
                            "hyperband", "threshold", "patient")
_KEYS = {"name", "description", "method", "dataset", "preset", "seeds", "set", "sampler",
         "sampler_seed", "n_trials", "objective", "space", "pruner", "heartbeat_seconds"}
#: Numbers a study file may not search, with the reason.
_NOT_SEARCHABLE = {"seed": "seeds are listed in `seeds`; every trial runs all of them",
                   "selection": "a study always selects on validation (val)",
                   "device": "the device is chosen on the command line (--device)"}


@dataclass(frozen=True)
class Param:
    """One searched setting: listed ``choices``, or an int / float range."""

    key: str
    kind: str  # "categorical", "int" or "float"
    choices: tuple[Any, ...] = ()
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False

    def distribution(self) -> Any:
        """The Optuna distribution of this parameter."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.kind == "categorical":
            return CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log,
                                   step=int(self.step or 1))
        return FloatDistribution(float(self.low), float(self.high), log=self.log,
                                 step=None if self.step is None else float(self.step))

    def suggest(self, trial: Any) -> Any:
        """The trial's value of this parameter (fixed for enqueued or retried trials)."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high),
                                     step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high),
                                   step=None if self.step is None else float(self.step),
                                   log=self.log)

    def describe(self) -> str:
        if self.kind == "categorical":
            return ", ".join(map(str, self.choices))
        scale = ", log scale" if self.log else ""
        step = f", step {self.step}" if self.step is not None else ""
        return f"{self.kind} in [{self.low}, {self.high}]{step}{scale}"


@dataclass(frozen=True)
class StudySpec:
    """A checked study file.

    Attributes:
        name: the study's name (the file's stem unless the file sets ``name``).
        overrides: fixed ``--set`` texts applied to every trial.
        space: the searched parameters, sorted by key.
        pruner: the pruner's settings (``type`` and Optuna keyword arguments), or None.
        text: the file's text, copied into the study folder.
    """

    name: str
    description: str
    method: str
    dataset: str
    preset: str | None
    seeds: tuple[int, ...]
    sampler: str
    sampler_seed: int
    n_trials: int
    space: tuple[Param, ...]
    overrides: tuple[str, ...] = ()
    pruner: dict[str, Any] | None = None
    heartbeat_seconds: int = 60
    objective: str = OBJECTIVE
    path: str | None = None
    text: str = field(default="", repr=False)

    def config(self, params: dict[str, Any], seed: int, device: str = "auto"
               ) -> ExperimentConfig:
        """The configuration of one trial's run for ``seed``: always the ``val`` protocol."""
        return resolve(self.method, self.dataset, preset=self.preset, overrides=self.overrides,
                       seed=seed, selection="val", device=device, values=params)

    def grid(self) -> dict[str, list[Any]]:
        """The grid sampler's search space: every parameter's listed values."""
        return {p.key: list(p.choices) for p in self.space}

    @property
    def grid_size(self) -> int:
        size = 1
        for param in self.space:
            size *= len(param.choices)
        return size

    def identity(self) -> str:
        """A digest of what defines the study's trials; workers that join a study must
        agree on it (a changed file is refused rather than mixed into the same study)."""
        fields = {"method": self.method, "dataset": self.dataset, "preset": self.preset,
                  "seeds": list(self.seeds), "set": list(self.overrides),
                  "sampler": self.sampler, "sampler_seed": self.sampler_seed,
                  "n_trials": self.n_trials, "objective": self.objective,
                  "pruner": self.pruner,
                  "space": [[p.key, p.kind, list(p.choices), p.low, p.high, p.step, p.log]
                            for p in self.space]}
        text = json.dumps(fields, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def make_sampler(self) -> Any:
        """The Optuna sampler; random and TPE draw each trial's values from a generator
        seeded by the trial's number, so workers in other processes never repeat a draw
        and a study's draws do not depend on which worker ran which trial."""
        import optuna

        if self.sampler == "grid":
            return optuna.samplers.GridSampler(self.grid(), seed=self.sampler_seed)
        return TrialSeededSampler(self.sampler, self.sampler_seed)

    def make_pruner(self) -> Any:
        return make_pruner(self.pruner)


def _trial_seeded_class() -> type:
    import optuna

    class _TrialSeeded(optuna.samplers.BaseSampler):
        """Random or TPE sampling with a fresh inner sampler per trial, seeded from the
        study's seed and the trial's number (workers are separate processes)."""

        def __init__(self, kind: str, seed: int) -> None:
            self.kind, self.seed = kind, seed
            self._inner: dict[int, Any] = {}

        def _for(self, trial: Any) -> Any:
            number = trial.number
            if number not in self._inner:
                seed = (self.seed * 1_000_003 + number) % (2**32)
                self._inner = {number: optuna.samplers.RandomSampler(seed=seed)
                               if self.kind == "random"
                               else optuna.samplers.TPESampler(seed=seed)}
            return self._inner[number]

        def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
            return self._for(trial).infer_relative_search_space(study, trial)

        def sample_relative(self, study: Any, trial: Any, search_space: Any) -> dict[str, Any]:
            return self._for(trial).sample_relative(study, trial, search_space)

        def sample_independent(self, study: Any, trial: Any, param_name: str,
                               param_distribution: Any) -> Any:
            return self._for(trial).sample_independent(study, trial, param_name,
                                                       param_distribution)

        def before_trial(self, study: Any, trial: Any) -> None:
            self._for(trial).before_trial(study, trial)

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            self._for(trial).after_trial(study, trial, state, values)

    return _TrialSeeded


def TrialSeededSampler(kind: str, seed: int) -> Any:  # noqa: N802  (a class factory)
    """A :class:`optuna.samplers.BaseSampler` for ``random`` or ``tpe`` (see
    :meth:`StudySpec.make_sampler`)."""
    return _trial_seeded_class()(kind, seed)


def make_pruner(settings: dict[str, Any] | None) -> Any:
    """The Optuna pruner ``settings`` describe (``type`` plus keyword arguments)."""
    import optuna

    settings = dict(settings or {"type": "none"})
    kind = settings.pop("type", "none")
    classes = {"none": optuna.pruners.NopPruner, "median": optuna.pruners.MedianPruner,
               "percentile": optuna.pruners.PercentilePruner,
               "successive-halving": optuna.pruners.SuccessiveHalvingPruner,
               "hyperband": optuna.pruners.HyperbandPruner,
               "threshold": optuna.pruners.ThresholdPruner,
               "patient": optuna.pruners.PatientPruner}
    if kind not in classes:
        raise GZSLError(f"unknown pruner type {kind!r}; choose one of {', '.join(PRUNERS)}")
    cls = classes[kind]
    if kind == "patient":
        settings = {"wrapped_pruner": None, **settings}
    allowed = set(inspect.signature(cls).parameters)
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise GZSLError(f"pruner {kind!r} has no setting(s) {', '.join(unknown)}; "
                        f"valid: {', '.join(sorted(allowed - {'wrapped_pruner'}))}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return cls(**settings)
    except (TypeError, ValueError) as error:
        raise GZSLError(f"pruner {kind!r}: {error}") from error


def list_studies() -> list[Path]:
    """The study files shipped with gzsl, sorted by name."""
    return sorted(STUDY_DIR.glob("*.toml"))


def find_study(name: str) -> Path:
    """A study file: a path, or the name of a shipped study."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = STUDY_DIR / f"{name.removesuffix('.toml')}.toml"
    if shipped.is_file():
        return shipped
    names = ", ".join(p.stem for p in list_studies()) or "none"
    raise GZSLError(f"no study file {name!r}: pass a .toml path or a shipped study "
                    f"({names}; `gzsl study list`)")


def load_study(name: str | Path) -> StudySpec:
    """Read and check a study file (a path or a shipped study's name)."""
    path = find_study(str(name))
    try:
        text = path.read_text()
    except OSError as error:
        raise GZSLError(f"cannot read study file {path}: {error.strerror}") from error
    return parse_study(text, path)


def parse_study(text: str, path: str | Path = "<study>") -> StudySpec:
    """Check a study file's text and return the study; every problem is one GZSLError that
    names the file and the key, raised before anything is trained."""
    where = str(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise GZSLError(f"study file {where} is not valid TOML: {error}") from error

    def fail(message: str) -> GZSLError:
        return GZSLError(f"study file {where}: {message}")

    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise fail(f"unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(_KEYS))}")
    for key in ("method", "dataset"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise fail(f"`{key}` is required (a name, e.g. {key} = \"gsmflow\")"
                       if key == "method" else f"`{key}` is required (e.g. dataset = \"demo\")")
    objective = raw.get("objective", OBJECTIVE)
    if objective != OBJECTIVE:
        raise fail(f"objective {objective!r} is not allowed: a study chooses only on "
                   f"validation data, never on the test set; use objective = \"{OBJECTIVE}\" "
                   "(mean validation H over the trial's seeds)")
    seeds = raw.get("seeds", [0])
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                       for s in seeds) or len(set(seeds)) != len(seeds)):
        raise fail("`seeds` must be a non-empty list of distinct non-negative integers, "
                   "e.g. seeds = [0, 1, 2]")
    sampler = raw.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        raise fail(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    overrides = raw.get("set", [])
    if not isinstance(overrides, list) or not all(isinstance(s, str) for s in overrides):
        raise fail('`set` must be a list of "section.key=value" texts')
    preset = raw.get("preset")
    if preset is not None and not isinstance(preset, str):
        raise fail("`preset` must be a preset name or a .toml path")
    heartbeat = raw.get("heartbeat_seconds", 60)
    if not isinstance(heartbeat, int) or isinstance(heartbeat, bool) or heartbeat < 1:
        raise fail("`heartbeat_seconds` must be a positive integer")
    sampler_seed = raw.get("sampler_seed", 0)
    if not isinstance(sampler_seed, int) or isinstance(sampler_seed, bool):
        raise fail("`sampler_seed` must be an integer")

    method, dataset = raw["method"], raw["dataset"]
    try:
        base = resolve(method, dataset, preset=preset, overrides=tuple(overrides),
                       device="cpu")
    except GZSLError as error:
        raise fail(str(error)) from error

    space_raw = raw.get("space")
    if not isinstance(space_raw, dict) or not space_raw:
        raise fail("the search space is empty: add a [space] table with at least one "
                   "setting, e.g. \"method.lr\" = [1e-4, 1e-3]")
    space = tuple(_param(key, space_raw[key], base.method, fail)
                  for key in sorted(space_raw))
    for param in space:
        _check_values(param, method, dataset, preset, tuple(overrides), fail)
    if sampler == "grid":
        ranges = [p.key for p in space if p.kind != "categorical"]
        if ranges:
            raise fail(f"the grid sampler needs every value listed; {', '.join(ranges)} "
                       "is a range (list its values, e.g. \"method.lr\" = [1e-4, 1e-3])")
    size = 1
    for param in space:
        size *= max(1, len(param.choices))
    n_trials = raw.get("n_trials")
    if sampler == "grid":
        if n_trials is not None and n_trials != size:
            raise fail(f"n_trials = {n_trials}, but a grid runs each of its {size} points "
                       "once; leave n_trials out")
        n_trials = size
    if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1:
        raise fail(f"`n_trials` (a positive integer) is required with the {sampler} sampler")
    pruner = raw.get("pruner")
    if pruner is not None:
        if not isinstance(pruner, dict):
            raise fail("[pruner] must be a table with a `type`")
        try:
            make_pruner(pruner)
        except GZSLError as error:
            raise fail(str(error)) from error
    name = raw.get("name", Path(where).stem)
    if not isinstance(name, str) or not name:
        raise fail("`name` must be a non-empty string")
    return StudySpec(
        name=name, description=str(raw.get("description", "")), method=base.method,
        dataset=dataset, preset=preset, seeds=tuple(seeds), sampler=sampler,
        sampler_seed=sampler_seed, n_trials=n_trials, space=space,
        overrides=tuple(overrides), pruner=None if pruner is None else dict(pruner),
        heartbeat_seconds=heartbeat, path=where, text=text)


def _param(key: str, value: Any, method: str, fail: Any) -> Param:
    """One ``[space]`` entry: a list of values, or a range table."""
    name = key.rpartition(".")[2]
    if name in _NOT_SEARCHABLE:
        raise fail(f"[space] {key!r} cannot be searched: {_NOT_SEARCHABLE[name]}")
    if isinstance(value, list):
        if not value:
            raise fail(f"[space] {key!r} lists no values")
        for item in value:
            if not isinstance(item, bool | int | float | str):
                raise fail(f"[space] {key!r}: value {item!r} cannot be searched (numbers, "
                           "booleans and strings only)")
        if len(set(map(repr, value))) != len(value):
            raise fail(f"[space] {key!r} lists a value twice")
        return Param(key, "categorical", choices=tuple(value))
    if not isinstance(value, dict):
        raise fail(f"[space] {key!r} must be a list of values or a table "
                   "{ low = ..., high = ... }")
    extra = sorted(set(value) - {"type", "low", "high", "step", "log"})
    if extra:
        raise fail(f"[space] {key!r}: unknown key(s) {', '.join(extra)} (type, low, high, "
                   "step, log)")
    low, high = value.get("low"), value.get("high")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
    if not numbers:
        raise fail(f"[space] {key!r} needs numeric `low` and `high`")
    kind = value.get("type") or ("int" if isinstance(low, int) and isinstance(high, int)
                                 else "float")
    if kind not in ("int", "float"):
        raise fail(f"[space] {key!r}: type must be int or float (list values for others)")
    if low >= high:
        raise fail(f"[space] {key!r}: low ({low}) must be below high ({high})")
    log = value.get("log", False)
    step = value.get("step")
    if not isinstance(log, bool):
        raise fail(f"[space] {key!r}: log must be true or false")
    if log and (low <= 0 or step is not None):
        raise fail(f"[space] {key!r}: a log scale needs low > 0 and no step")
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise fail(f"[space] {key!r}: an int range needs whole-number bounds")
    return Param(key, kind, low=low, high=high, step=step, log=log)


def _check_values(param: Param, method: str, dataset: str, preset: str | None,
                  overrides: tuple[str, ...], fail: Any) -> None:
    """Resolve every listed value (or both bounds) into a configuration."""
    values = param.choices if param.kind == "categorical" else (
        (int(param.low), int(param.high)) if param.kind == "int"
        else (float(param.low), float(param.high)))
    for value in values:
        try:
            resolve(method, dataset, preset=preset, overrides=overrides, device="cpu",
                    values={param.key: value})
        except GZSLError as error:
            raise fail(f"[space] {param.key!r} = {value!r} is rejected: {error}") from error
        except (TypeError, ValueError) as error:
            raise fail(f"[space] {param.key!r} = {value!r} is rejected by the "
                       f"configuration: {error}") from error
