"""Methods from outside the package: the documented example, and entry-point plugins."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest
import torch
from conftest import load_documented_method, make_tiny_dataset

from gzsl.data.errors import GZSLError
from gzsl.experiments.config import resolve
from gzsl.experiments.runner import run_experiment
from gzsl.experiments.trained import load_run
from gzsl.methods import base
from gzsl.methods.base import Checkpoint, CheckpointSchedule, Generator


def test_the_documented_method_runs_everywhere(registry, monkeypatch, tmp_path,
                                               tiny_seen_data):
    method = load_documented_method(monkeypatch)
    assert base.get_method("linear-mean") is method

    def fit(resume=None, stop_at=None):
        model, states = method(iterations=12, batch_size=16), []

        def callback(checkpoint: Checkpoint) -> bool:
            states.append(checkpoint.training_state())
            return checkpoint.iteration == stop_at

        model.fit(tiny_seen_data, rng=torch.Generator().manual_seed(0),
                  schedule=CheckpointSchedule(every=3, callback=callback), resume=resume)
        return model, states

    whole, _ = fit()
    _, states = fit(stop_at=6)
    resumed, _ = fit(resume=states[-1])
    torch.testing.assert_close(resumed.map_.weight, whole.map_.weight, rtol=0, atol=0)

    config = resolve("linear-mean", "tiny", selection="val", device="cpu",
                     overrides=["method.iterations=60", "evaluation.checkpoint_every=20",
                                "evaluation.n_synthetic=20", "evaluation.classifier_epochs=3"])
    result = run_experiment(config, data=make_tiny_dataset(), out=tmp_path / "run")
    assert result.method == "linear-mean" and 0 <= result.H <= 100
    run = load_run(tmp_path / "run", data=make_tiny_dataset())
    stored = np.load(tmp_path / "run" / "predictions.npz")
    task = make_tiny_dataset().task("final")
    assert np.array_equal(run.predict_ids(task.test_unseen_features),
                          stored["test_unseen_predictions"])
    assert isinstance(Generator.load(tmp_path / "run" / "generator.pt"), method)


def _entry_points(monkeypatch, *values: str) -> None:
    points = [importlib.metadata.EntryPoint(name=f"plugin{i}", value=value,
                                            group=base.ENTRY_POINT_GROUP)
              for i, value in enumerate(values)]
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group: points if group == base.ENTRY_POINT_GROUP else [])


PLUGIN = '''
from gzsl.methods.gaussian import GaussianBaseline


class Plugin(GaussianBaseline):
    name = "plugin-gaussian"


class Clash(GaussianBaseline):
    name = "gsmflow"


NOT_A_METHOD = 3
'''


def test_entry_point_plugins_are_registered_and_bad_ones_explained(registry, monkeypatch,
                                                                   tmp_path):
    (tmp_path / "my_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    _entry_points(monkeypatch, "my_plugin:Plugin", "gzsl.methods.gaussian:GaussianBaseline")
    methods = base.available_methods()
    assert methods["plugin-gaussian"].__name__ == "Plugin" and "gaussian" in methods
    assert base.get_method("plugin-gaussian") is methods["plugin-gaussian"]

    for value, message in (("my_plugin:Clash", "takes the name 'gsmflow'"),
                           ("my_plugin:NOT_A_METHOD", "not a gzsl Generator subclass"),
                           ("no_such_module:Thing", "failed to load")):
        base._load_plugins.cache_clear()
        _entry_points(monkeypatch, value)
        with pytest.raises(GZSLError, match=message):
            base.available_methods()
