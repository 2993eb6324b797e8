"""The small interface every generative method implements, and the method registry.

A method learns from :class:`SeenData` only (seen-class features and labels plus the
semantic vectors of the classes), then synthesises features for any semantic vectors.
It never sees test data: the experiment layer evaluates it through the checkpoint
callback, which also lets the experiment layer stop training early.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import os
import sys
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args, get_origin, get_type_hints

import torch
from torch import Tensor, nn

from gzsl.utils import atomic_write, duration


@dataclass(frozen=True)
class SeenData:
    """What training may see, resident on one device.

    Attributes:
        features: ``(N, D)`` float32 preprocessed features of seen-class images; at a scale
            that does not fit in memory, a :class:`gzsl.methods.rows.DeviceRows` that reads
            the rows it is indexed with (only for methods that declare
            :attr:`Generator.trains_from_batches`).
        labels: ``(N,)`` int64 global class ids.
        class_semantics: ``(C, A)`` float32 semantic vectors of all classes. Methods that
            use unseen-class semantics during training (GSMFlow's relative positioning
            with anchors from all classes) say so in their config.
        seen_classes: ``(S,)`` int64 sorted ids of the seen classes.
    """

    features: Tensor
    labels: Tensor
    class_semantics: Tensor
    seen_classes: Tensor

    @property
    def device(self) -> torch.device:
        return self.features.device

    @property
    def feature_dim(self) -> int:
        return int(self.features.shape[1])

    @property
    def semantic_dim(self) -> int:
        return int(self.class_semantics.shape[1])

    def class_means(self) -> Tensor:
        """``(S, D)`` mean feature of each seen class, in ``seen_classes`` order."""
        index = torch.searchsorted(self.seen_classes, self.labels)
        sums = torch.zeros(len(self.seen_classes), self.feature_dim, device=self.device)
        sums.index_add_(0, index, self.features)
        counts = torch.bincount(index, minlength=len(self.seen_classes)).clamp_min(1)
        return sums / counts.unsqueeze(1).to(sums.dtype)


@dataclass(frozen=True)
class Checkpoint:
    """A point in training where the experiment layer may evaluate the generator.

    Attributes:
        iteration: optimiser steps done so far.
        epoch: passes over the training data done so far (fractional for episodic methods).
        losses: mean of each loss term since the previous checkpoint.
        snapshot: returns the live training state (see :meth:`training_state`); set by
            methods that can resume.
    """

    iteration: int
    epoch: float
    losses: dict[str, float] = field(default_factory=dict)
    snapshot: Callable[[], dict[str, Any]] | None = field(default=None, compare=False,
                                                          repr=False)

    def training_state(self) -> dict[str, Any]:
        """A CPU copy of all ``fit(resume=...)`` needs to continue right after this checkpoint.

        Take it inside the checkpoint callback, after the callback's own random draws: the
        state holds the training random generator as it is at that moment, so a fit resumed
        from it continues exactly as the uninterrupted one would have.
        """
        if self.snapshot is None:
            from gzsl.data.errors import GZSLError

            raise GZSLError("this method does not save a training state to resume from")
        return cpu_copy(self.snapshot())


#: Called at each checkpoint; returning True stops training after this checkpoint.
CheckpointCallback = Callable[[Checkpoint], bool | None]


#: Called with a loss window's last iteration, its number of steps and each loss's mean.
LossCallback = Callable[[int, int, dict[str, float]], None]


@dataclass(frozen=True)
class CheckpointSchedule:
    """When a method calls back: every ``every`` iterations from ``after`` on, at each
    iteration in ``at`` (e.g. where a selection protocol wants training to stop), and at
    the end.

    ``on_losses`` (optional) receives the mean of each loss over windows of
    ``losses_every`` steps (a window also ends at each checkpoint and at the end, so a
    fit resumed after a checkpoint reports the same windows as the uninterrupted one);
    the sums stay on the device and are read once a window. ``label`` names the
    progress bar, and ``scored_from`` says from which iteration on the callback does
    costly work (scoring) that the bar's ETA should include (None: never).
    """

    every: int
    after: int = 0
    callback: CheckpointCallback | None = None
    at: frozenset[int] = frozenset()
    losses_every: int = 0
    on_losses: LossCallback | None = None
    label: str | None = None
    scored_from: int | None = None

    def due(self, iteration: int) -> bool:
        return (iteration in self.at
                or (iteration >= self.after and iteration % self.every == 0))


class Generator:
    """Base class of every generative method.

    Subclasses set ``name`` and ``Config`` (a frozen dataclass whose defaults are the
    paper's settings), and implement :meth:`fit`, :meth:`sample`, :meth:`state_dict` and
    :meth:`load_state_dict`. Following scikit-learn, the constructor only stores
    settings; learned state has a trailing underscore and exists after ``fit``.

    What every method needs the same way lives here, so a method writes only its model
    and its loss: a subclass's ``fit`` receives ``rng`` already on the data's device and
    ``sample`` one on the model's device (:func:`rng_on`); ``sample``, ``state_dict`` and
    ``instance_weights`` raise a clear :class:`GZSLError` before the model is fitted
    (:meth:`check_is_fitted`); :attr:`device`, :meth:`_set_training`, :meth:`_evaluating`
    and :meth:`_to` act on the learned ``nn.Module`` attributes; and
    :meth:`_training_log` does the per-step bookkeeping of a fit loop (progress bar,
    running loss means, checkpoints, stopping).
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    #: Rows synthesised (or weighed) at once when ``chunk_size`` is not given.
    default_chunk_size: ClassVar[int] = 8192
    #: Named config overrides for ``gzsl ablate`` (e.g. a paper's ablation table rows).
    ablations: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Whether ``fit`` touches ``data.features`` only through ``len``, ``.shape`` and
    #: indexing with a 1-D tensor of row numbers, so that it trains unchanged on rows read
    #: from disk batch by batch (:class:`gzsl.methods.rows.DeviceRows`, ImageNet scale).
    trains_from_batches: ClassVar[bool] = False

    def __init__(self, config: Any | None = None, *, progress: bool | None = None,
                 chunk_size: int | None = None, **overrides: Any) -> None:
        """``config`` (default: the paper's settings) with ``overrides`` applied.

        ``progress`` (show a progress bar while fitting; ``None``: when stderr is a
        terminal) and ``chunk_size`` (rows synthesised at once, bounding memory whatever
        ``n_per_class``) are run-time options: they change no result and are not saved
        with the settings.
        """
        self.progress = progress
        self.chunk_size = self.default_chunk_size if chunk_size is None else int(chunk_size)
        if self.chunk_size < 1:
            from gzsl.data.errors import GZSLError

            raise GZSLError(f"chunk_size must be >= 1, got {chunk_size!r}")
        config = config if config is not None else self.Config()
        self.config = dataclasses.replace(config, **overrides) if overrides else config
        if dataclasses.is_dataclass(self.config) and not isinstance(self.config, Settings):
            check_settings(type(self.config), {f.name: getattr(self.config, f.name)
                                               for f in dataclasses.fields(self.config)})

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Wrap the subclass's own ``fit``, ``sample``, ``state_dict`` and
        ``instance_weights`` with the shared device and fitted-state handling."""
        super().__init_subclass__(**kwargs)
        for attribute, wrap in (("fit", _wrap_fit), ("sample", _wrap_sample),
                                ("state_dict", _wrap_fitted),
                                ("instance_weights", _wrap_fitted)):
            method = cls.__dict__.get(attribute)
            if method is not None and not getattr(method, "_gzsl_wrapped", False):
                setattr(cls, attribute, wrap(method))

    def fit(self, data: SeenData, *, rng: torch.Generator,
            schedule: CheckpointSchedule | None = None,
            resume: dict[str, Any] | None = None) -> Generator:
        """Learn from seen classes on ``data.device``; returns self.

        ``resume`` is a :meth:`Checkpoint.training_state` of an earlier fit with the same
        config and data: training continues right after that checkpoint, with ``rng``
        set to the state it had there, so the outcome equals the uninterrupted fit's.
        """
        raise NotImplementedError

    def sample(self, semantics: Tensor, n_per_class: int, *,
               rng: torch.Generator | None = None) -> Tensor:
        """``(K * n_per_class, D)`` features for ``K`` semantic vectors, class-major order."""
        raise NotImplementedError

    def instance_weights(self, features: Tensor, semantics: Tensor) -> Tensor | None:
        """Per-sample weights for synthetic ``features`` of classes with ``semantics`` rows.

        Used by the attribute-weighted classifiers (AMAZ, Eq. 13); ``None`` (the default)
        means the method has no notion of sample quality and every sample weighs 1.
        """
        return None

    def total_iterations(self, n_train: int) -> int:
        """Optimiser steps a full ``fit`` takes on ``n_train`` images (progress, schedules)."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Learned tensors plus what :meth:`load_state_dict` needs to rebuild the modules."""
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any],
                        device: torch.device | str = "cpu") -> Generator:
        """Restore a fitted generator from :meth:`state_dict`'s output; returns self."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        """Where the learned state lives: the device of the first learned tensor or module."""
        self.check_is_fitted()
        for value in self._learned().values():
            if isinstance(value, Tensor):
                return value.device
            if isinstance(value, nn.Module):
                for tensor in itertools.chain(value.parameters(), value.buffers()):
                    return tensor.device
        raise NotImplementedError(f"{type(self).__name__} holds no learned tensor; "
                                  f"define its device property")

    def is_fitted(self) -> bool:
        """Whether ``fit`` or ``load_state_dict`` has set learned state (scikit-learn's rule:
        an attribute with a trailing underscore)."""
        return bool(self._learned())

    def check_is_fitted(self) -> None:
        """Raise a clear :class:`GZSLError` when the model has no learned state yet."""
        if not self.is_fitted():
            from gzsl.data.errors import GZSLError

            raise GZSLError(f"{self.name} is not fitted: call fit() first, or "
                            f"Generator.load() a saved model")

    def _learned(self) -> dict[str, Any]:
        """Learned attributes (trailing underscore), in the order they were set."""
        return {key: value for key, value in vars(self).items()
                if key.endswith("_") and not key.startswith("__") and value is not None}

    def _networks(self) -> list[nn.Module]:
        """The learned ``nn.Module`` attributes."""
        return [value for value in self._learned().values() if isinstance(value, nn.Module)]

    def _to(self, device: torch.device | str) -> None:
        """Move every learned module to ``device``."""
        for module in self._networks():
            module.to(device)

    def _set_training(self, mode: bool) -> None:
        """Train (``True``) or eval mode for every learned module."""
        for module in self._networks():
            module.train(mode)

    @contextlib.contextmanager
    def _eval_mode(self) -> Iterator[None]:
        """Eval mode inside the block, each module's previous mode restored after."""
        modes = [(module, module.training) for module in self._networks()]
        self._set_training(False)
        try:
            yield
        finally:
            for module, mode in modes:
                module.train(mode)

    @contextlib.contextmanager
    def _evaluating(self) -> Iterator[None]:
        """Eval mode and no autograd, for synthesis; the previous modes restored after."""
        with self._eval_mode(), torch.no_grad():
            yield

    def _training_log(self, schedule: CheckpointSchedule | None, *, total: int,
                      loss_names: tuple[str, ...] | list[str], device: torch.device,
                      rng: torch.Generator, optimisers: dict[str, Any],
                      epoch: Callable[[int], float], start: int = 0) -> TrainingLog:
        """The bookkeeping of a fit loop of ``total`` steps, ``start`` of them done before
        (with a progress bar as ``self.progress`` says); see :class:`TrainingLog`."""
        return TrainingLog(self, schedule, total=total, loss_names=tuple(loss_names),
                           device=device, rng=rng, optimisers=optimisers, epoch=epoch,
                           start=start, progress=self.progress)

    def _training_state(self, rng: torch.Generator, optimisers: dict[str, Any],
                        **loop: Any) -> dict[str, Any]:
        """Model, optimiser / scheduler states, random state and loop position, live."""
        return {"method": self.name, "model": self.state_dict(), "rng": rng.get_state(),
                "optimisers": {name: value.state_dict() for name, value in optimisers.items()},
                "loop": loop}

    def _resume_model(self, state: dict[str, Any], rng: torch.Generator,
                      device: torch.device) -> dict[str, Any]:
        """Rebuild the model and set ``rng`` from a training state; returns its loop position."""
        if state.get("method") != self.name:
            from gzsl.data.errors import GZSLError

            raise GZSLError(f"cannot resume {self.name} from a training state of "
                            f"{state.get('method')!r}")
        self.load_state_dict(state["model"], device=device)
        rng.set_state(state["rng"])
        return state["loop"]

    @staticmethod
    def _resume_optimisers(state: dict[str, Any], optimisers: dict[str, Any]) -> None:
        """Load optimiser / scheduler states saved by :meth:`_training_state`."""
        for name, value in optimisers.items():
            value.load_state_dict(state["optimisers"][name])

    def save(self, path: str | Path) -> None:
        """Write config and learned state to ``path`` (a torch file, loadable on any device)."""
        blob = {"method": self.name, "config": dataclasses.asdict(self.config),
                "state": cpu_copy(self.state_dict())}
        atomic_torch_save(blob, Path(path))

    @staticmethod
    def load(path: str | Path, device: torch.device | str = "cpu") -> Generator:
        """Rebuild a fitted generator saved by :meth:`save`, on ``device``; the global
        random state is left as it was."""
        blob = torch.load(Path(path), map_location="cpu", weights_only=True)
        cls = get_method(blob["method"])
        model = cls(config_from_dict(cls.Config, upgrade_saved_settings(cls.name, blob["config"])))
        with torch.random.fork_rng(devices=[]):  # rebuilding modules must not move it
            return model.load_state_dict(blob["state"], device=device)


class TrainingLog:
    """Per-step bookkeeping of a fit loop, the same for every method.

    Each :meth:`step` adds the step's loss terms to running sums on the device (read, one
    sync, only at checkpoints and, when the schedule asks for loss windows, at each
    window's end) and advances the progress bar. When ``schedule`` is due at that
    iteration, and at the last one, it builds the :class:`Checkpoint` (iteration, epoch,
    the mean of each loss term since the previous checkpoint, and a snapshot of the
    training state at ``position``), calls the callback with the model's modules in eval
    mode (autograd stays on, for the experiment layer's classifier), and returns True when
    the callback asks to stop. Use it as a context manager, so the progress bar closes.

    The bar is named by ``schedule.label`` (the model's name without one); its ETA is
    :class:`Pace`'s, which counts the time the callbacks take at the checkpoints still to
    come.
    """

    def __init__(self, model: Generator, schedule: CheckpointSchedule | None, *, total: int,
                 loss_names: tuple[str, ...], device: torch.device, rng: torch.Generator,
                 optimisers: dict[str, Any], epoch: Callable[[int], float], start: int = 0,
                 progress: bool | None = None) -> None:
        from tqdm.auto import tqdm

        self.model, self.total, self.loss_names = model, total, loss_names
        self.rng, self.optimisers, self.epoch = rng, optimisers, epoch
        self.callback = schedule.callback if schedule is not None else None
        self.schedule = schedule
        self.device = device
        self.on_losses = schedule.on_losses if schedule is not None else None
        self.losses_every = max(1, schedule.losses_every) if schedule is not None else 1
        self.label = (schedule.label if schedule is not None else None) or model.name
        self.pace = Pace(total, start, schedule)
        self.bar = tqdm(total=total, initial=start, disable=not show_progress(progress),
                        desc=self.label, leave=False, bar_format=BAR_FORMAT)
        self.bar.set_postfix_str(self.pace.eta_text(), refresh=False)
        self._reset()
        self._reset_window()

    def _reset(self) -> None:
        self.sums = torch.zeros(len(self.loss_names), device=self.device)
        self.count = 0

    def _reset_window(self) -> None:
        self.window = torch.zeros(len(self.loss_names), device=self.device)
        self.window_count = 0

    def __enter__(self) -> TrainingLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def due(self, iteration: int) -> bool:
        """Whether ``iteration`` ends with a checkpoint."""
        return self.callback is not None and self.schedule is not None and (
            self.schedule.due(iteration) or iteration == self.total)

    def step(self, iteration: int, losses: Tensor, /, **position: Any) -> bool:
        """Record one optimiser step's ``losses`` (one value per loss name, in order);
        at a checkpoint call back. Returns True when training should stop."""
        losses = losses.detach()
        self.sums = self.sums + losses
        self.count += 1
        due = self.due(iteration)
        if self.on_losses is not None:
            self.window = self.window + losses
            self.window_count += 1
            if due or iteration % self.losses_every == 0 or iteration == self.total:
                means = (self.window / self.window_count).tolist()
                self.on_losses(iteration, self.window_count,
                               dict(zip(self.loss_names, means, strict=True)))
                self._reset_window()
        self.pace.step(iteration)
        if not self.bar.disable:
            self.bar.set_postfix_str(self.pace.eta_text(), refresh=False)
            self.bar.update()
        if not due:
            return False
        means = (self.sums / self.count).tolist()
        snapshot = functools.partial(self.model._training_state, self.rng, self.optimisers,
                                     **position)
        checkpoint = Checkpoint(iteration, self.epoch(iteration),
                                dict(zip(self.loss_names, means, strict=True)),
                                snapshot=snapshot)
        self._reset()
        assert self.callback is not None
        scoring = self.pace.scored(iteration)
        if scoring and not self.bar.disable:
            self.bar.set_description_str(f"{self.label}: scoring iteration {iteration}")
        with self.model._eval_mode(), self.pace.checkpoint(iteration):
            stop = bool(self.callback(checkpoint))
        if not self.bar.disable:
            self.bar.set_description_str(self.label, refresh=False)
            self.bar.set_postfix_str(self.pace.eta_text())
        return stop


#: The training bar: phase, share, bar, iterations, elapsed and :class:`Pace`'s ETA.
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"


class Pace:
    """The ETA of a fit whose checkpoints may be costly: training steps at their own
    pace, plus the checkpoints still to come at the time checkpoints took so far.

    Checkpoints at or after ``schedule.scored_from`` are "scored" (the callback evaluates
    the model) and timed apart from the others (which only record); the time spent in
    callbacks is left out of the training pace. Before any scored checkpoint has been
    timed, the estimate covers training only and says that scoring comes on top.
    """

    def __init__(self, total: int, start: int, schedule: CheckpointSchedule | None,
                 clock: Callable[[], float] | None = None) -> None:
        import time

        self.total, self.start, self.schedule = total, start, schedule
        self.clock = clock or time.perf_counter
        self.iteration = start
        self.started = self.clock()
        self.callback_seconds = 0.0
        self.timed: dict[bool, list[float]] = {True: [], False: []}

    def scored(self, iteration: int) -> bool:
        """Whether the checkpoint at ``iteration`` does costly work."""
        start = None if self.schedule is None else self.schedule.scored_from
        return start is not None and (iteration >= start or iteration == self.total)

    def step(self, iteration: int) -> None:
        self.iteration = iteration

    @contextlib.contextmanager
    def checkpoint(self, iteration: int) -> Iterator[None]:
        """Time the block as the checkpoint at ``iteration``."""
        began = self.clock()
        try:
            yield
        finally:
            seconds = self.clock() - began
            self.callback_seconds += seconds
            self.timed[self.scored(iteration)].append(seconds)

    def checkpoints_left(self) -> tuple[int, int]:
        """Checkpoints after the current iteration: (scored, not scored)."""
        schedule = self.schedule
        if schedule is None or schedule.callback is None or self.total <= self.iteration:
            return 0, 0
        every, total = max(1, schedule.every), self.total

        def multiples(low: int, high: int) -> int:
            return 0 if high < low else high // every - (low - 1) // every

        low = max(self.iteration + 1, schedule.after, 1)
        extra = {i for i in (*schedule.at, total) if self.iteration < i <= total
                 and not (i >= low and i % every == 0)}
        threshold = schedule.scored_from
        if threshold is None:
            return 0, multiples(low, total) + len(extra)
        scored = multiples(max(low, threshold), total)
        plain = multiples(low, min(total, threshold - 1))
        if total < threshold and total >= low and total % every == 0:
            scored, plain = scored + 1, plain - 1  # the last checkpoint is always scored
        for i in extra:
            if self.scored(i):
                scored += 1
            else:
                plain += 1
        return scored, plain

    def eta(self) -> tuple[float, bool] | None:
        """Seconds left and whether scoring still to come is left out (not yet timed);
        None before the first step."""
        done = self.iteration - self.start
        if done <= 0:
            return None
        training = max(0.0, self.clock() - self.started - self.callback_seconds)
        seconds = training / done * (self.total - self.iteration)
        scored, plain = self.checkpoints_left()
        for costly, count in ((True, scored), (False, plain)):
            if count and self.timed[costly]:
                seconds += count * sum(self.timed[costly]) / len(self.timed[costly])
        return seconds, bool(scored) and not self.timed[True]

    def eta_text(self) -> str:
        """``ETA 3m07s``, ``ETA 3m07s + scoring`` (scoring not timed yet) or ``ETA ?``."""
        estimate = self.eta()
        if estimate is None:
            return "ETA ?"
        seconds, untimed = estimate
        return f"ETA {duration(seconds)}" + (" + scoring" if untimed else "")


def _wrap_fit(fit: Callable[..., Generator]) -> Callable[..., Generator]:
    @functools.wraps(fit)
    def wrapped(self: Generator, data: SeenData, *, rng: torch.Generator,
                **options: Any) -> Generator:
        return fit(self, data, rng=rng_on(rng, data.device), **options)

    wrapped._gzsl_wrapped = True  # type: ignore[attr-defined]
    return wrapped


def _wrap_sample(sample: Callable[..., Tensor]) -> Callable[..., Tensor]:
    @functools.wraps(sample)
    def wrapped(self: Generator, semantics: Tensor, n_per_class: int, *,
                rng: torch.Generator | None = None, **options: Any) -> Tensor:
        self.check_is_fitted()
        if rng is not None:
            rng = rng_on(rng, self.device)
        return sample(self, semantics, n_per_class, rng=rng, **options)

    wrapped._gzsl_wrapped = True  # type: ignore[attr-defined]
    return wrapped


def _wrap_fitted(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapped(self: Generator, *args: Any, **kwargs: Any) -> Any:
        self.check_is_fitted()
        return method(self, *args, **kwargs)

    wrapped._gzsl_wrapped = True  # type: ignore[attr-defined]
    return wrapped


_REGISTRY: dict[str, type[Generator]] = {}


def register(cls: type[Generator]) -> type[Generator]:
    """Class decorator adding a method to the registry under ``cls.name``."""
    if cls.name in _REGISTRY:
        raise ValueError(f"method {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


#: Entry-point group through which other packages add methods (docs/adding-a-method.md).
ENTRY_POINT_GROUP = "gzsl.methods"


def available_methods() -> dict[str, type[Generator]]:
    """Registered methods by name: the built-ins, and those of installed packages that
    declare a ``gzsl.methods`` entry point (loaded once, on first use)."""
    import gzsl.methods  # noqa: F401  (registers built-in methods)

    _load_plugins()
    return dict(sorted(_REGISTRY.items()))


@functools.cache
def _load_plugins() -> None:
    """Import every ``gzsl.methods`` entry point once; a broken one is a clear user error."""
    from importlib.metadata import entry_points

    from gzsl.data.errors import GZSLError

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()
        except Exception as error:  # any import failure of a third-party package
            raise GZSLError(f"the method plugin {entry.name!r} ({entry.value}) failed to "
                            f"load: {error!r}") from error
        if not (isinstance(loaded, type) and issubclass(loaded, Generator)):
            raise GZSLError(f"the method plugin {entry.name!r} ({entry.value}) is not a "
                            f"gzsl Generator subclass")
        known = _REGISTRY.get(loaded.name)
        if known is None:
            register(loaded)
        elif known is not loaded:
            raise GZSLError(f"the method plugin {entry.name!r} ({entry.value}) takes the "
                            f"name {loaded.name!r} of another method")


def get_method(name: str) -> type[Generator]:
    """The method class registered as ``name``; a clear error listing the choices otherwise."""
    from gzsl.data.errors import GZSLError

    methods = available_methods()
    if name.lower() not in methods:
        raise GZSLError(f"unknown method {name!r}; available: {', '.join(methods)}")
    return methods[name.lower()]


@contextlib.contextmanager
def seeded_init(rng: torch.Generator) -> Iterator[None]:
    """Make module construction inside the block deterministic given ``rng``.

    ``nn.Module`` initialisers draw from the global RNG; this forks it, seeds it from
    ``rng`` and restores it afterwards, so a method's weights depend only on the
    generator it was given.
    """
    seed = int(torch.randint(0, 2**62, (1,), generator=rng, device=rng.device))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def show_progress(setting: bool | None) -> bool:
    """A method's ``progress`` setting resolved: ``None`` means "when stderr is a terminal"."""
    return sys.stderr.isatty() if setting is None else bool(setting)


@contextlib.contextmanager
def deterministic_algorithms() -> Iterator[None]:
    """Run the block with PyTorch's deterministic kernels, restoring the setting after.

    With more than one CPU thread some kernels (accumulating index writes in backward
    passes, for instance) add in a thread-dependent order, so two runs with one seed drift
    apart; this makes them identical. On CUDA, kernels without a deterministic version only
    warn (``warn_only``), and cuBLAS gets the workspace setting it needs when none is set.
    """
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)


#: Set this environment variable to 1 to lift the upper bounds of budget settings.
LIFT_BUDGET_BOUNDS = "GZSL_LIFT_BUDGET_BOUNDS"


@dataclass(frozen=True)
class Range:
    """A declared bound on a number (or on every number of a tuple) of a settings dataclass.

    ``low`` / ``high`` are inclusive unless ``low_open`` / ``high_open``. A ``budget``
    bound's ``high`` catches absurd run lengths (a typo of ``10**9`` epochs runs until
    killed); it is lifted by setting the environment variable :data:`LIFT_BUDGET_BOUNDS`.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    budget: bool = False

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value``, or None when it is within the range."""
        if isinstance(value, tuple):
            return next((p for p in map(self.problem, value) if p is not None), None)
        below = self.low is not None and (value <= self.low if self.low_open
                                          else value < self.low)
        above = self.high is not None and (value >= self.high if self.high_open
                                           else value > self.high)
        if above and self.budget and os.environ.get(LIFT_BUDGET_BOUNDS) == "1":
            above = False
        if not (below or above):
            return None
        if self.low is not None and self.high is not None and not self.budget:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"must be in {left}{self.low:g}, {self.high:g}{right}"
        if below:
            return f"must be {'>' if self.low_open else '>='} {self.low:g}"
        rule = f"must be {'<' if self.high_open else '<='} {self.high:g}"
        if self.budget:
            rule += (f" (a budget bound against typos; set the environment variable "
                     f"{LIFT_BUDGET_BOUNDS}=1 to go beyond it)")
        return rule


@dataclass(frozen=True)
class OneOf:
    """A declared set of valid values of a string setting."""

    choices: tuple[str, ...]

    def problem(self, value: Any) -> str | None:
        return None if value in self.choices else f"must be one of {', '.join(self.choices)}"


@dataclass(frozen=True)
class NonEmpty:
    """A tuple setting that needs at least one element."""

    def problem(self, value: Any) -> str | None:
        return None if len(value) else "must not be empty"


#: Declarations for the settings tables (``Annotated[int, COUNT]`` and so on).
COUNT = Range(1)
NON_NEGATIVE = Range(0)
POSITIVE = Range(0, low_open=True)
PROBABILITY = Range(0, 1)
FRACTION = Range(0, 1, high_open=True)


class Settings:
    """Base of settings dataclasses: every construction checks the declared table.

    A field's type (``int``, ``float``, ``bool``, ``str``, ``Literal``, ``X | None``,
    ``tuple[...]``) and the :class:`Range` / :class:`OneOf` / :class:`NonEmpty` markers
    in its ``Annotated`` type are checked by :func:`check_settings`, the one place that
    validates settings; no config class writes its own checks.
    """

    def __post_init__(self) -> None:
        check_settings(type(self), {f.name: getattr(self, f.name)
                                    for f in dataclasses.fields(self)})  # type: ignore[arg-type]


def check_settings(config_cls: type, values: dict[str, Any], section: str | None = None) -> None:
    """Check ``values`` against ``config_cls``'s declared types and constraints.

    Raises a one-line :class:`GZSLError` naming ``section.key`` (the class name when no
    section is given), the value and what was expected. Integers are accepted for floats;
    booleans are not accepted as numbers.
    """
    from gzsl.data.errors import GZSLError

    hints = get_type_hints(config_cls, include_extras=True)
    where = f"{section or config_cls.__name__}."
    for key, value in values.items():
        hint = hints.get(key)
        if hint is None:
            continue
        base, marks = (hint.__origin__, hint.__metadata__) if get_origin(hint) is Annotated \
            else (hint, ())
        expected = _type_problem(base, value)
        if expected is not None:
            raise GZSLError(f"invalid setting {where}{key}={value!r}: expected {expected}")
        if value is None:
            continue
        for mark in marks:
            problem = mark.problem(value)
            if problem is not None:
                raise GZSLError(f"invalid setting {where}{key}={value!r}: {problem}")


_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _type_problem(hint: Any, value: Any) -> str | None:
    """None when ``value`` fits ``hint``, else a description of what was expected."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Annotated:
        return _type_problem(args[0], value)
    if hint is Any or hint is object:
        return None
    if origin is Literal:
        return None if value in args else f"one of {', '.join(map(str, args))}"
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        problems = [_type_problem(a, value) for a in options]
        if any(p is None for p in problems):
            return None
        return " or ".join(problems) + (" or none" if type(None) in args else "")
    if origin is tuple:
        if not isinstance(value, tuple):
            return _sequence_name(args)
        if len(args) == 2 and args[1] is Ellipsis:
            element_types = [args[0]] * len(value)
        elif len(args) != len(value):
            return _sequence_name(args)
        else:
            element_types = list(args)
        if any(_type_problem(t, v) is not None for t, v in zip(element_types, value,
                                                                 strict=True)):
            return _sequence_name(args)
        return None
    if hint is bool:
        return None if isinstance(value, bool) else _NAMES[bool]
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else _NAMES[int]
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else _NAMES[float]
    if hint is str:
        return None if isinstance(value, str) else _NAMES[str]
    return None


def _sequence_name(args: tuple[Any, ...]) -> str:
    if len(args) == 2 and args[1] is Ellipsis:
        return f"a list of {_plural(args[0])}"
    return f"a list of {len(args)} {_plural(args[0])}"


def _plural(hint: Any) -> str:
    base = get_args(hint)[0] if get_origin(hint) is Annotated else hint
    return {int: "integers", float: "numbers", str: "strings", bool: "booleans"}.get(
        base, str(base))


#: Method settings renamed (old -> new name) or moved out of the saved settings (old ->
#: None: a run-time option now) since runs were first saved, per method. Applied by
#: :func:`upgrade_saved_settings` to every saved configuration read back (``config.json``,
#: ``generator.pt``), so runs saved before a rename still load, resume and compare.
RENAMED_SETTINGS: dict[str, dict[str, str | None]] = {
    "gsmflow": {"temperature": "sample_noise_std", "synthesis_chunk": None, "progress": None},
    "vaecflow": {"learning_rate": "lr", "synthesis_chunk": None, "progress": None},
    "amaz": {"adam_betas": "betas", "sample_batch": None, "progress": None},
}


def upgrade_saved_settings(method: str, values: dict[str, Any]) -> dict[str, Any]:
    """``method``'s saved settings ``values`` under today's names (see
    :data:`RENAMED_SETTINGS`); a value saved under both names keeps the new one."""
    renamed = RENAMED_SETTINGS.get(method, {})
    upgraded = {key: value for key, value in values.items() if key not in renamed}
    for old, new in renamed.items():
        if old in values and new is not None:
            upgraded.setdefault(new, values[old])
    return upgraded


def config_from_dict(config_cls: type, values: dict[str, Any], section: str | None = None) -> Any:
    """Build a config dataclass from plain values (lists become tuples where typed so).

    Unknown keys raise a :class:`GZSLError` naming the valid ones, so a typo in a preset
    or a ``--set`` never passes silently; wrong types and values outside the declared
    constraints raise one naming ``section.key`` (:func:`check_settings`).
    """
    from gzsl.data.errors import GZSLError

    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        where = f" in [{section}]" if section else ""
        raise GZSLError(f"unknown setting(s) {', '.join(unknown)}{where} for "
                        f"{config_cls.__name__}; valid: {', '.join(sorted(names))}")
    hints = get_type_hints(config_cls)
    clean = {}
    for key, value in values.items():
        if isinstance(value, list) and "tuple" in str(hints.get(key, "")):
            value = tuple(value)
        clean[key] = value
    check_settings(config_cls, clean, section)
    return config_cls(**clean)


def cpu_copy(value: Any) -> Any:
    """A copy of nested dicts / lists / tuples with every tensor detached and on the CPU.

    Always copies, so a snapshot of a CPU model's state does not follow later updates.
    """
    if isinstance(value, Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: cpu_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(cpu_copy(v) for v in value)
    return value


def rng_on(rng: torch.Generator, device: torch.device) -> torch.Generator:
    """``rng`` if it lives on ``device``, else a generator there seeded from it.

    ``cuda`` and ``cuda:0`` count as one device (an unindexed device is the current one).
    """
    have, want = torch.device(rng.device), torch.device(device)
    if have.type == want.type and None in (have.index, want.index) or have == want:
        return rng
    seed = int(torch.randint(0, 2**62, (1,), generator=rng, device=rng.device))
    return torch.Generator(device=device).manual_seed(seed)


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` atomically: a killed run never leaves half a file."""
    atomic_write(path, lambda handle: torch.save(obj, handle))
