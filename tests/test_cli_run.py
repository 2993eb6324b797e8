"""``gzsl train / reproduce / ablate / list`` end to end on the embedded demo, tiny budgets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import invoke_cli as invoke

TINY_GSMFLOW = tuple(arg for setting in (
    "method.epochs=2", "method.hidden_dim=32", "method.global_semantic_dim=16",
    "evaluation.checkpoint_every=5", "evaluation.checkpoint_after=0",
    "evaluation.n_synthetic=20", "evaluation.classifier_epochs=3",
    "evaluation.n_synthetic_grid=[1]") for arg in ("--set", setting))
TINY_GAUSSIAN = ("--set", "evaluation.n_synthetic=20", "--set", "evaluation.classifier_epochs=3",
                 "--set", "evaluation.n_synthetic_grid=[1]")



def test_train_gsmflow_on_demo_writes_results(tmp_path: Path):
    out = tmp_path / "run"
    result = invoke("train", "gsmflow", "demo", "--device", "cpu", "--out", str(out),
                    *TINY_GSMFLOW)
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "results.json").read_text())
    assert saved["method"] == "gsmflow" and saved["dataset"] == "demo"
    assert saved["selection"] == "val" and saved["synthetic_data"] is True
    assert 0 <= saved["H"] <= 100 and len(saved["per_class"]["unseen"]) == 10
    assert "SYNTHETIC" in result.output and "selection: val" in result.output
    config = json.loads((out / "config.json").read_text())
    assert config["method_config"]["hidden_dim"] == 32  # the override reached the method


def test_reproduce_prints_mean_and_std_beside_published(tmp_path: Path):
    result = invoke("reproduce", "gaussian", "demo", "--seeds", "2", "--selection", "final",
                    "--device", "cpu", "--out", str(tmp_path), *TINY_GAUSSIAN)
    assert result.exit_code == 0, result.output
    assert "±" in result.output and "mean ± std over 2 seed(s)" in result.output
    runs = sorted(p.parent.name for p in tmp_path.glob("*/results.json"))
    assert runs == ["seed0", "seed1"]


@pytest.mark.parametrize("selection", ["test-oracle", "not stated", None])
def test_published_row_of_reproduce_shows_the_papers_own_protocol(selection):
    from rich.console import Console

    from gzsl.cli.run import summary_table
    from gzsl.experiments.reproduce import Summary

    published = {"H": 64.3} | ({} if selection is None else {"selection": selection})
    metrics = {"U": 1.0, "S": 2.0, "H": 1.3, "T1": 4.0}
    summary = Summary("ours", "val", (0,), metrics, dict.fromkeys(metrics, 0.0), published)
    console = Console(width=200, record=True)
    console.print(summary_table("t", [summary]))
    line = next(row for row in console.export_text().splitlines() if "published" in row)
    assert (selection or "not stated") in line and "64.3" in line


def test_ablate_runs_each_named_variant(tmp_path: Path):
    result = invoke("ablate", "gsmflow", "demo", "--only", "full", "--only", "no-prototype-loss",
                    "--selection", "final", "--device", "cpu", "--out", str(tmp_path),
                    *TINY_GSMFLOW)
    assert result.exit_code == 0, result.output
    assert "no-prototype-loss" in result.output
    config = json.loads((tmp_path / "no-prototype-loss" / "seed0" / "config.json").read_text())
    assert config["method_config"]["use_prototype_loss"] is False
    full = json.loads((tmp_path / "full" / "seed0" / "config.json").read_text())
    assert full["method_config"]["use_prototype_loss"] is True


def test_list_shows_methods_and_presets():
    result = invoke("list")
    assert result.exit_code == 0
    for name in ("gaussian", "gsmflow", "vaecflow", "demo", "72.3"):
        assert name in result.output


def _main(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from gzsl.cli import main; sys.argv = ['gzsl', *sys.argv[1:]]; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120)


def test_user_errors_are_one_line_without_traceback():
    done = _main("train", "gsmflow", "AWA2")
    assert done.returncode == 2
    assert "--root" in done.stderr and "Traceback" not in done.stderr
    done = _main("train", "nosuchmethod", "demo")
    assert done.returncode == 2 and "available" in done.stderr
    done = _main("train", "gsmflow", "demo", "--selection", "best")
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_tensorboard_missing_package_is_a_clear_error(monkeypatch, tmp_path: Path):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    result = invoke("train", "gaussian", "demo", "--tensorboard", "--out", str(tmp_path / "r"),
                    *TINY_GAUSSIAN)
    assert result.exit_code != 0
    assert "pip install" in str(result.exception)


def test_tracker_receives_every_checkpoint_row(tiny_dataset):
    from gzsl.experiments.config import resolve
    from gzsl.experiments.runner import run_experiment

    rows = []
    config = resolve("gaussian", "tiny", selection="val", device="cpu",
                     overrides=("evaluation.n_synthetic=10", "evaluation.classifier_epochs=2",
                                "evaluation.n_synthetic_grid=[1]"))
    run_experiment(config, data=tiny_dataset, tracker=rows.append)
    assert [r["phase"] for r in rows] == ["validation", "final"]
    assert "H" in rows[0] and "loss_mean_mse" in rows[1]


def test_tensorboard_writes_event_files(tmp_path: Path):
    import pytest

    pytest.importorskip("tensorboard")
    out = tmp_path / "run"
    result = invoke("train", "gaussian", "demo", "--tensorboard", "--out", str(out),
                    "--selection", "final", *TINY_GAUSSIAN)
    assert result.exit_code == 0, result.output
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))


def test_a_run_records_its_command_preset_overrides_and_threads(tmp_path: Path, capsys):
    from conftest import run_main

    out = tmp_path / "run"
    code, output = run_main(capsys, "train", "gaussian", "demo", "--preset", "demo",
                            "--device", "cpu", "--selection", "final", "--threads", "1",
                            "--out", str(out), *TINY_GAUSSIAN)
    assert code == 0, output
    assert "CPU threads: 1 (--threads)" in output
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["command"].startswith("gzsl train gaussian demo --preset demo")
    assert metadata["preset"] == "gaussian/demo"
    assert metadata["overrides"] == {"evaluation.n_synthetic": 20,
                                     "evaluation.classifier_epochs": 3,
                                     "evaluation.n_synthetic_grid": [1]}
    assert metadata["environment"]["threads"] == 1
    assert metadata["environment"]["threads_chosen_by"] == "--threads"
    assert "threads" not in (out / "config.json").read_text()  # run-time, not a setting
