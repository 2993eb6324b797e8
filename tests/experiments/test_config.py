"""Presets, overrides and their errors."""

import pytest

from gzsl.data.errors import GZSLError
from gzsl.experiments.config import list_presets, parse_override, resolve
from gzsl.methods.base import config_from_dict, get_method


def test_parse_override_types():
    assert parse_override("method.epochs=10") == ("method", "epochs", 10)
    assert parse_override("evaluation.classifier_lr=1e-3") == ("evaluation", "classifier_lr", 1e-3)
    assert parse_override("data.l2=true") == ("data", "l2", True)
    assert parse_override("evaluation.n_synthetic_grid=[1, 2]")[2] == [1, 2]
    assert parse_override("ridge=0.5") == ("method", "ridge", 0.5)
    assert parse_override("data.semantics=sent") == ("data", "semantics", "sent")


@pytest.mark.parametrize("bad", ["no-equals", "weird.key=1"])
def test_parse_override_errors(bad):
    with pytest.raises(GZSLError):
        parse_override(bad)


def test_unknown_setting_names_the_valid_ones():
    with pytest.raises(GZSLError, match="valid:.*ridge"):
        resolve("gaussian", "demo", overrides=("method.ridg=1",))


def test_unknown_method_and_preset_and_selection():
    with pytest.raises(GZSLError, match="unknown method"):
        resolve("nope", "demo")
    with pytest.raises(GZSLError, match="no preset"):
        resolve("gaussian", "demo", preset="missing")
    with pytest.raises(GZSLError, match="unknown selection"):
        resolve("gaussian", "demo", selection="best")


def test_overrides_beat_preset_values():
    config = resolve("gaussian", "demo", overrides=("evaluation.n_synthetic=7",))
    assert config.evaluation.n_synthetic == 7


def test_every_shipped_preset_resolves_against_its_method():
    presets = list_presets()
    assert presets, "no presets shipped"
    for preset in presets:
        method = get_method(preset.method)
        config_from_dict(method.Config, preset.method_settings)
        config = resolve(preset.method, preset.dataset, preset=preset.path)
        for metric, value in preset.published.items():
            if metric in ("U", "S", "H", "T1"):
                assert 0 < float(value) < 100, (preset.path, metric)
        assert config.data.semantics in ("att", "sent")
