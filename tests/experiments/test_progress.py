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
