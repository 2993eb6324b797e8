"""Settings renamed for one vocabulary across methods, and display / memory knobs moved out
of the saved settings: runs saved before still load, resume and compare, through the one
table ``RENAMED_SETTINGS``; presets and ``--set`` accept only today's names."""

from __future__ import annotations

import json

import torch

from gzsl.data.errors import GZSLError
from gzsl.experiments.compare import _flatten
from gzsl.experiments.config import ExperimentConfig, resolve
from gzsl.methods.base import Generator, upgrade_saved_settings
from gzsl.methods.vaecflow import VAECFlow

OLD_CONFIGS = {
    "vaecflow": ({"learning_rate": 3e-4, "synthesis_chunk": 99, "progress": False},
                 {"lr": 3e-4}),
    "amaz": ({"adam_betas": [0.5, 0.99], "sample_batch": 7, "progress": None},
             {"betas": (0.5, 0.99)}),
    "gsmflow": ({"temperature": 0.8, "synthesis_chunk": 5, "progress": True},
                {"sample_noise_std": 0.8}),
}


def _saved(method: str, old: dict) -> dict:
    """The ``config.json`` of a demo run saved before the renames (JSON lists and all)."""
    config = json.loads(json.dumps(resolve(method, "demo", device="cpu").to_dict()))
    for key in OLD_CONFIGS[method][1]:
        config["method_config"].pop(key)
    config["method_config"].update(old)
    return config


def test_a_config_json_saved_before_the_renames_loads_under_the_new_names():
    for method, (old, new) in OLD_CONFIGS.items():
        loaded = ExperimentConfig.from_dict(_saved(method, old))
        for key, value in new.items():
            assert getattr(loaded.method_config, key) == value, (method, key)
        saved = loaded.to_dict()["method_config"]
        assert not set(old) & set(saved)  # progress and chunk sizes are no longer settings


def test_compare_puts_old_and_new_runs_of_one_setting_in_one_variant():
    for method, (old, _) in OLD_CONFIGS.items():
        before = _flatten(_saved(method, old))
        after = _flatten(json.loads(json.dumps(
            ExperimentConfig.from_dict(_saved(method, old)).to_dict())))
        assert before == after, method


def test_a_generator_saved_before_the_renames_loads(tiny_seen_data, tmp_path):
    model = VAECFlow(iterations=3, encoder_hidden=(8, 8), decoder_hidden=8, coupling_hidden=8,
                     batch_size=32, initialisation_size=64, lr=2e-4)
    model.fit(tiny_seen_data, rng=torch.Generator().manual_seed(0))
    model.save(tmp_path / "new.pt")
    blob = torch.load(tmp_path / "new.pt", weights_only=True)
    blob["config"]["learning_rate"] = blob["config"].pop("lr")
    blob["config"].update(synthesis_chunk=3, progress=False)
    torch.save(blob, tmp_path / "old.pt")
    loaded = Generator.load(tmp_path / "old.pt")
    assert loaded.config == model.config and loaded.config.lr == 2e-4
    draw = lambda m: m.sample(tiny_seen_data.class_semantics[6:], 4,  # noqa: E731
                              rng=torch.Generator().manual_seed(1))
    assert torch.equal(draw(loaded), draw(model))


def test_old_names_are_not_accepted_as_new_settings():
    for override in ("method.learning_rate=1e-3", "method.synthesis_chunk=9",
                     "method.progress=false"):
        try:
            resolve("vaecflow", "demo", overrides=[override])
        except GZSLError as error:
            assert "unknown setting" in str(error)
        else:
            raise AssertionError(f"{override} was accepted")
    assert upgrade_saved_settings("vaecflow", {"lr": 1.0, "learning_rate": 2.0}) == {"lr": 1.0}
