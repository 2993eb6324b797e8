"""KilledError runs continue from their last checkpoint and end as uninterrupted ones do."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_same_state, invoke_cli, make_tiny_dataset

from gzsl.data.errors import GZSLError
from gzsl.data.io import save_npz
from gzsl.experiments import runner
from gzsl.experiments.config import resolve
from gzsl.experiments.resume import comparable_config, resume_run
from gzsl.experiments.rundir import RESUME as RESUME_FILE
from gzsl.experiments.rundir import RunDir, run_status
from gzsl.experiments.runner import run_experiment

EVALUATION = ("evaluation.checkpoint_every=3", "evaluation.checkpoint_after=7",
              "evaluation.n_synthetic=20", "evaluation.classifier_epochs=3",
              "evaluation.classifier_batch_size=32", "evaluation.n_synthetic_grid=[0.5, 1]")
METHODS = {
    "gsmflow": ("method.epochs=4", "method.hidden_dim=16", "method.global_semantic_dim=8",
                "method.batch_size=32", "method.lr_step_epochs=1"),
    "vaecflow": ("method.iterations=20", "method.encoder_hidden=[16, 16]",
                 "method.decoder_hidden=8", "method.coupling_hidden=8", "method.batch_size=32"),
    "amaz": ("method.iterations=12", "method.n_way=3", "method.support_shots=2",
             "method.query_shots=2", "method.tasks_per_batch=2"),
    "gaussian": (),
}


class KilledError(Exception):
    """Stands for a kill: raised from the tracker, before that checkpoint is saved."""


def _config(method: str, selection: str, extra: tuple[str, ...] = ()):
    return resolve(method, "tiny", overrides=METHODS[method] + EVALUATION + extra,
                   selection=selection, device="cpu")


def _interrupt_after(rows: int):
    seen = []

    def tracker(row: dict) -> None:
        seen.append(row)
        if len(seen) > rows:
            raise KilledError
    return tracker


def _assert_same_run(resumed: Path, whole: Path) -> None:
    mine, theirs = (json.loads((d / "results.json").read_text()) for d in (resumed, whole))
    for key in ("seconds", "run_dir"):
        mine.pop(key), theirs.pop(key)
    assert mine == theirs
    for name in ("checkpoints.csv", "losses.csv", "classifier_epochs.csv", "config.json"):
        if (whole / name).exists():
            assert (resumed / name).read_text() == (whole / name).read_text(), name
    with np.load(resumed / "predictions.npz") as left, np.load(whole / "predictions.npz") as right:
        assert left.files == right.files
        for key in left.files:
            np.testing.assert_array_equal(left[key], right[key])
    assert_same_state(*(torch.load(d / "generator.pt", weights_only=True)
                        for d in (resumed, whole)))
    assert not (resumed / RESUME_FILE).exists()
    assert not list(resumed.glob(".*.tmp"))


@pytest.mark.parametrize(("method", "selection", "phase", "extra"), [
    ("gsmflow", "val", "validation", ()),
    ("gsmflow", "val", "final", ()),
    ("gsmflow", "test-oracle", "final", ()),
    ("vaecflow", "final", "final", ()),
    ("amaz", "val", "validation", ()),
    ("amaz", "val", "final", ("evaluation.transfer=iteration",)),
    ("gaussian", "val", "final", ()),  # after validation, before the final task's checkpoint
])
def test_an_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, method, selection,
                                                                phase, extra):
    data = make_tiny_dataset()
    config = _config(method, selection, extra)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    run_experiment(config, data=data, out=whole)
    with (whole / "checkpoints.csv").open() as handle:
        phases = [row["phase"] for row in csv.DictReader(handle)]
    rows = phases.index(phase) + phases.count(phase) // 2  # midway through that task
    with pytest.raises(KilledError):
        run_experiment(config, data=data, out=cut, tracker=_interrupt_after(rows))
    assert not (cut / "results.json").exists()
    assert (cut / RESUME_FILE).exists() and (cut / "config.json").exists()
    saved = torch.load(cut / RESUME_FILE, weights_only=True)
    assert 1 <= len([row for p in saved["phases"] for row in p["rows"]]) <= rows
    resume_run(cut, data=data)
    _assert_same_run(cut, whole)


def test_a_run_interrupted_after_training_resumes_to_its_result(tmp_path, monkeypatch):
    data = make_tiny_dataset()
    config = _config("gsmflow", "val")
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    run_experiment(config, data=data, out=whole)
    original = runner.Experiment.write_finish

    def killed(*args, **kwargs):
        raise KilledError
    monkeypatch.setattr(runner.Experiment, "write_finish", killed)
    with pytest.raises(KilledError):
        run_experiment(config, data=data, out=cut)
    assert torch.load(cut / RESUME_FILE, weights_only=True)["stopped"] is True
    monkeypatch.setattr(runner.Experiment, "write_finish", original)
    resume_run(cut, data=data)
    _assert_same_run(cut, whole)


def test_save_every_thins_the_saves_and_zero_turns_them_off(tmp_path, monkeypatch):
    data = make_tiny_dataset()
    config = _config("gsmflow", "final")
    saves = []
    write_torch = RunDir.write_torch

    def counted(self, name, value):
        if name == RESUME_FILE:
            saves.append(name)
        return write_torch(self, name, value)
    monkeypatch.setattr(RunDir, "write_torch", counted)
    run_experiment(config, data=data, out=tmp_path / "every", save_every=1)
    every = len(saves)
    saves.clear()
    run_experiment(config, data=data, out=tmp_path / "third", save_every=3)
    assert every >= 6 and len(saves) == every // 3
    saves.clear()
    run_experiment(config, data=data, out=tmp_path / "never", save_every=0)
    assert saves == []


def test_resume_refuses_finished_foreign_and_mismatched_runs(tmp_path):
    data = make_tiny_dataset()
    config = _config("gaussian", "final")
    with pytest.raises(GZSLError, match="no config.json"):
        resume_run(tmp_path, data=data)
    run_experiment(config, data=data, out=tmp_path / "done")
    with pytest.raises(GZSLError, match="has finished"):
        resume_run(tmp_path / "done", data=data)
    (tmp_path / "done" / RESUME_FILE).write_bytes(b"")  # killed between the last two writes
    assert run_status(tmp_path / "done") == "finished"
    with pytest.raises(GZSLError, match="has finished"):
        resume_run(tmp_path / "done", data=data)

    cut = tmp_path / "cut"
    with pytest.raises(KilledError):
        run_experiment(_config("gsmflow", "final"), data=data, out=cut,
                       tracker=_interrupt_after(2))
    settings = json.loads((cut / "config.json").read_text())
    settings["method_config"]["hidden_dim"] = 99
    (cut / "config.json").write_text(json.dumps(settings))
    with pytest.raises(GZSLError, match="method_config"):
        resume_run(cut, data=data)
    (cut / RESUME_FILE).write_bytes(b"not a torch file")
    with pytest.raises(GZSLError, match="cannot read"):
        resume_run(cut, data=data)


def test_a_run_killed_before_its_first_checkpoint_starts_again(tmp_path):
    data = make_tiny_dataset()
    config = _config("gsmflow", "final")
    run_experiment(config, data=data, out=tmp_path / "whole")
    cut = tmp_path / "cut"
    with pytest.raises(KilledError):
        run_experiment(config, data=data, out=cut, tracker=_interrupt_after(0))
    (cut / RESUME_FILE).unlink(missing_ok=True)  # killed before the first save
    resume_run(cut, data=data)
    _assert_same_run(cut, tmp_path / "whole")


def _gzsl(*args: str) -> list[str]:
    code = "import sys; from gzsl.cli import main; sys.argv = ['gzsl', *sys.argv[1:]]; main()"
    return [sys.executable, "-c", code, *args]


def test_a_killed_cli_run_resumes_with_train_resume(tmp_path):
    """A real SIGKILL at an arbitrary moment after the first save, then `--resume`."""
    save_npz(make_tiny_dataset(), tmp_path / "tiny.npz")
    settings = [arg for setting in ("method.epochs=30", "method.hidden_dim=16",
                                    "method.global_semantic_dim=8", "method.batch_size=32",
                                    *EVALUATION[1:])
                for arg in ("--set", setting)]
    common = ["train", "gsmflow", "tiny", "--root", str(tmp_path / "tiny.npz"), "--device",
              "cpu", "--set", "evaluation.checkpoint_every=2", *settings]
    cut = tmp_path / "cut"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(_gzsl(*common, "--out", str(cut)), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (cut / RESUME_FILE).exists() and process.poll() is None:
            assert time.monotonic() < deadline, "the run never saved a checkpoint"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (cut / "results.json").exists()

    refused = invoke_cli(*common, "--out", str(cut))
    assert refused.exit_code != 0 and "--resume" in str(refused.exception or refused.output)
    resumed = invoke_cli("train", "--resume", str(cut))
    assert resumed.exit_code == 0, resumed.output
    assert "resuming" in resumed.output
    whole = tmp_path / "whole"
    done = invoke_cli(*common, "--out", str(whole))
    assert done.exit_code == 0, done.output
    _assert_same_run(cut, whole)


def test_train_resume_refuses_settings_of_its_own(tmp_path):
    result = invoke_cli("train", "gsmflow", "demo", "--resume", str(tmp_path))
    assert result.exit_code == 2
    assert "cannot be combined with --resume" in result.output
    result = invoke_cli("train", "--seed", "3", "--resume", str(tmp_path))
    assert result.exit_code == 2 and "--seed" in result.output
    result = invoke_cli("train")
    assert result.exit_code == 2 and "METHOD and DATASET" in result.output


def test_reproduce_resume_reads_finished_seeds_and_continues_interrupted_ones(tmp_path):
    from gzsl.experiments.reproduce import run_seeds

    data = make_tiny_dataset()
    overrides = METHODS["gsmflow"] + EVALUATION
    common = dict(overrides=overrides, selection="final", device="cpu", data=data)
    whole = run_seeds("gsmflow", "tiny", [0, 1], out=tmp_path / "whole", **common)
    cut = tmp_path / "cut"
    run_seeds("gsmflow", "tiny", [0], out=cut, **common)
    finished_at = (cut / "seed0" / "results.json").stat().st_mtime_ns
    with pytest.raises(KilledError):
        run_experiment(dataclasses.replace(_config("gsmflow", "final"), seed=1), data=data,
                       out=cut / "seed1", tracker=_interrupt_after(3))
    with pytest.raises(GZSLError, match="holds a finished run.*--overwrite"):
        run_seeds("gsmflow", "tiny", [0, 1], out=cut, **common)
    with pytest.raises(GZSLError, match="interrupted run.*--resume"):
        run_seeds("gsmflow", "tiny", [1], out=cut, **common)
    with pytest.raises(GZSLError, match="other settings"):
        run_seeds("gsmflow", "tiny", [0, 1], out=cut, resume=True,
                  **{**common, "overrides": overrides + ("method.lr=0.5",)})
    logged = []
    resumed = run_seeds("gsmflow", "tiny", [0, 1], out=cut, resume=True, log=logged.append,
                        **common)
    assert (cut / "seed0" / "results.json").stat().st_mtime_ns == finished_at
    assert any("finished before" in line for line in logged)
    assert [(r.seed, r.U, r.S, r.H, r.T1) for r in resumed] == \
        [(r.seed, r.U, r.S, r.H, r.T1) for r in whole]
    _assert_same_run(cut / "seed1", tmp_path / "whole" / "seed1")


def test_reproduce_resume_on_the_command_line(tmp_path):
    save_npz(make_tiny_dataset(), tmp_path / "tiny.npz")
    command = ["reproduce", "gaussian", "tiny", "--root", str(tmp_path / "tiny.npz"),
               "--seeds", "2", "--selection", "final", "--device", "cpu",
               "--out", str(tmp_path / "runs"), "--set", "evaluation.classifier_epochs=2"]
    first = invoke_cli(*command)
    assert first.exit_code == 0, first.output
    (tmp_path / "runs" / "seed1" / "results.json").unlink()  # as if killed while finishing
    again = invoke_cli(*command, "--resume")
    assert again.exit_code == 0, again.output
    assert "finished before" in again.output and "±" in again.output
    assert (tmp_path / "runs" / "seed1" / "results.json").is_file()


def test_ctrl_c_says_how_to_continue(tmp_path, monkeypatch):
    import gzsl.experiments.reproduce

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    # the CLI imports the library when a command runs: patch where it is defined
    monkeypatch.setattr(runner, "run_experiment", interrupted)
    monkeypatch.setattr(gzsl.experiments.reproduce, "run_seeds", interrupted)
    result = invoke_cli("train", "gaussian", "demo", "--out", str(tmp_path / "run"))
    assert result.exit_code != 0
    assert f"continue with `gzsl train --resume {tmp_path / 'run'}`" in result.output
    result = invoke_cli("reproduce", "gaussian", "demo", "--out", str(tmp_path / "runs"))
    assert result.exit_code != 0
    assert "run the same command again with --resume" in result.output


def test_settings_added_since_a_run_count_at_their_defaults_when_resuming(tmp_path):
    """A run made before ``evaluation.transfer`` existed resumes: its saved config, without
    the key, equals today's with the default; another value still differs."""
    data = make_tiny_dataset()
    config = _config("amaz", "val")
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    run_experiment(config, data=data, out=whole)
    with pytest.raises(KilledError):
        run_experiment(config, data=data, out=cut, tracker=_interrupt_after(2))
    state = torch.load(cut / RESUME_FILE, weights_only=True)
    del state["config"]["evaluation"]["transfer"]
    torch.save(state, cut / RESUME_FILE)
    saved = json.loads((cut / "config.json").read_text())
    del saved["evaluation"]["transfer"]
    (cut / "config.json").write_text(json.dumps(saved))
    resume_run(cut, data=data)
    _assert_same_run(cut, whole)
    changed = config.to_dict()
    changed["evaluation"]["transfer"] = "iteration"
    assert comparable_config(changed) != comparable_config(saved)
    assert comparable_config({"method": "no-such-method"}) == {"method": "no-such-method"}


def test_resume_refuses_data_files_changed_since_the_run_started(tmp_path):
    """The checksums recorded at the start are compared, and the record is kept as it was."""
    data_file = tmp_path / "tiny.npz"
    save_npz(make_tiny_dataset(), data_file)
    config = _config("gsmflow", "final")
    cut = tmp_path / "cut"
    with pytest.raises(KilledError):
        run_experiment(config, root=data_file, out=cut, tracker=_interrupt_after(2))
    recorded = (cut / "metadata.json").read_text()
    save_npz(make_tiny_dataset(seed=1), data_file)  # other features, same name
    with pytest.raises(GZSLError, match=r"data files .* changed since it started.*checksums"):
        resume_run(cut)
    assert (cut / "metadata.json").read_text() == recorded
    save_npz(make_tiny_dataset(), data_file)  # restored: the run continues
    with warnings.catch_warnings():  # it resumes at an epoch's end: no PyTorch warning
        warnings.simplefilter("error")
        resume_run(cut)
    assert run_status(cut) == "finished"
