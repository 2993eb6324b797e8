"""Studies on Optuna: study files, samplers, pruning, workers, recovery, reports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_dataset

from gzsl.data.errors import GZSLError
from gzsl.data.io import save_npz
from gzsl.experiments.config import resolve
from gzsl.experiments.rundir import RunDir, run_status
from gzsl.experiments.studies import parse_study
from gzsl.experiments.studies.report import plot_sensitivity, report_study
from gzsl.experiments.studies.running import read_study_dir, run_study
from gzsl.methods.base import Checkpoint, Generator, register
from gzsl.methods.gaussian import GaussianBaseline
from gzsl.threads import worker_threads

FAST = ('"evaluation.classifier_epochs=6"', '"evaluation.classifier_lr=0.05"',
        '"evaluation.classifier_batch_size=32"', '"evaluation.n_synthetic=20"',
        '"evaluation.n_synthetic_grid=[1.0]"', '"evaluation.zsl_classifier=false"')


def study_text(space: str, *, method: str = "gaussian", seeds: str = "[0]",
               sampler: str = "grid", extra: str = "") -> str:
    return (f'method = "{method}"\ndataset = "tiny"\nseeds = {seeds}\n'
            f'sampler = "{sampler}"\nset = [{", ".join(FAST)}]\n{extra}\n[space]\n{space}\n')


def write_study(folder: Path, text: str, name: str = "study") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def trials_of(study_dir: Path) -> list:
    import optuna

    from gzsl.experiments.studies.report import load_trials

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return load_trials(study_dir)[1]


def complete(trials: list) -> dict:
    """params (as a sorted tuple) -> (value, per-seed validation H) of complete trials."""
    out = {}
    for trial in trials:
        if trial.state.name == "COMPLETE":
            key = tuple(sorted(trial.params.items()))
            assert key not in out, f"duplicated trial {key}"
            out[key] = (trial.value, tuple(trial.user_attrs["validation_H"]))
    return out


@pytest.fixture
def tiny_npz(tmp_path) -> Path:
    path = tmp_path / "tiny.npz"
    save_npz(make_tiny_dataset(), path)
    return path


# ------------------------------------------------------------------ study files


@pytest.mark.parametrize(("text", "message"), [
    (study_text('"method.ridge" = [1.0]', extra="learning = 3"), "unknown key"),
    (study_text('"method.no_such_setting" = [1, 2]'), "no_such_setting"),
    (study_text(""), "search space is empty"),
    (study_text('"method.ridge" = [1.0]', extra='objective = "H"'), "never on the test set"),
    (study_text('"method.ridge" = [1.0]', extra='objective = "test_H"'), "validation"),
    (study_text('"evaluation.classifier" = ["softmax", "no-such-classifier"]'),
     "'no-such-classifier' is rejected"),
    (study_text('"evaluation.n_synthetic" = [10, 0]'), "= 0 is rejected"),
    (study_text('"method.ridge" = { low = 0.1, high = 10.0 }'), "grid sampler needs"),
    (study_text('"seed" = [0, 1]'), "cannot be searched"),
    (study_text('"method.ridge" = [1.0]', sampler="tpe"), "n_trials"),
    (study_text('"method.ridge" = [1.0]', extra='[pruner]\ntype = "median"\nbogus = 1'),
     "bogus"),
])
def test_a_bad_study_file_is_one_clear_error_before_any_training(tmp_path, tiny_npz, text,
                                                                 message):
    path = write_study(tmp_path, text)
    with pytest.raises(GZSLError, match=message) as raised:
        from gzsl.experiments.studies import load_study

        spec = load_study(path)
        run_study(spec, tmp_path / "out", root=tiny_npz, device="cpu", threads=1)
    assert "\n" not in str(raised.value) and str(path) in str(raised.value)
    assert not (tmp_path / "out").exists()


def test_a_range_and_listed_values_become_optuna_distributions():
    spec = parse_study(study_text(
        '"method.ridge" = { low = 0.01, high = 10.0, log = true }\n'
        '"evaluation.classifier_epochs" = { low = 2, high = 6 }\n'
        '"method.variance_scale" = [0.5, 1.0]', sampler="random", extra="n_trials = 4"))
    kinds = {p.key: (p.kind, p.log) for p in spec.space}
    assert kinds == {"method.ridge": ("float", True), "evaluation.classifier_epochs":
                     ("int", False), "method.variance_scale": ("categorical", False)}
    assert spec.n_trials == 4


# --------------------------------------------------------------------- samplers


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_random_and_tpe_draw_each_trial_from_its_number(sampler):
    """Workers are separate processes with their own sampler objects: a draw depends on
    the study's seed and the trial's number, never on which worker made it."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    spec = parse_study(study_text('"method.ridge" = { low = 0.01, high = 10.0, log = true }',
                                  sampler=sampler, extra="n_trials = 12"))

    def draws(spec, split: bool) -> list[float]:
        study = optuna.create_study(direction="maximize", sampler=spec.make_sampler())
        values = []
        for _ in range(12):
            if split:  # a fresh sampler object for each trial, as a new worker would have
                study.sampler = spec.make_sampler()
            trial = study.ask()
            ridge = spec.space[0].suggest(trial)
            values.append(ridge)
            study.tell(trial, -abs(np.log(ridge)))  # best near ridge = 1
        return values

    first, second = draws(spec, False), draws(spec, True)
    assert first == second
    assert len(set(first)) == 12 and all(0.01 <= v <= 10.0 for v in first)
    other = parse_study(study_text('"method.ridge" = { low = 0.01, high = 10.0, log = true }',
                                   sampler=sampler, extra="n_trials = 12\nsampler_seed = 1"))
    assert draws(other, False) != first


def test_a_grid_study_runs_each_point_once_and_reports_the_best_as_a_preset(
        tmp_path, tiny_npz):
    path = write_study(tmp_path, study_text('"method.ridge" = [0.1, 100.0]', seeds="[0, 1]"))
    from gzsl.experiments.studies import load_study

    study_dir = tmp_path / "out"
    run_study(load_study(path), study_dir, root=tiny_npz, device="cpu", threads=1)
    trials = trials_of(study_dir)
    found = complete(trials)
    assert sorted(found) == [(("method.ridge", 0.1),), (("method.ridge", 100.0),)]
    for trial in trials:
        for seed in (0, 1):
            run = study_dir / trial.user_attrs["trial_dir"] / f"seed{seed}"
            results = RunDir(run).results()
            assert results["selection"] == "val" and results["seed"] == seed
            assert RunDir(run).config()["method_config"]["ridge"] == trial.params["method.ridge"]
            assert RunDir(run).metadata()["environment"]["threads"] == 1  # --threads 1
        assert trial.value == pytest.approx(np.mean(trial.user_attrs["validation_H"]))
    # running the same command again finds nothing left to do
    run_study(load_study(path), study_dir, root=tiny_npz, device="cpu", threads=1)
    assert len(trials_of(study_dir)) == 2

    report = report_study(study_dir)
    best = max(trials, key=lambda t: t.value)
    assert report.best.number == best.number
    preset = study_dir / "report" / "best-preset.toml"
    assert preset.is_file() and (study_dir / "report" / "trials.csv").is_file()
    config = resolve("gaussian", "tiny", preset=str(preset), seed=0, device="cpu")
    saved = RunDir(study_dir / best.user_attrs["trial_dir"] / "seed0").config()
    resolved = json.loads(json.dumps(config.to_dict()))
    for section in ("method_config", "evaluation", "data"):
        assert resolved[section] == saved[section]

    files = plot_sensitivity([study_dir], tmp_path / "sens")
    text = files[1].read_text()
    assert "validation_H" in text and "tiny (SYNTHETIC)" in text


def test_test_data_never_feeds_a_search(tmp_path):
    """The same study on the same data with scrambled test features: same trials, same
    validation scores, same best setting."""
    data = make_tiny_dataset()
    scrambled = make_tiny_dataset()
    test = np.concatenate([scrambled.splits["test_seen"], scrambled.splits["test_unseen"]])
    rng = np.random.default_rng(5)
    scrambled.features[test] = rng.random((len(test), scrambled.features.shape[1])) * 20
    save_npz(data, tmp_path / "a.npz")
    save_npz(scrambled, tmp_path / "b.npz")
    text = study_text('"method.ridge" = { low = 0.01, high = 100.0, log = true }',
                      sampler="tpe", extra="n_trials = 3")
    path = write_study(tmp_path, text)
    from gzsl.experiments.studies import load_study

    found = []
    for name in ("a", "b"):
        run_study(load_study(path), tmp_path / name, root=tmp_path / f"{name}.npz",
                  device="cpu", threads=1)
        found.append(complete(trials_of(tmp_path / name)))
        found.append(report_study(tmp_path / name).best.params)
    assert found[0] == found[2] and found[1] == found[3]
    tests = [RunDir(tmp_path / n / "trials" / "trial-0000" / "seed0").results()["H"]
             for n in ("a", "b")]
    assert tests[0] != tests[1]  # the scrambling did reach the test score


# ---------------------------------------------------------------------- pruning


@dataclass(frozen=True)
class FallsConfig:
    iterations: int = 6
    good_until: int = 6


@register
class FallsGenerator(Generator):
    """Test method: right samples up to iteration ``good_until``, mislabelled after it."""

    name = "test-falls"
    Config = FallsConfig

    def fit(self, data, *, rng, schedule=None):
        self.inner_ = GaussianBaseline().fit(data, rng=rng)
        for iteration in range(1, self.config.iterations + 1):
            self.good_ = iteration <= self.config.good_until
            if schedule and schedule.callback and schedule.callback(
                    Checkpoint(iteration, float(iteration), {})):
                break
        return self

    def total_iterations(self, n_train):
        return self.config.iterations

    def sample(self, semantics, n_per_class, *, rng=None):
        return self.inner_.sample(semantics if self.good_ else semantics.roll(1, dims=0),
                                  n_per_class, rng=rng)

    @property
    def device(self):
        return self.inner_.device

    def state_dict(self):
        return {"inner": self.inner_.state_dict(), "good": self.good_}

    def load_state_dict(self, state, device="cpu"):
        self.inner_ = GaussianBaseline().load_state_dict(state["inner"], device)
        self.good_ = state["good"]
        return self


def test_a_pruner_stops_a_trial_whose_validation_h_falls(tmp_path, tiny_npz):
    text = study_text('"method.good_until" = [6, 2]', method="test-falls",
                      extra='[pruner]\ntype = "patient"\npatience = 1\nmin_delta = 20.0\n')
    text = text.replace('set = [', 'set = ["evaluation.checkpoint_every=1", ')
    from gzsl.experiments.studies import load_study

    run_study(load_study(write_study(tmp_path, text)), tmp_path / "out", root=tiny_npz,
              device="cpu", threads=1)
    trials = {t.params["method.good_until"]: t for t in trials_of(tmp_path / "out")}
    assert trials[6].state.name == "COMPLETE"
    falling = trials[2]
    assert falling.state.name == "PRUNED"
    # H is high at iterations 1-2, low from 3; patience 1 stops at the second low one
    assert falling.user_attrs["pruned_at"]["iteration"] == 4
    assert sorted(falling.intermediate_values) == [0, 1, 2, 3]
    run = tmp_path / "out" / falling.user_attrs["trial_dir"] / "seed0"
    assert run_status(run) == "pruned"
    assert json.loads((run / "pruned.json").read_text())["iteration"] == 4
    assert not (run / "resume.pt").exists()
    with pytest.raises(GZSLError, match="pruned"):
        RunDir(run).check()
    from gzsl.experiments.resume import resume_run

    with pytest.raises(GZSLError, match="pruner"):
        resume_run(run)
    from gzsl.experiments.compare import find_results, find_unfinished

    assert find_unfinished([tmp_path / "out"]) == []
    assert len(find_results([tmp_path / "out"])) == 1
    rows = {r.number: r for r in report_study(tmp_path / "out").rows}
    assert "pruned at seed 0, iteration 4" in rows[falling.number].note


# ---------------------------------------------------------- workers and recovery


def _worker(study: Path, out: Path, root: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", "from gzsl.cli import main; main()", "study", "run",
         str(study), "--out", str(out), "--root", str(root), "--device", "cpu",
         "--threads", "1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)


@pytest.mark.slow
def test_two_workers_on_one_journal_finish_exactly_the_requested_trials(tmp_path, tiny_npz):
    path = write_study(tmp_path, study_text('"method.ridge" = [0.1, 1.0, 10.0, 100.0]'))
    workers = [_worker(path, tmp_path / "out", tiny_npz) for _ in range(2)]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    trials = trials_of(tmp_path / "out")
    found = complete(trials)
    assert sorted(v for (( _, v),) in found) == [0.1, 1.0, 10.0, 100.0]
    assert all(t.state.name == "COMPLETE" or t.user_attrs.get("surplus") for t in trials)


@pytest.mark.slow
def test_a_killed_worker_restarted_ends_as_an_uninterrupted_study(tmp_path, tiny_npz):
    import optuna

    from gzsl.experiments.studies.report import load_trials

    path = write_study(tmp_path, study_text('"method.ridge" = [0.1, 1.0, 10.0]',
                                            seeds="[0, 1]"))
    out = tmp_path / "killed"
    worker = _worker(path, out, tiny_npz)
    deadline = time.monotonic() + 240
    while not (out / "trials" / "trial-0001" / "seed0" / "results.json").exists():
        assert worker.poll() is None, worker.communicate()[0]
        assert time.monotonic() < deadline, "the worker did not reach trial 1 in time"
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    states = {t.number: t.state.name for t in load_trials(out)[1]}
    assert states[1] == "RUNNING"  # killed mid-trial: seed 0 done, seed 1 not
    restarted = _worker(path, out, tiny_npz)
    output = restarted.communicate(timeout=300)[0]
    assert restarted.returncode == 0, output
    assert "trial 1 lost its worker" in output and "retry of trial 1" in output
    from gzsl.experiments.studies import load_study

    run_study(load_study(path), tmp_path / "plain", root=tiny_npz, device="cpu", threads=1)
    assert complete(trials_of(out)) == complete(trials_of(tmp_path / "plain"))
    states = [t.state.name for t in trials_of(out)]
    assert states.count("COMPLETE") == 3 and states.count("FAIL") == 1


def test_a_study_folder_refuses_another_study(tmp_path, tiny_npz):
    from gzsl.experiments.studies import load_study

    first = write_study(tmp_path, study_text('"method.ridge" = [1.0]'), "same")
    run_study(load_study(first), tmp_path / "out", root=tiny_npz, device="cpu", threads=1)
    assert read_study_dir(tmp_path / "out")[0].name == "same"
    (tmp_path / "other").mkdir()
    second = write_study(tmp_path / "other", study_text('"method.ridge" = [2.0]'), "same")
    with pytest.raises(GZSLError, match="holds another study"):
        run_study(load_study(second), tmp_path / "out", root=tiny_npz, device="cpu",
                  threads=1)


# -------------------------------------------------------------- reproduce --jobs


@pytest.mark.slow
def test_reproduce_with_two_jobs_equals_sequential_reproduce(tmp_path, tiny_npz):
    from gzsl.experiments.reproduce import run_seeds

    settings = {"root": tiny_npz, "selection": "val", "device": "cpu",
                "overrides": tuple(s.strip('"') for s in FAST)}
    sequential = run_seeds("gaussian", "tiny", [0, 1], out=tmp_path / "one", **settings)
    parallel = run_seeds("gaussian", "tiny", [0, 1], out=tmp_path / "two", jobs=2, **settings)

    def comparable(result):
        values = result.to_dict()
        for key in ("seconds", "run_dir"):
            values.pop(key)
        return values

    assert [comparable(r) for r in parallel] == [comparable(r) for r in sequential]
    assert [r.seed for r in parallel] == [0, 1]
    for seed in (0, 1):
        metadata = RunDir(tmp_path / "two" / f"seed{seed}").metadata()
        assert metadata["environment"]["threads"] == worker_threads(2)


def test_every_shipped_study_file_is_valid_and_has_a_demo_variant():
    from gzsl.experiments.studies import list_studies, load_study

    names = {path.stem for path in list_studies()}
    assert len(names) >= 30
    for path in list_studies():
        spec = load_study(path)
        assert spec.sampler == "grid" and len(spec.space) == 1 and len(spec.seeds) >= 3
        demo = path.stem.rsplit("-", 1)[0] + "-demo"
        assert demo in names, f"{path.stem} has no demo-scale variant"


def test_a_trial_stopped_by_an_error_is_run_again_when_the_study_continues(tmp_path,
                                                                          tiny_npz):
    from gzsl.experiments.studies import load_study

    path = write_study(tmp_path, study_text('"method.ridge" = [0.1, 1.0]'))
    with pytest.raises(GZSLError, match="missing.npz"):
        run_study(load_study(path), tmp_path / "out", root=tmp_path / "missing.npz",
                  device="cpu", threads=1)
    run_study(load_study(path), tmp_path / "out", root=tiny_npz, device="cpu", threads=1)
    trials = trials_of(tmp_path / "out")
    assert sorted(complete(trials)) == [(("method.ridge", 0.1),), (("method.ridge", 1.0),)]
    assert [t.state.name for t in trials].count("FAIL") == 1
    notes = [r.note for r in report_study(tmp_path / "out").rows]
    assert any("queued again" in n for n in notes) and any("retry of trial 0" in n
                                                           for n in notes)


def test_the_cli_prints_one_error_line_for_a_bad_study_and_lists_shipped_ones(tmp_path,
                                                                              capsys):
    from conftest import run_main

    path = write_study(tmp_path, study_text('"method.ridge" = [1.0]', extra='objective = "H"'))
    code, output = run_main(capsys, "study", "run", str(path), "--out", str(tmp_path / "o"))
    assert code == 2 and output.startswith("error: ") and output.count("\n") == 1
    assert not (tmp_path / "o").exists()
    code, output = run_main(capsys, "study", "list")
    assert code == 0 and "gsmflow-fig6-perturbation-demo" in output
