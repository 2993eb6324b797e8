"""Progress lines in logs: phase, iteration, losses, elapsed, ETA; and a SIGTERM'd CLI run."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time

from conftest import invoke_cli, make_tiny_dataset

from gzsl.data.io import save_npz
from gzsl.experiments import progress
from gzsl.experiments.config import resolve
from gzsl.experiments.progress import ProgressReporter, duration
from gzsl.experiments.rundir import RESUME
from gzsl.experiments.runner import run_experiment

TINY = ("method.epochs=4", "method.hidden_dim=16", "method.global_semantic_dim=8",
        "method.batch_size=32", "evaluation.checkpoint_every=3",
        "evaluation.checkpoint_after=7", "evaluation.n_synthetic=20",
        "evaluation.classifier_epochs=2", "evaluation.classifier_batch_size=32",
        "evaluation.n_synthetic_grid=[1]")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_duration_reads_as_seconds_minutes_or_hours():
    assert [duration(s) for s in (4.4, 187, 7500)] == ["4s", "3m07s", "2h05m"]


def test_a_line_every_minute_or_every_tenth_with_losses_elapsed_and_eta():
    stream, clock = io.StringIO(), FakeClock()
    reporter = ProgressReporter(stream, every_seconds=60, every_fraction=0.1, clock=clock)
    reporter.start_phase("validation", total=1000)
    for iteration in range(1, 51):  # 5 % in 50 s: nothing yet
        clock.now += 1
        reporter.step(iteration)
    reporter.checkpoint({"phase": "validation", "iteration": 50, "loss_flow": 0.5})
    assert stream.getvalue().splitlines() == ["validation task: training, 1000 iterations"]
    for iteration in range(51, 61):  # a minute has passed
        clock.now += 1
        reporter.step(iteration)
    lines = stream.getvalue().splitlines()
    assert lines[-1] == ("validation task: iteration 60/1000 (6%), losses flow 0.5, "
                         "elapsed 1m00s, ETA 15m40s")
    clock.now += 1
    reporter.step(160)  # another tenth, well within the minute
    assert stream.getvalue().splitlines()[-1].startswith("validation task: iteration 160/1000")
    assert len(stream.getvalue().splitlines()) == 3


def test_a_run_reports_each_phase_its_scores_and_the_final_evaluation(tmp_path):
    config = resolve("gsmflow", "tiny", overrides=TINY, selection="val", device="cpu")
    stream = io.StringIO()
    with progress.reporting(ProgressReporter(stream, every_seconds=1e9, every_fraction=0.25)):
        run_experiment(config, data=make_tiny_dataset())
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("validation task: training,")
    assert any(line.startswith("validation task: iteration") and "ETA" in line
               and "losses" in line for line in lines)
    first = next(line for line in lines if line.startswith("validation task: iteration"))
    assert "losses nll" in first  # the latest loss window's, before any checkpoint
    assert any(line.startswith("validation task: scored iteration") for line in lines)
    assert any(line.startswith("final task: training,") for line in lines)
    assert lines[-1].startswith("final task: evaluation, final classifier on")
    assert progress.active() is None


def _gzsl(*args: str) -> list[str]:
    code = "import sys; from gzsl.cli import main; sys.argv = ['gzsl', *sys.argv[1:]]; main()"
    return [sys.executable, "-c", code, *args]


def test_sigterm_stops_a_cli_run_cleanly_with_the_resume_hint_and_it_resumes(tmp_path):
    save_npz(make_tiny_dataset(), tmp_path / "tiny.npz")
    settings = [arg for setting in ("method.epochs=12", *TINY[1:])
                for arg in ("--set", setting)]
    cut = tmp_path / "cut"
    process = subprocess.Popen(
        _gzsl("train", "gsmflow", "tiny", "--root", str(tmp_path / "tiny.npz"), "--device",
              "cpu", "--selection", "final", *settings, "--out", str(cut)),
        env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (cut / RESUME).exists() and process.poll() is None:
            assert time.monotonic() < deadline, "the run never saved a checkpoint"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert f"interrupted: continue with `gzsl train --resume {cut}`" in stderr
    assert "Traceback" not in stderr
    assert "final task: training" in stderr  # progress lines: stderr is a pipe
    assert not (cut / "results.json").exists()
    resumed = invoke_cli("train", "--resume", str(cut))
    assert resumed.exit_code == 0, resumed.output
    assert "resuming" in resumed.output and (cut / "results.json").exists()


def test_long_run_note_names_iterations_time_how_it_was_measured_and_the_small_preset():
    note = progress.long_run_note(184_000, 0.5, 10, upper=True)
    assert note.startswith("note: this run trains up to 184,000 iterations on the CPU, "
                           "about 25h33m at the pace of its first 10 (0.5 s each;")
    assert progress.long_run_note(2000, 1.0, 10).startswith("note: this run trains 2,000 "
                                                            "iterations on the CPU, about 33m20s")
    assert "checkpoint scoring comes on top" in note and "--preset small" in note
    already = progress.long_run_note(1000, 0.9, 10, small=True)
    assert "--preset small" not in already and "lower its budget with --set" in already


def test_a_long_run_is_announced_once_after_its_first_steps_and_a_short_one_never():
    announced = {}
    for pace in (1.0, 0.01):
        clock, lines = FakeClock(), []
        note = progress.LongRunNote(2000, lines.append, threshold=600, steps=10,
                                    seconds=20, clock=clock)
        for iteration in range(1, 40):
            clock.now += pace
            note.step(iteration)
            if iteration < 11:
                assert not lines  # the first step starts the clock, ten more are timed
        announced[pace] = lines
    assert len(announced[1.0]) == 1 and not announced[0.01]
    assert "about 33m20s at the pace of its first 10 (1 s each" in announced[1.0][0]
    clock, lines = FakeClock(), []
    slow = progress.LongRunNote(500, lines.append, threshold=600, steps=10, seconds=20,
                                clock=clock)
    for iteration in range(1, 5):  # 8 s a step: announced once 20 s have passed
        clock.now += 8
        slow.step(iteration)
    assert len(lines) == 1 and "first 3 (8 s each" in lines[0]


def test_a_cpu_run_announces_its_iterations_only_when_long(monkeypatch):
    config = resolve("gsmflow", "tiny", overrides=TINY, selection="val", device="cpu")
    data = make_tiny_dataset()
    lines: list[str] = []
    run_experiment(config, data=data, log=lines.append)
    assert not any(line.startswith("note: this run trains") for line in lines)
    monkeypatch.setattr(progress, "LONG_RUN_SECONDS", 0.0)  # every run counts as long
    lines.clear()
    run_experiment(config, data=data, log=lines.append)
    notes = [line for line in lines if line.startswith("note: this run trains")]
    from gzsl.methods.gsmflow import GSMFlow

    model = GSMFlow(config.method_config)
    planned = sum(model.total_iterations(len(data.task(name).train_labels))
                  for name in ("validation", "final"))
    assert len(notes) == 1 and f"up to {planned:,} iterations" in notes[0]
    assert "--preset small" in notes[0]
    small = resolve("gsmflow", "tiny", preset="small", overrides=TINY, selection="val",
                    device="cpu")
    lines.clear()
    run_experiment(small, data=data, log=lines.append)
    notes = [line for line in lines if line.startswith("note: this run trains")]
    assert len(notes) == 1 and "--preset small" not in notes[0]
