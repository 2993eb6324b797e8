"""benchmarks/gpu_check: the tiny mode runs end to end, failures and time-outs are recorded,
the shell wrapper writes where it says, and the AWA2 sizes it assumes are the real ones."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def gpu_check(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import gpu_check

    return gpu_check


def numbers(value, path=""):
    """Every (path, number) in a nested JSON value."""
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from numbers(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from numbers(item, f"{path}[{index}]")


def test_tiny_check_writes_every_figure(gpu_check, tmp_path, monkeypatch):
    peaks = iter([1.0, 2.0, 9.0, 3.0, 4.0, 5.0])  # per part; the evaluation (third) peaks
    monkeypatch.setattr(gpu_check, "peak_memory", lambda device: {"gib": next(peaks)})
    out = tmp_path / "check.json"
    assert gpu_check.main(["--tiny", "--device", "cpu", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["peak_memory"] == {"gib": 9.0}
    assert report["gsmflow"]["evaluation"]["peak_memory"] == {"gib": 9.0}
    assert report["mode"] == "tiny" and report["errors"] == {}
    assert "SYNTHETIC" in report["data"]
    gsmflow = report["gsmflow"]
    evaluation = gsmflow["evaluation"]
    projection = evaluation["projection"]
    figures = [gsmflow["train"]["iterations_per_second"], gsmflow["resume_state_save"]["seconds"],
               evaluation["seconds"], evaluation["synthesis_seconds"],
               projection["test_oracle_seconds"], projection["val_seconds_at_most"],
               projection["final_seconds"], report["vaecflow"]["train"]["iterations_per_second"],
               report["amaz"]["train"]["iterations_per_second"],
               report["amaz"]["projected_training_seconds"]]
    assert all(math.isfinite(x) and x > 0 for x in figures)
    assert projection["test_oracle_seconds"] > projection["training_seconds"]
    assert evaluation["synthetic_features"] == 20 * 10  # tiny n_synthetic x 10 unseen classes
    trip = report["round_trip"]
    assert trip["agree"] and trip["cpu_vs_device_agree"]
    assert trip["max_abs_difference"] == 0.0 and trip["samples_compared"] > 0
    for path, value in numbers(report):
        assert math.isfinite(value) and value >= 0, path


def test_failing_part_is_recorded_and_the_json_still_written(gpu_check, tmp_path):
    out = tmp_path / "check.json"
    check = gpu_check.Check(gpu_check.TINY_PLAN, torch.device("cpu"), out, "tiny")

    def broken(result):
        result["half"] = 1.0
        raise RuntimeError("out of memory, say")

    check.part("round_trip", broken)
    report = json.loads(out.read_text())
    assert report["errors"] == {"round_trip": "RuntimeError: out of memory, say"}
    assert report["round_trip"]["half"] == 1.0 and report["round_trip"]["part_seconds"] >= 0


def test_part_past_its_time_box_is_stopped(gpu_check, tmp_path):
    plan = dataclasses.replace(gpu_check.TINY_PLAN,
                               boxes={**gpu_check.TINY_PLAN.boxes, "amaz": 0.2})
    check = gpu_check.Check(plan, torch.device("cpu"), tmp_path / "check.json", "tiny")
    start = time.perf_counter()
    check.part("amaz", lambda result: time.sleep(5))
    assert time.perf_counter() - start < 2
    assert "time box" in check.report["errors"]["amaz"]


def test_evaluated_checkpoints_follow_the_runner_schedule(gpu_check):
    assert gpu_check.evaluated_checkpoints(1000, 300, 500) == 3  # 600, 900 and the last
    assert gpu_check.evaluated_checkpoints(45500, 500, 30000) == 32  # GSMFlow AWA2
    assert gpu_check.evaluated_checkpoints(6000, 500, 30000) == 1  # only the last


def test_awa2_sizes_are_the_real_split_sizes(gpu_check, xlsa17_dir):
    from scipy.io import loadmat

    from gzsl.data.dataset import GZSLData

    mat = loadmat(xlsa17_dir / "AWA2" / "att_splits.mat")
    labels = np.load(xlsa17_dir / "AWA2" / "labels.npy") - 1
    splits = {key[:-4]: mat[key].ravel().astype(np.int64) - 1
              for key in ("trainval_loc", "test_seen_loc", "test_unseen_loc", "train_loc",
                          "val_loc")}
    data = GZSLData(name="AWA2", features=np.zeros((len(labels), 1), np.float32),
                    labels=labels, semantics=mat["att"].T.astype(np.float32),
                    class_names=tuple(map(str, range(50))), splits=splits)
    for name, sizes in (("final", gpu_check.AWA2), ("validation", gpu_check.AWA2_VALIDATION)):
        task = data.task(name)
        assert (sizes.semantic_dim, sizes.n_seen, sizes.n_unseen, sizes.n_train,
                sizes.n_test_seen, sizes.n_test_unseen) == (
            data.semantics.shape[1], len(task.seen_classes), len(task.unseen_classes),
            len(task.train_labels), len(task.test_seen_labels), len(task.test_unseen_labels))


FAKE_PYTHON = """#!/usr/bin/env bash
# stands in for Python: the version probe reads stdin; the check writes its --out
if [ "${1:-}" = "-" ]; then cat >/dev/null; exit 0; fi
all="$*"
while [ $# -gt 0 ]; do
    if [ "$1" = --out ]; then
        mkdir -p "$(dirname "$2")"; echo "{\\"argv\\": \\"$*\\", \\"all\\": \\"$all\\"}" >"$2"
    fi
    shift
done
"""


@pytest.mark.parametrize("use_out", [True, False])
def test_shell_wrapper_writes_to_out_or_the_path_given(tmp_path, use_out):
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    env["GZSL_PYTHON"] = str(fake)
    if use_out:
        env["OUT"] = str(tmp_path / "out")
    given = tmp_path / "given.json"
    done = subprocess.run(["bash", str(BENCHMARKS / "gpu_check.sh"), "--tiny", str(given)],
                          env=env, capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    written = tmp_path / "out" / "gpu_check.json" if use_out else given
    assert json.loads(written.read_text())["argv"].endswith("--tiny")
    assert f"JSON: {written}" in done.stderr
    assert not (given.exists() and use_out)


def test_shell_wrapper_learn_mode_runs_the_paper_presets_benchmark_into_out(tmp_path):
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    env = {**os.environ, "GZSL_PYTHON": str(fake), "OUT": str(tmp_path / "out")}
    done = subprocess.run(["bash", str(BENCHMARKS / "gpu_check.sh"), "--learn", "--tiny"],
                          env=env, capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    argv = json.loads((tmp_path / "out" / "paper_presets_learn.json").read_text())["all"]
    assert argv.startswith("benchmarks/paper_presets_learn.py --device auto --presets "
                           "amaz/awa2 amaz/awa2-ours vaecflow/awa2 --iterations 4 ")
    assert not (tmp_path / "out" / "gpu_check.json").exists()


def test_shell_wrapper_fails_clearly_without_output(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/usr/bin/env bash\n[ \"${1:-}\" = - ] && cat >/dev/null\nexit 0\n")
    fake.chmod(0o755)
    env = {**{k: v for k, v in os.environ.items() if k != "OUT"}, "GZSL_PYTHON": str(fake)}
    done = subprocess.run(["bash", str(BENCHMARKS / "gpu_check.sh"), str(tmp_path / "x.json")],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "no JSON was written" in done.stderr


def test_benchmarks_share_one_set_of_method_call_sites():
    """The method API's random-generator keyword appears in common.py alone."""
    for script in ("gpu_check.py", "speed.py"):
        text = (BENCHMARKS / script).read_text()
        assert "generator=" not in text and "rng=" not in text, script
