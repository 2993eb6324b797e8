"""Progress lines for logs: what a run is doing, how far it is, and when it should end.

A terminal shows the methods' progress bars; a log file (SLURM, nohup, a redirect) gets
nothing from them. While a :func:`reporting` block is active, the runner tells the
reporter where each phase stands (:class:`~gzsl.experiments.runner.Experiment` calls it
at every training iteration, checkpoint and evaluation), and the reporter writes a line
when a minute has passed or another tenth of the phase is done:

    validation task: iteration 1200/4400 (27%), losses flow 0.41 prototype 0.08,
    elapsed 1m05s, ETA 2m53s

The ETA is the phase's remaining iterations at the phase's rate so far, checkpoint
scoring included. The CLI turns it on when stderr is not a terminal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from gzsl.methods.base import CheckpointSchedule
from gzsl.utils import duration

PHASE_NAMES = {"validation": "validation task", "final": "final task"}


class ProgressReporter:
    """Writes a line to ``stream`` every ``every_seconds`` or ``every_fraction`` of a phase.

    Args:
        stream: where lines go (default: stderr).
        every_seconds: longest silence while training.
        every_fraction: share of a phase's iterations between lines.
        clock: seconds, monotonic (tests pass a fake one).
    """

    def __init__(self, stream: TextIO | None = None, *, every_seconds: float = 60.0,
                 every_fraction: float = 0.1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.every_seconds = every_seconds
        self.every_fraction = every_fraction
        self.clock = clock
        self.phase = ""
        self.training = False
        self.total = 0
        self.start_iteration = 0
        self.iteration = 0
        self.losses: dict[str, float] = {}
        self._phase_started = self._last_time = clock()
        self._last_fraction = 0.0
        self._run_started = clock()

    def write(self, line: str) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        print(line, file=stream, flush=True)

    def start_phase(self, name: str, total: int, start: int = 0) -> None:
        """A phase's training begins (or resumes after iteration ``start``)."""
        self.phase = PHASE_NAMES.get(name, name)
        self.total, self.start_iteration, self.iteration = total, start, start
        self.losses = {}
        self._phase_started = self._last_time = self.clock()
        self._last_fraction = start / total if total else 0.0
        resumed = f", resuming after iteration {start}" if start else ""
        self.write(f"{self.phase}: training, {total} iterations{resumed}")

    def step(self, iteration: int) -> None:
        """Training reached ``iteration``; writes a line when one is due."""
        self.iteration = iteration
        now = self.clock()
        fraction = iteration / self.total if self.total else 1.0
        if (now - self._last_time >= self.every_seconds
                or fraction - self._last_fraction >= self.every_fraction):
            self._last_time, self._last_fraction = now, fraction
            self.write(self.status())

    def window(self, means: dict[str, float]) -> None:
        """The latest loss window's means (``losses.csv``): the losses the next line shows."""
        self.losses = dict(means)

    def checkpoint(self, row: dict[str, Any]) -> None:
        """A checkpoint's row: remember its losses; write its scores when it has them."""
        self.losses = {k.removeprefix("loss_"): float(v) for k, v in row.items()
                       if k.startswith("loss_")}
        if row.get("H") is not None:
            self._last_time = self.clock()
            self.write(f"{self.phase}: scored iteration {row['iteration']}/{self.total}: "
                       f"U {row['U']:.1f} S {row['S']:.1f} H {row['H']:.1f} "
                       f"(n_synthetic {row.get('n_synthetic')}), "
                       f"elapsed {duration(self.clock() - self._run_started)}")

    def evaluation(self, n_synthetic: int) -> None:
        """A phase's final evaluation (classifier on the chosen generator) begins."""
        self._last_time = self.clock()
        self.write(f"{self.phase}: evaluation, final classifier on {n_synthetic} synthetic "
                   f"features per unseen class, elapsed "
                   f"{duration(self.clock() - self._run_started)}")

    def status(self) -> str:
        """The current phase, iteration, last losses, elapsed time and the phase's ETA."""
        now = self.clock()
        done = self.iteration - self.start_iteration
        percent = 100 * self.iteration / self.total if self.total else 100.0
        parts = [f"{self.phase}: iteration {self.iteration}/{self.total} ({percent:.0f}%)"]
        if self.losses:
            parts.append("losses " + " ".join(f"{k} {v:.4g}" for k, v in self.losses.items()))
        parts.append(f"elapsed {duration(now - self._run_started)}")
        if done > 0:
            rate = (now - self._phase_started) / done
            parts.append(f"ETA {duration(rate * (self.total - self.iteration))}")
        return ", ".join(parts)


#: A CPU run whose training alone looks longer than this gets a :class:`LongRunNote`.
LONG_RUN_SECONDS = 10 * 60


#: What :func:`long_run_note` suggests instead, for runs of the small preset and others.
SMALLER = {True: "For a shorter run, lower its budget with --set (e.g. method.epochs or "
                 "method.iterations), or use a GPU (--device cuda)",
           False: "For a run of minutes on your own data, stop it (Ctrl-C) and train with "
                  "--preset small, or use a GPU (--device cuda)"}


def long_run_note(iterations: int, seconds_per_iteration: float, measured: int,
                  small: bool = False, upper: bool = False) -> str:
    """The note for a long CPU run: its iterations (``upper``: at most that many), the
    time they take at the pace of the first ``measured`` ones, and the alternative (the
    small preset, unless ``small``: the run already uses it)."""
    return (f"note: this run trains {'up to ' if upper else ''}{iterations:,} iterations on "
            f"the CPU, about "
            f"{duration(iterations * seconds_per_iteration)} at the pace of its first "
            f"{measured} ({seconds_per_iteration:.3g} s each; checkpoint scoring comes on "
            f"top). {SMALLER[small]}")


class LongRunNote:
    """Times the first steps of a run's training and, when all its ``iterations`` would
    take more than ``threshold`` seconds (default :data:`LONG_RUN_SECONDS`) at that pace,
    writes :func:`long_run_note` once.

    It only watches the clock while training runs (no extra work, no random draw), so a
    run's results are the same with or without it. The pace is measured from the first
    step it sees (leaving out set-up) over ``steps`` steps, or over the steps done once
    ``seconds`` have passed when steps are slow.
    """

    def __init__(self, iterations: int, log: Callable[[str], None], *,
                 threshold: float | None = None, steps: int = 10, seconds: float = 20.0,
                 small: bool = False, upper: bool = False,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.iterations, self.log, self.small, self.upper = iterations, log, small, upper
        self.threshold = LONG_RUN_SECONDS if threshold is None else threshold
        self.steps, self.seconds, self.clock = steps, seconds, clock
        self.started: float | None = None
        self.measured = 0
        self.done = False

    def step(self, iteration: int) -> None:
        """Training took another step (``iteration`` of its phase)."""
        if self.done:
            return
        now = self.clock()
        if self.started is None:
            self.started = now
            return
        self.measured += 1
        elapsed = now - self.started
        if self.measured < self.steps and elapsed < self.seconds:
            return
        self.done = True
        pace = elapsed / self.measured
        if self.iterations * pace >= self.threshold:
            self.log(long_run_note(self.iterations, pace, self.measured, self.small,
                                   self.upper))


@dataclass(frozen=True)
class _ReportingSchedule(CheckpointSchedule):
    """A checkpoint schedule that also tells the reporter and the watchers each iteration
    it is asked about (a method's training log asks at every optimiser step)."""

    reporter: ProgressReporter | None = None
    watchers: tuple[Callable[[int], None], ...] = ()

    def due(self, iteration: int) -> bool:
        if self.reporter is not None:
            self.reporter.step(iteration)
        for watch in self.watchers:
            watch(iteration)
        return super().due(iteration)


_active: ProgressReporter | None = None


def active() -> ProgressReporter | None:
    """The reporter of the enclosing :func:`reporting` block, if any."""
    return _active


@contextlib.contextmanager
def reporting(reporter: ProgressReporter | None) -> Iterator[ProgressReporter | None]:
    """Runs inside the block report to ``reporter`` (None: no progress lines)."""
    global _active
    previous, _active = _active, reporter
    try:
        yield reporter
    finally:
        _active = previous


@contextlib.contextmanager
def training(name: str, total: int, resume: dict[str, Any] | None,
             schedule: CheckpointSchedule,
             watchers: tuple[Callable[[int], None], ...] = ()) -> Iterator[CheckpointSchedule]:
    """Around a phase's ``fit``: the schedule to pass it, telling the active reporter and
    ``watchers`` each iteration (``schedule`` itself when there is neither)."""
    reporter = _active
    if reporter is None and not watchers:
        yield schedule
        return
    fields = {f.name: getattr(schedule, f.name) for f in dataclasses.fields(schedule)}
    if reporter is None:
        yield _ReportingSchedule(**fields, watchers=watchers)
        return
    start = int(resume["loop"]["iteration"]) if resume else 0
    reporter.start_phase(name, total, start)
    reporter.training = True
    try:
        yield _ReportingSchedule(**fields, reporter=reporter, watchers=watchers)
    finally:
        reporter.training = False


def for_stderr() -> ProgressReporter | None:
    """A reporter when stderr is not a terminal (a log file); None in a terminal."""
    return None if sys.stderr.isatty() else ProgressReporter()
