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

PHASE_NAMES = {"validation": "validation task", "final": "final task"}


def duration(seconds: float) -> str:
    """``45s``, ``3m07s`` or ``2h05m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


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


@dataclass(frozen=True)
class _ReportingSchedule(CheckpointSchedule):
    """A checkpoint schedule that also tells the reporter each iteration it is asked about
    (a method's training log asks at every optimiser step)."""

    reporter: ProgressReporter | None = None

    def due(self, iteration: int) -> bool:
        if self.reporter is not None:
            self.reporter.step(iteration)
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
             schedule: CheckpointSchedule) -> Iterator[CheckpointSchedule]:
    """Around a phase's ``fit``: the schedule to pass it, reporting each iteration when a
    reporter is active (``schedule`` itself otherwise)."""
    reporter = _active
    if reporter is None:
        yield schedule
        return
    start = int(resume["loop"]["iteration"]) if resume else 0
    reporter.start_phase(name, total, start)
    reporter.training = True
    try:
        yield _ReportingSchedule(**{f.name: getattr(schedule, f.name)
                                    for f in dataclasses.fields(schedule)}, reporter=reporter)
    finally:
        reporter.training = False


def for_stderr() -> ProgressReporter | None:
    """A reporter when stderr is not a terminal (a log file); None in a terminal."""
    return None if sys.stderr.isatty() else ProgressReporter()
